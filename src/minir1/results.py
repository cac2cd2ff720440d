"""The results contract: one JSON file per chapter, ``book/results/<chapter>.json``.

Figures, verdict boxes and the intro's claims table read only these files.  A file holds
``chapter``, ``profile``, ``seeds``, ``config``, ``metrics`` (each a number or
``{mean, ci95: [lo, hi], per_seed: [...]}``), ``claims`` (``{id, verdict, evidence}``)
and ``provenance`` (git commit, source hash, package versions, device, wall seconds,
FLOPs).  Files are validated against :data:`SCHEMA` before they are written, and written
atomically (temp name, then rename), so a failed run never leaves half a file.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .profiles import check_profile
from .utils import atomic_write_json, device_name, package_hash, repo_root, sha256_file

VERDICTS: tuple[str, ...] = ("supported", "partly supported", "not supported", "not testable here")

_NUMBER = {"type": "number"}
_METRIC = {
    "oneOf": [
        _NUMBER,
        {
            "type": "object",
            "required": ["mean", "ci95", "per_seed"],
            "properties": {
                "mean": _NUMBER,
                "ci95": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2},
                "per_seed": {"type": "array", "items": _NUMBER, "minItems": 1},
            },
        },
        # A series (e.g. a curve over steps or doses): name -> metric.
        {"type": "object", "additionalProperties": {"$ref": "#/$defs/metric"}, "minProperties": 1,
         "not": {"required": ["mean"]}},
    ]
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"metric": _METRIC},
    "type": "object",
    "required": ["chapter", "profile", "seeds", "config", "metrics", "claims", "provenance"],
    "properties": {
        "chapter": {"type": "string", "minLength": 1},
        "profile": {"enum": ["smoke", "cpu", "gpu"]},
        "seeds": {"type": "array", "items": {"type": "integer"}},
        "config": {"type": "object"},
        "metrics": {"type": "object", "additionalProperties": {"$ref": "#/$defs/metric"}},
        "claims": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "verdict", "evidence"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "verdict": {"enum": list(VERDICTS)},
                    "evidence": {"type": "string", "minLength": 1},
                },
            },
        },
        "provenance": {
            "type": "object",
            "required": ["git_commit", "source_hash", "package_hash", "versions", "device",
                         "wall_seconds", "flops"],
            "properties": {
                "git_commit": {"type": "string"},
                "source_hash": {"type": "string"},
                "package_hash": {"type": "string"},
                "versions": {"type": "object"},
                "device": {"type": "string"},
                "wall_seconds": {"type": "number", "minimum": 0},
                "flops": {"type": "number", "minimum": 0},
            },
        },
        "extra": {"type": "object"},
    },
}


class ResultsError(ValueError):
    """A results file or object does not match the contract."""


# ----------------------------------------------------------------------------- metrics
# Two-sided 95% Student-t quantiles by degrees of freedom (larger df -> 1.96).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def _t95(df: int) -> float:
    """The t quantile for ``df`` (rounded down to the nearest tabulated df; conservative)."""
    if df > 120:
        return 1.96
    return _T95[max(k for k in _T95 if k <= df)]


def metric(per_seed: Sequence[float], ci95: Sequence[float] | None = None) -> dict:
    """Summarise one value per seed as ``{mean, ci95, per_seed}``.

    The default interval is Student's t over seeds (mean ± t·s/√n); pass ``ci95`` to use
    another interval, e.g. a bootstrap over problems and seeds from
    :func:`minir1.evaluation.bootstrap_ci`.  With one seed and no ``ci95`` the interval
    collapses to the mean (no uncertainty is claimed that was not measured).

    >>> metric([0.5, 0.7, 0.6])["mean"]
    0.6
    """
    vals = [float(v) for v in per_seed]
    if not vals:
        raise ResultsError("metric: per_seed must hold at least one value")
    if not all(math.isfinite(v) for v in vals):
        raise ResultsError(f"metric: per_seed values must be finite; got {vals}")
    mean = float(np.mean(vals))
    if ci95 is None:
        if len(vals) > 1:
            half = _t95(len(vals) - 1) * float(np.std(vals, ddof=1)) / math.sqrt(len(vals))
        else:
            half = 0.0
        ci95 = (mean - half, mean + half)
    lo, hi = (float(c) for c in ci95)
    return {"mean": round(mean, 10), "ci95": [round(lo, 10), round(hi, 10)],
            "per_seed": [round(v, 10) for v in vals]}


def claim(id: str, verdict: str, evidence: str) -> dict:
    """A claim verdict; ``verdict`` must be one of :data:`VERDICTS`."""
    if verdict not in VERDICTS:
        raise ResultsError(f"verdict must be one of {', '.join(map(repr, VERDICTS))}; got {verdict!r}")
    return {"id": id, "verdict": verdict, "evidence": evidence}


def value(m: Any) -> float:
    """The point value of a metric (its mean when it has per-seed values)."""
    return float(m["mean"]) if isinstance(m, dict) else float(m)


# ----------------------------------------------------------------------------- provenance
def git_commit(root: Path | None = None) -> str:
    root = root or repo_root()
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty and commit != "unknown" else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions(packages: Iterable[str] = ("torch", "transformers", "tokenizers", "numpy", "trl")) -> dict:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def source_hash(chapter_notebook: str | None) -> str:
    """Hash of the chapter's source notebook in ``notebooks/`` (``""`` if unknown)."""
    if not chapter_notebook:
        return ""
    p = repo_root() / "notebooks" / chapter_notebook
    return sha256_file(p) if p.exists() else ""


def provenance(*, wall_seconds: float, flops: float, notebook: str | None = None) -> dict:
    return {
        "git_commit": git_commit(),
        "source_hash": source_hash(notebook),
        "package_hash": package_hash(),
        "versions": versions(),
        "device": device_name(),
        "platform": platform.platform(),
        "wall_seconds": round(float(wall_seconds), 3),
        "flops": float(flops),
    }


# ----------------------------------------------------------------------------- files
def results_dir(profile: str | None = None) -> Path:
    """Where results go: ``$MINIR1_RESULTS_DIR`` if set; smoke runs go to
    ``.artifacts/results-smoke`` so that CI never overwrites the published results;
    ``cpu`` and ``gpu`` runs go to ``book/results``."""
    env = os.environ.get("MINIR1_RESULTS_DIR")
    if env:
        return Path(env)
    if profile == "smoke":
        return repo_root() / ".artifacts" / "results-smoke"
    return repo_root() / "book" / "results"


def _field_path(err) -> str:
    return "/".join(str(p) for p in err.absolute_path) or "<root>"


def validate(obj: dict, name: str = "<results>") -> dict:
    """Raise :class:`ResultsError` naming the file and the field when ``obj`` breaks the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise ResultsError(f"{name}: field '{_field_path(e)}': {e.message}")
    for key, m in obj["metrics"].items():
        _check_finite(m, f"{name}: field 'metrics/{key}'")
    return obj


def _check_finite(m: Any, where: str) -> None:
    if isinstance(m, dict) and "mean" not in m:
        for k, v in m.items():
            _check_finite(v, f"{where}/{k}")
        return
    nums = [m] if not isinstance(m, dict) else [m["mean"], *m["ci95"], *m["per_seed"]]
    if not all(math.isfinite(float(v)) for v in nums):
        raise ResultsError(f"{where}: values must be finite")


def write_results(chapter: str, *, profile: str, seeds: Sequence[int], config: dict, metrics: dict,
                  claims: Sequence[dict], wall_seconds: float, flops: float,
                  notebook: str | None = None, extra: dict | None = None,
                  out_dir: str | os.PathLike | None = None) -> Path:
    """Validate and atomically write ``<out_dir>/<chapter>.json``; return its path."""
    check_profile(profile)
    obj = {
        "chapter": chapter,
        "profile": profile,
        "seeds": [int(s) for s in seeds],
        "config": json.loads(json.dumps(config, default=str)),
        "metrics": metrics,
        "claims": list(claims),
        "provenance": provenance(wall_seconds=wall_seconds, flops=flops, notebook=notebook),
    }
    if extra is not None:
        obj["extra"] = json.loads(json.dumps(extra, default=str))
    path = Path(out_dir) if out_dir is not None else results_dir(profile)
    validate(obj, f"{chapter}.json")
    return atomic_write_json(path / f"{chapter}.json", obj)


def load_results(chapter: str, profile: str | None = None,
                 out_dir: str | os.PathLike | None = None) -> dict:
    """Read and validate ``<chapter>.json`` from ``out_dir`` (default: :func:`results_dir`)."""
    path = (Path(out_dir) if out_dir is not None else results_dir(profile)) / f"{chapter}.json"
    if not path.exists():
        raise FileNotFoundError(f"no results file for chapter {chapter!r} at {path}")
    return validate(json.loads(path.read_text()), str(path))


def validate_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e})") from e
    return validate(obj, str(path))
