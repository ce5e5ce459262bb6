"""Every config option and experiment composes, and its method options are ones invert knows."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from sphinx.build import build_execution, build_method, check_run_options, trainer_options
from sphinx.config_root import config_dir
from sphinx.errors import ConfigError
from sphinx.inversion import METHODS, Execution

CONF = Path(config_dir("run"))
GROUPS = ["generator", "method", "head", "regularizer", "degradation", "data", "trainer", "logger"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def hydra_conf():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def composed(*overrides: str):
    return compose(config_name="config", overrides=list(overrides), return_hydra_config=False)


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(hydra_conf, group):
    for option in options(group):
        overrides = [f"{group}={option}"]
        if (group, option) == ("generator", "custom"):
            overrides.append("generator.source=/some/file.pt")
        if (group, option) == ("data", "folder"):
            overrides.append("data.path=/some/folder")
        cfg = composed(*overrides)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


@pytest.mark.parametrize("experiment", [e for e in options("experiment") if not e.startswith("edit_")])
def test_every_experiment_composes_with_the_plus_syntax(hydra_conf, experiment):  # edit_*: tests/test_edit.py
    cfg = composed(f"+experiment={experiment}")
    assert cfg.experiment_name == experiment
    assert cfg.generator.source == "demo"


def test_method_configs_name_every_registered_method_with_its_source_defaults(hydra_conf):
    assert set(options("method")) == set(METHODS)
    for name, (implementation, defaults) in METHODS.items():
        cfg = composed(f"method={name}")
        assert cfg.method.name == name
        spec = build_method(cfg, batch_size=cfg.batch_size)
        assert spec.name == name
        for key, value in vars(implementation.complete(defaults)).items():
            assert spec.options[key] == value, (name, key)


def test_pti_brings_its_own_batch_size_and_the_command_line_still_wins(hydra_conf):
    assert composed("method=pti").batch_size == 1
    with pytest.raises(ConfigError, match="batch_size=1"):
        cfg = composed("method=pti", "batch_size=4")
        build_method(cfg, batch_size=cfg.batch_size)


def test_steps_scale_shrinks_every_step_count(hydra_conf):
    spec = build_method(composed("method=wplus_noise", "steps_scale=0.1"), batch_size=4)
    assert (spec.options["steps"], spec.options["noise_steps"]) == (800, 300)
    pti = build_method(composed("method=pti", "steps_scale=0.1"), batch_size=1)
    assert (pti.options["pivot_steps"], pti.options["steps"]) == (45, 35)


def test_an_explicit_step_count_runs_as_given_whatever_the_scale(hydra_conf):
    for experiment in ("ood_faces", "restoration", "ablation", "budget"):
        for method in ("sphinx", "wplus", "pti"):
            cfg = composed(f"+experiment={experiment}", f"method={method}", "method.steps=30")
            assert build_method(cfg, batch_size=1).options["steps"] == 30, (experiment, method)


def test_wplus_noise_splits_an_explicit_step_count_in_its_ratio(hydra_conf):
    spec = build_method(composed("method=wplus_noise", "method.steps=80"), batch_size=4)
    assert (spec.options["steps"], spec.options["noise_steps"]) == (80, 30)
    spec = build_method(composed("method=wplus_noise", "method.steps=80", "method.noise_steps=5"), batch_size=4)
    assert spec.options["noise_steps"] == 5


def test_head_and_regularizer_reach_sphinx_and_are_refused_elsewhere(hydra_conf):
    spec = build_method(composed("head=wide", "regularizer=no_vicinal"), batch_size=4)
    assert spec.options["bottleneck"] == 128 and spec.options["vicinal"] is False
    assert build_method(composed("method=w", "regularizer=no_noise_reg"), batch_size=4).options["noise_regularize"] == 0
    with pytest.raises(ConfigError, match="SPHInX methods only"):
        build_method(composed("method=wplus", "regularizer=no_vicinal"), batch_size=4)
    with pytest.raises(ConfigError, match="applies to methods w and pti"):
        build_method(composed("method=sphinx", "regularizer=no_noise_reg"), batch_size=4)


def test_an_unknown_method_option_is_refused_with_the_valid_ones(hydra_conf):
    with pytest.raises(ConfigError, match="has no option momentum.*lpips_weight"):
        build_method(composed("+method.momentum=0.9"), batch_size=4)


def test_trainer_options_pass_through_and_force_what_inversion_needs(hydra_conf):
    trainer = trainer_options(composed("trainer=cpu", "trainer.devices=2", "trainer.strategy=ddp"))
    assert (trainer["accelerator"], trainer["devices"], trainer["strategy"]) == ("cpu", 2, "ddp")
    assert trainer["inference_mode"] is False and trainer["use_distributed_sampler"] is False


@pytest.mark.parametrize("overrides, message", [
    (["method.steps=abc"], "method.steps of method 'sphinx' must be an integer, got 'abc'"),
    (["method.lr=fast"], "method.lr of method 'sphinx' must be a number"),
    (["method.steps=-5"], "method.steps must be non-negative, got -5"),
    (["method.spread_draws=-1"], "method.spread_draws must be non-negative, got -1"),
    (["method.spread_draws=1"], "method.spread_draws must be 0 (skip) or at least 2"),
    (["head.bottleneck=0"], "head.bottleneck must be at least 1"),
    (["head.bottleneck=wide"], "head.bottleneck must be an integer"),
    (["batch_size=abc"], "batch_size must be an integer, got 'abc'"),
    (["seed=abc"], "seed must be an integer"),
    (["steps_scale=abc"], "steps_scale must be a number"),
    (["checkpoint_every=-1"], "checkpoint_every must be at least 0"),
    (["data=folder"], "data.path is not set: data=folder needs data.path="),
    (["generator=custom"], "generator.source is not set: generator=custom needs generator.source="),
    (["trainer=gpu"], "needs a CUDA GPU and this machine has none; use trainer=cpu"),
    (["trainer=ddp"], "trainer=cpu trainer.devices=2 trainer.strategy=ddp"),
], ids=lambda v: v if isinstance(v, str) and "=" in v and " " not in v else None)
def test_bad_run_options_are_refused_before_compute_in_one_line(hydra_conf, monkeypatch, overrides, message):
    import torch

    from sphinx.build import check_run_options

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = composed(*overrides)
    with pytest.raises(ConfigError) as refused:
        check_run_options(cfg)
        build_method(cfg, batch_size=cfg.batch_size)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_execution_options_build_and_lightnings_own_mixed_precision_is_refused(hydra_conf):
    assert build_execution(composed()) == Execution()
    assert build_execution(composed("execution.precision=bfloat16", "execution.compile=step")) == \
        Execution(precision="bfloat16", compile="step")
    with pytest.raises(ConfigError, match="execution.exact_batch"):
        check_run_options(composed("execution.exact_batch=sometimes"))
    with pytest.raises(ConfigError, match="execution.precision=bfloat16"):
        check_run_options(composed("trainer.precision=bf16-mixed"))
