"""What a run dir remembers about the configuration that produced its records.

Rerunning into a run dir resumes it, which is only honest if the rerun would compute the same
thing. ``run.json`` holds a fingerprint of everything that changes a result (generator, method
and its options, degradation, seed, data, LPIPS, execution options that change rounding, an
edit's options); a rerun with a different one is refused before any compute. Options that only
choose which images run (``data.limit``, ``data.names``) or how (batch size, trainer, logger)
are left out: results do not depend on them.

``.hydra/`` is written here too, once the configuration is accepted, and never by a job that is
refused: it always describes the configuration the run dir's records came from. (Hydra's own
copy, written before a job can check anything, is switched off: ``hydra.output_subdir: null``.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sphinx.errors import ConfigError
from sphinx.inversion.execution import Execution
from sphinx.inversion.methods import MethodConfig
from sphinx.utils.files import atomic_write_text, read_json

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "run.json"
FINGERPRINT_FORMAT = "sphinx.run_fingerprint/1"
HYDRA_FOLDER = ".hydra"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
_SELECTION_KEYS = ("limit", "names")
_SHOWN_DIFFERENCES = 4


def run_fingerprint(
    *,
    generator: dict,
    architecture: str,
    method: MethodConfig,
    degradation: dict,
    seed: int,
    data: dict,
    lpips: str | None,
    execution: Execution,
    edit: dict | None = None,
) -> dict[str, object]:
    """Flat ``{dotted key: value}`` of every setting that changes a result.

    Args:
        generator: the generator's config (source, output resolution).
        architecture: one line describing the loaded generator's architecture.
        method: the method as ``invert`` gets it (steps already scaled).
        degradation: the degradation's config.
        seed: the run seed.
        data: the data's config; options that only choose images (``limit``, ``names``) are left out.
        lpips: the LPIPS network in use, or None (the loss is then MSE only).
        execution: how steps run; only options away from their defaults, so that run dirs made
            before they existed resume.
        edit: an edit run's ``edit`` options.
    """
    nested = {
        "generator": {**generator, "architecture": architecture},
        "method": {"name": method.name, **method.options()},
        "degradation": degradation,
        "seed": seed,
        "data": {k: v for k, v in data.items() if k not in _SELECTION_KEYS},
        "lpips": lpips,
    }
    if execution.changes_rounding():
        nested["execution"] = execution.changes_rounding()
    if edit is not None:
        nested["edit"] = edit
    return _flatten(nested)


def check_resume(
    run_dir: Path,
    fingerprint: dict[str, object],
    *,
    allow_change: bool,
    write: bool,
    config_files: dict[str, str] | None = None,
) -> None:
    """Refuse to resume ``run_dir`` with another configuration; remember this one.

    Args:
        run_dir: the run's folder.
        fingerprint: :func:`run_fingerprint` of this run.
        allow_change: resume anyway (the records keep their own method/degradation labels).
        write: record the fingerprint and ``config_files`` (rank 0 only, holding the run dir's lock).
        config_files: the texts of ``.hydra/``'s files (:data:`HYDRA_FILES`) for this run,
            written once it is accepted.

    Raises:
        ConfigError: the run dir holds records of a different configuration; nothing is written.
    """
    path = run_dir / FINGERPRINT_FILE
    saved = _read(path)
    if saved is not None:
        differing = sorted(
            set(saved["fingerprint"]) ^ set(fingerprint)
            | {k for k in set(saved["fingerprint"]) & set(fingerprint) if saved["fingerprint"][k] != fingerprint[k]},
            key=lambda k: (not k.endswith((".name", ".source")), k),
        )  # the telling keys first
        if differing and not allow_change:
            shown = ", ".join(
                f"{k} ({_short(saved['fingerprint'].get(k))} -> {_short(fingerprint.get(k))})"
                for k in differing[:_SHOWN_DIFFERENCES]
            )
            more = f" and {len(differing) - _SHOWN_DIFFERENCES} more" if len(differing) > _SHOWN_DIFFERENCES else ""
            raise ConfigError(
                f"{run_dir} holds results of another configuration: {shown}{more}; start a new run "
                "(leave out hydra.run.dir, or give a new folder), or add allow_config_change=true "
                "to resume anyway"
            )
        if differing:
            log.warning(
                "resuming %s with a changed configuration (%s), as allow_config_change=true asks; "
                "earlier records keep their own labels",
                run_dir,
                ", ".join(differing),
            )
    if write:
        for name, text in (config_files or {}).items():
            if name not in HYDRA_FILES:
                raise ValueError(f"{name} is not one of the .hydra files {', '.join(HYDRA_FILES)}")
            atomic_write_text(run_dir / HYDRA_FOLDER / name, text)
        atomic_write_text(
            path, json.dumps({"format": FINGERPRINT_FORMAT, "fingerprint": fingerprint}, indent=1, default=str)
        )


def _read(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        saved = read_json(path)
    except ValueError:
        saved = None
    if (
        not isinstance(saved, dict)
        or saved.get("format") != FINGERPRINT_FORMAT
        or not isinstance(saved.get("fingerprint"), dict)
    ):
        raise ConfigError(
            f"{path}: unreadable run fingerprint; restore it, or start a new run (leave out hydra.run.dir)"
        )
    return saved


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            # JSON round trip: tuples become lists and numbers stay numbers, as when read back
            flat[f"{prefix}{key}"] = json.loads(json.dumps(value, default=str))
    return flat


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
