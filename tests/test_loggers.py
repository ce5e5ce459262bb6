"""Loggers come from config (`_target_`) as Lightning loggers, and every one of them works offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytorch_lightning.loggers import CSVLogger
from test_run import read_rows, sphinx_run

from helpers import compose
from sphinx.build import build_logger
from sphinx.configs import config_dir
from sphinx.errors import ConfigError
from sphinx.rundir.columns import read_results

CONF = Path(config_dir("run"))


@pytest.fixture
def tiny_with_a_logger(fixtures_root) -> list[str]:
    return [
        "generator=custom",
        f"generator.source={fixtures_root / 'rosinality' / 'tiny_g32.pt'}",
        "data.limit=2",
        "steps_scale=0.004",
    ]


def test_every_logger_config_names_a_lightning_logger_or_none():
    for path in sorted((CONF / "logger").glob("*.yaml")):
        target = compose("run", f"logger={path.stem}").logger.get("_target_")
        if path.stem == "none":
            assert target is None
        else:
            assert target.startswith("pytorch_lightning.loggers."), path.name


def test_logger_none_builds_no_logger(tmp_path):
    assert build_logger(compose("run", "logger=none"), run_dir=tmp_path, method="w", degradation="none") is False


def test_the_csv_logger_writes_into_the_run_dir_with_the_config(tmp_path):
    logger = build_logger(compose("run", "logger=csv"), run_dir=tmp_path, method="w", degradation="none")
    assert isinstance(logger, CSVLogger)
    logger.log_metrics({"inversion/loss": 0.5}, step=0)
    logger.finalize("success")
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines() == ["inversion/loss,step", "0.5,0"]
    assert "steps_scale: 1.0" in (tmp_path / "csv" / "hparams.yaml").read_text()


def test_a_resumed_run_keeps_the_earlier_csv_metrics_and_warns_of_no_deletion(tmp_path, recwarn):
    for loss in (0.5, 0.25):  # the run, then its resume into the same run dir
        logger = build_logger(compose("run", "logger=csv"), run_dir=tmp_path, method="w", degradation="none")
        logger.log_metrics({"inversion/loss": loss}, step=0)
        logger.finalize("success")
    assert (tmp_path / "csv" / "metrics.1.csv").read_text().splitlines() == ["inversion/loss,step", "0.5,0"]
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines() == ["inversion/loss,step", "0.25,0"]
    assert not [w for w in recwarn if "deleted" in str(w.message)]


def test_an_online_wandb_run_without_a_login_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    cfg = compose("run", "logger=wandb", "logger.mode=online")
    with pytest.raises(ConfigError) as refused:
        build_logger(cfg, run_dir=tmp_path / "run", method="w", degradation="none")
    message = str(refused.value)
    assert message.startswith("logger.mode=online needs a W&B login") and "logger.mode=offline" in message
    assert "\n" not in message and not (tmp_path / "run").exists()


def test_a_value_set_in_the_config_wins_over_the_runs_default(tmp_path):
    pytest.importorskip("tensorboard")
    logger = build_logger(
        compose("run", "logger=tensorboard", f"+logger.save_dir={tmp_path / 'elsewhere'}"),
        run_dir=tmp_path / "run",
        method="w",
        degradation="none",
    )
    assert Path(logger.log_dir) == tmp_path / "elsewhere" / "tensorboard"


def test_results_are_read_with_numbers_as_numbers_and_names_as_text(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(
        "image,method,psnr,lpips,steps,status,message\n1,sphinx,20.5,,100,ok,\nb.png,sphinx,,,0,failed,unreadable\n"
    )
    frame = read_results(path)
    assert frame["image"].tolist() == ["1", "b.png"]  # an image called "1" keeps its name
    assert frame["message"].tolist() == ["", "unreadable"]
    assert frame["psnr"].dtype == "float64" and frame["steps"].dtype == "int64"
    assert frame["lpips"].isna().all()


@pytest.mark.slow
def test_a_tensorboard_run_writes_its_curves_panels_and_summary_offline(tiny_with_a_logger, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    sphinx_run(*tiny_with_a_logger, "logger=tensorboard", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"inversion/loss", "test/psnr", "summary/psnr", "summary/ok"} <= set(tags["scalars"])
    assert tags["images"] == ["panels/astronaut, chelsea"]  # the caption names the panel's images
    (ok,) = events.Scalars("summary/ok")
    assert ok.value == 2
    assert "method" in (run_dir / "tensorboard" / "hparams.yaml").read_text()


@pytest.mark.slow
def test_an_mlflow_run_keeps_its_metrics_params_panels_and_results_in_the_run_dir(tiny_with_a_logger, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    sphinx_run(
        *tiny_with_a_logger, "logger=mlflow", "experiment_name=tracked", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert run.info.run_name == "sphinx-none-run"
    assert run.data.tags["method"] == "sphinx" and run.data.params["method/name"] == "sphinx"
    psnrs = [float(row["psnr"]) for row in read_rows(run_dir)]
    assert run.data.metrics["summary/psnr"] == pytest.approx(sum(psnrs) / 2, rel=1e-4)
    artifacts = run_dir / "mlartifacts" / run.info.run_id / "artifacts"
    assert (artifacts / "results.csv").read_text() == (run_dir / "results.csv").read_text()
    assert len(list((artifacts / "panels").glob("*.png"))) == 1
