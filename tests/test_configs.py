"""Every config option and experiment composes, and its method options are ones invert knows."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers import compose
from sphinx.build import (
    apply_threads,
    build_execution,
    build_job,
    build_lpips,
    build_method,
    check_run_options,
    trainer_options,
)
from sphinx.configs import config_dir
from sphinx.errors import ConfigError, DownloadError
from sphinx.inversion import METHODS, Execution, invert
from sphinx.inversion.methods import method_config

CONF = Path(config_dir("run"))
GROUPS = ["generator", "method", "degradation", "data", "trainer", "logger"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group):
    for option in options(group):
        overrides = [f"{group}={option}"]
        if (group, option) == ("generator", "custom"):
            overrides.append("generator.source=/some/file.pt")
        if (group, option) == ("data", "folder"):
            overrides.append("data.path=/some/folder")
        cfg = compose("run", *overrides)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


@pytest.mark.parametrize("experiment", [e for e in options("experiment") if not e.startswith("edit_")])
def test_every_experiment_composes_with_the_plus_syntax(experiment):  # edit_*: tests/test_edit.py
    cfg = compose("run", f"+experiment={experiment}")
    assert cfg.experiment_name == experiment
    assert cfg.generator.source == "demo"


def test_method_configs_build_every_registered_method_with_its_source_defaults():
    assert set(options("method")) == set(METHODS)
    for name in METHODS:
        cfg = compose("run", f"method={name}")
        assert cfg.method.name == name
        assert build_method(cfg, batch_size=cfg.batch_size) == method_config(name), name


def test_pti_brings_its_own_batch_size_and_the_command_line_still_wins():
    assert compose("run", "method=pti").batch_size == 1
    with pytest.raises(ConfigError, match="batch_size=1"):
        cfg = compose("run", "method=pti", "batch_size=4")
        build_method(cfg, batch_size=cfg.batch_size)


def test_steps_scale_shrinks_every_step_count():
    method = build_method(compose("run", "method=wplus_noise", "steps_scale=0.1"), batch_size=4)
    assert method.step_counts() == {"steps": 800, "noise_steps": 300}
    pti = build_method(compose("run", "method=pti", "steps_scale=0.1"), batch_size=1)
    assert pti.step_counts() == {"steps": 35, "pivot_steps": 45}


def test_an_explicit_step_count_runs_as_given_whatever_the_scale():
    for experiment in ("ood_faces", "restoration", "ablation", "budget"):
        for method in ("sphinx", "wplus", "pti"):
            cfg = compose("run", f"+experiment={experiment}", f"method={method}", "method.steps=30")
            assert build_method(cfg, batch_size=1).steps == 30, (experiment, method)


def test_wplus_noise_splits_an_explicit_step_count_in_its_ratio():
    method = build_method(compose("run", "method=wplus_noise", "method.steps=80"), batch_size=4)
    assert (method.steps, method.noise_steps) == (80, 30)
    assert (
        build_method(
            compose("run", "method=wplus_noise", "method.steps=80", "method.noise_steps=5"), batch_size=4
        ).noise_steps
        == 5
    )


def test_the_former_head_and_regularizer_settings_are_method_keys_and_refused_elsewhere():
    method = build_method(compose("run", "method.bottleneck=128", "method.vicinal=false"), batch_size=4)
    assert (method.bottleneck, method.vicinal) == (128, False)
    assert build_method(compose("run", "method=w", "method.noise_regularize=0"), batch_size=4).noise_regularize == 0
    with pytest.raises(ConfigError, match="method 'wplus' has no option vicinal"):
        build_method(compose("run", "method=wplus", "+method.vicinal=false"), batch_size=4)


def test_the_ablation_sweep_sweeps_the_vicinal_draw_as_a_method_key():
    cfg = compose("run", "+experiment=ablation", hydra=True)
    params = cfg.hydra.sweeper.params
    assert params["method"] == "sphinx,sphinx_warm,sphinx_ps,sphinx_ps_pc" and params["method.vicinal"] == "true,false"
    for vicinal in ("true", "false"):
        method = build_method(
            compose("run", "+experiment=ablation", "method=sphinx_ps", f"method.vicinal={vicinal}"), batch_size=4
        )
        assert method.vicinal is (vicinal == "true") and method.name == "sphinx_ps"


def test_an_unknown_method_option_is_refused_with_the_valid_ones():
    with pytest.raises(ConfigError, match="has no option momentum.*lpips_weight"):
        build_method(compose("run", "+method.momentum=0.9"), batch_size=4)


def test_trainer_options_pass_through_and_force_what_inversion_needs():
    trainer = trainer_options(compose("run", "trainer=cpu", "trainer.devices=2", "trainer.strategy=ddp"))
    assert (trainer["accelerator"], trainer["devices"], trainer["strategy"]) == ("cpu", 2, "ddp")
    assert trainer["inference_mode"] is False and trainer["use_distributed_sampler"] is False


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method.steps=abc"], "method.steps of method 'sphinx' must be an integer, got 'abc'"),
        (["method.lr=fast"], "method.lr of method 'sphinx' must be a number"),
        (["method.steps=-5"], "method.steps must be non-negative, got -5"),
        (["method.spread_draws=-1"], "method.spread_draws must be non-negative, got -1"),
        (["method.spread_draws=1"], "method.spread_draws must be 0 (skip) or at least 2"),
        (["method.bottleneck=0"], "method.bottleneck must be at least 1"),
        (["method.bottleneck=wide"], "method.bottleneck of method 'sphinx' must be an integer"),
        (["method.lr=inf"], "method.lr must be finite"),
        (["batch_size=abc"], "batch_size must be an integer, got 'abc'"),
        (["seed=abc"], "seed must be an integer"),
        (["steps_scale=abc"], "steps_scale must be a positive number, got 'abc'"),
        (["checkpoint_every=-1"], "checkpoint_every must be at least 0"),
        (["data=folder"], "data.path is not set: data=folder needs data.path="),
        (["generator=custom"], "generator.source is not set: generator=custom needs generator.source="),
        (["trainer=gpu"], "needs a CUDA GPU and this machine has none; use trainer=cpu"),
        (["trainer=ddp"], "trainer=cpu trainer.devices=2 trainer.strategy=ddp"),
        (["threads=abc"], "threads must be an integer, got 'abc'"),
        (["threads=0"], "threads must be at least 1, got 0"),
    ],
    ids=lambda v: v if isinstance(v, str) and "=" in v and " " not in v else None,
)
def test_bad_run_options_are_refused_before_compute_in_one_line(monkeypatch, overrides, message):
    import torch

    from sphinx.build import check_run_options

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose("run", *overrides)
    with pytest.raises(ConfigError) as refused:
        check_run_options(cfg)
        build_method(cfg, batch_size=cfg.batch_size)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_bottleneck_wider_than_the_w_it_encodes_is_refused_before_any_compute(tiny_generator):
    cfg = compose("run", "+experiment=ood_faces", "method.bottleneck=1000000000", "data.limit=1")
    with pytest.raises(ConfigError) as refused:
        build_job(cfg)
    assert str(refused.value).startswith("method.bottleneck=1000000000 is wider than the W it encodes")
    assert "use at most 256" in str(refused.value)
    targets = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ConfigError, match=f"use at most {tiny_generator.style_dim} "):
        invert(tiny_generator, targets, method="sphinx", bottleneck=tiny_generator.style_dim + 1, steps=1)


def test_without_the_lpips_weights_the_advice_names_options_that_work_as_typed(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setenv("SPHINX_OFFLINE", "1")
    assert build_lpips(compose("run")) is None
    (warning,) = [r.getMessage() for r in caplog.records if "LPIPS" in r.getMessage()]
    assert warning.startswith("LPIPS off (MSE-only loss, empty lpips column): LPIPS backbone vgg16-397923af.pth")
    assert "lpips.backbone_path=<file>" in warning and "lpips.net=none" in warning and "lpips_weight=0" not in warning
    with pytest.raises(DownloadError) as refused:
        build_lpips(compose("run", "lpips.required=true"))
    assert "lpips.required=false" in str(refused.value) and "lpips_weight=0" not in str(refused.value)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sphinx.build"):
        assert build_lpips(compose("run", "lpips.net=none")) is None
    assert [(r.levelname, r.getMessage()[:32]) for r in caplog.records] == [
        ("INFO", "LPIPS off (lpips.net=none): the ")
    ]
    with pytest.raises(ConfigError, match="lpips.required=true forbids"):
        build_lpips(compose("run", "lpips.net=none", "lpips.required=true"))


def test_threads_sets_torchs_cpu_threads_and_every_demo_experiment_runs_on_one():
    assert compose("run").threads is None  # PyTorch's default
    for entry_point, experiments in (("run", options("experiment")), ("edit", [])):
        for experiment in experiments or sorted(p.stem for p in Path(config_dir("edit"), "experiment").glob("*.yaml")):
            assert compose(entry_point, f"+experiment={experiment}").threads == 1, experiment
    before = torch.get_num_threads()
    try:
        apply_threads(compose("run", "threads=3"))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_execution_options_build_and_lightnings_own_mixed_precision_is_refused():
    assert build_execution(compose("run")) == Execution()
    assert build_execution(compose("run", "execution.precision=bfloat16", "execution.compile=step")) == Execution(
        precision="bfloat16", compile="step"
    )
    with pytest.raises(ConfigError, match="execution.exact_batch"):
        check_run_options(compose("run", "execution.exact_batch=sometimes"))
    with pytest.raises(ConfigError, match="execution.precision=bfloat16"):
        check_run_options(compose("run", "trainer.precision=bf16-mixed"))


@pytest.mark.parametrize(
    "entry_point, overrides, message",
    [
        (
            "run",
            ["method=no_such_method"],
            "method=no_such_method: no such method option; choose one of ilo, pti, sphinx",
        ),
        ("run", ["method=sphinx,wplsu"], "method=wplsu: no such method option"),
        ("run", ["+experiment=ood_face"], "experiment=ood_face: no such experiment option; choose one of ablation"),
        ("edit", ["edit=morf"], "edit=morf: no such edit option"),
        ("edit", ["generator=dmeo"], "generator=dmeo: no such generator option"),  # a group of sphinx.run
        ("train", ["model=huge"], "model=huge: no such model option"),
    ],
)
def test_an_option_of_no_group_is_one_line_listing_the_options(entry_point, overrides, message):
    from sphinx.configs import check_group_choices

    with pytest.raises(ConfigError, match=re.escape(message)):
        check_group_choices(entry_point, overrides)


def test_real_options_keys_and_sweep_functions_pass_the_group_check():
    from sphinx.configs import check_group_choices

    check_group_choices("run", ["method=sphinx,wplus", "+experiment=ood_faces", "method.steps=3", "seed=abc"])
    check_group_choices("run", ["method=choice(sphinx,w)", "hydra/launcher=basic", "--multirun", "generator=null"])
    check_group_choices("edit", ["method=sphinx_warm", "+experiment=edit_rotate", "edit=morph", "edit.kind=x"])


@pytest.mark.parametrize("module", ["sphinx.run", "sphinx.edit", "sphinx.train"])
def test_each_entry_point_answers_an_option_of_no_group_in_one_line_with_status_2(tmp_path, module):
    from helpers import sphinx_run

    group = "model" if module == "sphinx.train" else "generator"
    done = sphinx_run(f"{group}=no_such", cwd=tmp_path, check=False, module=module)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {group}=no_such: no such {group} option; choose one of ")
    assert done.stdout == "" and not any(tmp_path.iterdir())  # refused before Hydra made a run dir
