"""The results contract: one JSON file per chapter, ``book/results/<chapter>.json``.

Figures, verdict boxes and the intro's claims table read only these files.  A file holds
``chapter``, ``profile``, ``seeds``, ``config``, ``metrics`` (each a number, a
:class:`minir1.stats.Metric` ``{mean, lo, hi, per_seed, n, method, unit}``, or a series of
them), ``evals`` (the cached evaluations behind them), ``claims`` (``{id, verdict, evidence}``)
and ``provenance`` (git commit, source hash, package versions, device, wall seconds,
FLOPs, and the ``edition`` block: version, date, commit, environment).  Files are validated
against :data:`SCHEMA` before they are written, and written atomically (temp name, then
rename), so a failed run never leaves half a file.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from . import artifacts
from .profiles import check_profile, current_device
from .stats import METHODS, UNITS, Metric
from .utils import RUNNER_OUTPUTS, atomic_write_json, device_name, git_dirty_files, package_hash, repo_root, sha256_file

# Set only by the chapter runner (``make chapters``): the run id of the chapter being
# published.  Without it, results never go to ``book/results`` (see :func:`results_dir`).
PUBLISH_ENV = "MINIR1_PUBLISH"
_RUN_ID_OK = "abcdefghijklmnopqrstuvwxyz0123456789-"

# "inconclusive": the interval straddles the decision threshold (or a margin's edge): neither
# the claim nor its negation is shown; distinct from "not supported" (the interval excludes it).
VERDICTS: tuple[str, ...] = ("supported", "partly supported", "inconclusive", "not supported", "not testable here")

_NUMBER = {"type": "number"}
_METRIC = {
    "oneOf": [
        _NUMBER,
        # A minir1.stats.Metric: the only shape an uncertain number takes in a results file.
        {
            "type": "object",
            "required": ["mean", "lo", "hi", "per_seed", "n", "method", "unit"],
            "additionalProperties": False,
            "properties": {
                "mean": _NUMBER,
                "lo": _NUMBER,
                "hi": _NUMBER,
                "per_seed": {"type": "array", "items": _NUMBER},
                "n": {"type": "integer", "minimum": 1},
                "method": {"enum": list(METHODS)},
                "unit": {"enum": list(UNITS)},
            },
        },
        # A series (e.g. a curve over steps or doses): name -> metric.
        {
            "type": "object",
            "additionalProperties": {"$ref": "#/$defs/metric"},
            "minProperties": 1,
            "not": {"required": ["mean"]},
        },
    ]
}
_EVAL = {
    "type": "object",
    "required": ["model", "eval_set", "sampling", "seeds", "metrics"],
    "properties": {
        "model": {"type": "string"},
        "eval_set": {"type": "object"},
        "sampling": {"type": "object"},
        "seeds": {"type": "array", "items": {"type": "integer"}},
        "metrics": {"type": "object", "additionalProperties": {"$ref": "#/$defs/metric"}},
    },
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
                    "variants": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "verdict"],
                            "properties": {"name": {"type": "string"}, "verdict": {"enum": list(VERDICTS)}},
                        },
                    },
                },
            },
        },
        "provenance": {
            "type": "object",
            "required": ["git_commit", "source_hash", "package_hash", "versions", "device", "wall_seconds", "flops"],
            "properties": {
                "git_commit": {"type": "string"},
                "source_hash": {"type": "string"},
                "package_hash": {"type": "string"},
                "versions": {"type": "object"},
                "device": {"type": "string"},
                "wall_seconds": {"type": "number", "minimum": 0},
                "flops": {"type": "number", "minimum": 0},
                # Optional (results written before editions existed lack it): see edition().
                "edition": {
                    "type": "object",
                    "required": ["version", "date", "commit", "environment"],
                    "properties": {
                        "version": {"type": "string"},
                        "date": {"type": "string"},
                        "commit": {"type": "string"},
                        "environment": {"type": "string"},
                    },
                },
            },
        },
        "evals": {"type": "object", "additionalProperties": _EVAL},
        "extra": {"type": "object"},
    },
}


class ResultsError(ValueError):
    """A results file or object does not match the contract."""


# ----------------------------------------------------------------------------- metrics
def metric(m: Metric) -> dict:
    """The results-file form of a :class:`minir1.stats.Metric` (intervals come only from
    :mod:`minir1.stats`; there is no other way to make one)."""
    if not isinstance(m, Metric):
        raise ResultsError(
            f"metric: expected a minir1.stats.Metric; got {type(m).__name__} "
            "(build it with minir1.stats.rate / paired_diff / over_seeds / exact)"
        )
    return m.to_dict()


def to_json_metrics(obj: Any) -> Any:
    """Turn Metrics (possibly inside series dicts) into their results-file dicts."""
    if isinstance(obj, Metric):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): to_json_metrics(v) for k, v in obj.items()}
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def claim(id: str, verdict: str, evidence: str) -> dict:
    """A claim verdict; ``verdict`` must be one of :data:`VERDICTS`."""
    if verdict not in VERDICTS:
        raise ResultsError(f"verdict must be one of {', '.join(map(repr, VERDICTS))}; got {verdict!r}")
    return {"id": id, "verdict": verdict, "evidence": evidence}


def value(m: Any) -> float:
    """The point value of a metric (its mean when it has an interval)."""
    if isinstance(m, Metric):
        return m.mean
    return float(m["mean"]) if isinstance(m, dict) else float(m)


# ----------------------------------------------------------------------------- provenance
def git_commit(root: Path | None = None) -> str:
    """``HEAD``'s commit, with ``-dirty`` when tracked files other than the runner's own
    outputs (:data:`minir1.utils.RUNNER_OUTPUTS`) have uncommitted changes."""
    root = root or repo_root()
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = commit != "unknown" and bool(git_dirty_files(root, RUNNER_OUTPUTS))
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError, RuntimeError):
        return "unknown"


def publish_run_id() -> str:
    """The run id the chapter runner set in ``$MINIR1_PUBLISH`` (``""`` when not publishing)."""
    run_id = os.environ.get(PUBLISH_ENV, "")
    if run_id and (set(run_id) - set(_RUN_ID_OK) or run_id.startswith("-")):
        raise ResultsError(f"{PUBLISH_ENV} must be a run id of [a-z0-9-] set by `make chapters`; got {run_id!r}")
    return run_id


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


def edition(commit: str | None = None, device: str | None = None) -> dict:
    """The edition block of a results file: ``version`` (the minir1 package's), ``date`` (UTC,
    ``YYYY-MM-DD``, the day the result was made), ``commit`` and ``environment`` (python,
    torch, platform, device).  A book's edition is named in ``data/editions.yml`` and tagged
    ``edition-YYYY.MM.DD`` (see README, "Editions")."""
    try:
        version = importlib_metadata.version("minir1")
    except importlib_metadata.PackageNotFoundError:
        version = "unknown"
    v = versions(("torch",))
    env = f"python {v['python']}, torch {v.get('torch', '?')}, {platform.platform()}"
    return {
        "version": version,
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "commit": commit if commit is not None else git_commit(),
        "environment": env + (f", {device}" if device else ""),
    }


def provenance(*, wall_seconds: float, flops: float, notebook: str | None = None) -> dict:
    """Where a result came from.  Besides commit, hashes and versions: ``device`` (what ran
    it, from :func:`minir1.profiles.current_device`), ``threads`` (torch threads, so a
    1-thread run is not billed as 2 cores), ``run_id`` (the runner's, ``""`` by hand),
    ``allow_dirty`` (``ALLOW_DIRTY=1``), ``artifacts`` (the training cost of every cached
    model used, :func:`minir1.artifacts.used_records`) and ``artifacts_built`` (0 on a
    fully cached run)."""
    dev = current_device()
    commit = git_commit()
    device = device_name() if dev == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {
        "git_commit": commit,
        "source_hash": source_hash(notebook),
        "package_hash": package_hash(),
        "versions": versions(),
        "device": device,
        "device_type": dev,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "wall_seconds": round(float(wall_seconds), 3),
        "flops": float(flops),
        "run_id": publish_run_id(),
        "allow_dirty": os.environ.get("ALLOW_DIRTY", "") == "1",
        "artifacts": artifacts.used_records(),
        "artifacts_built": artifacts.built_count(),
        "edition": edition(commit, device),
    }


# ----------------------------------------------------------------------------- files
def staging_dir(run_id: str, root: Path | None = None) -> Path:
    """The runner's private copy of ``book/results`` for run ``run_id`` (git-ignored)."""
    return (root or repo_root()) / "book" / "results" / f".run-{run_id}.tmp"


def results_dir(profile: str | None = None) -> Path:
    """Where results go.  Only the chapter runner publishes: it sets ``$MINIR1_PUBLISH`` to
    its run id and results go to its staging copy of ``book/results`` (moved into place
    with the chapter when every cell succeeded).  Otherwise ``$MINIR1_RESULTS_DIR`` if set,
    else ``.artifacts/results-<profile>``: papermill by hand, JupyterLab and nbval never
    touch the book."""
    run_id = publish_run_id()
    if run_id:
        return staging_dir(run_id)
    env = os.environ.get("MINIR1_RESULTS_DIR")
    if env:
        return Path(env)
    return repo_root() / ".artifacts" / f"results-{profile or 'unknown'}"


def where_results_went(chapter: str, profile: str) -> str:
    """One line for a notebook's last cell: where this run's results file is.

    >>> import os; os.environ.pop("MINIR1_PUBLISH", None); os.environ.pop("MINIR1_RESULTS_DIR", None)
    >>> where_results_went("cost", "smoke").startswith("Results of this run: ")
    True
    """
    path = results_dir(profile) / f"{chapter}.json"
    if publish_run_id():
        return f"Results of this run: book/results/{chapter}.json (run {publish_run_id()}, published by make chapters)."
    try:
        shown = path.relative_to(repo_root())
    except ValueError:
        shown = path
    return f"Results of this run: {shown} (not the book: only `make chapters` writes book/results and book/chapters)."


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
    for eid, ev in obj.get("evals", {}).items():
        for key, m in ev["metrics"].items():
            _check_finite(m, f"{name}: field 'evals/{eid}/metrics/{key}'")
    return obj


def _check_finite(m: Any, where: str) -> None:
    if isinstance(m, dict) and "mean" not in m:
        for k, v in m.items():
            _check_finite(v, f"{where}/{k}")
        return
    nums = [m] if not isinstance(m, dict) else [m["mean"], m["lo"], m["hi"], *m["per_seed"]]
    if not all(math.isfinite(float(v)) for v in nums):
        raise ResultsError(f"{where}: values must be finite")
    if isinstance(m, dict):
        if not m["lo"] <= m["mean"] <= m["hi"]:
            raise ResultsError(f"{where}: interval [{m['lo']}, {m['hi']}] must contain the mean {m['mean']}")
        if m["unit"] == "rate" and not (0 <= m["lo"] and m["hi"] <= 1):
            raise ResultsError(f"{where}: a rate's interval must lie in [0, 1]; got [{m['lo']}, {m['hi']}]")
        if m["unit"] == "diff" and not (-1 <= m["lo"] and m["hi"] <= 1):
            raise ResultsError(f"{where}: a difference of rates must lie in [-1, 1]; got [{m['lo']}, {m['hi']}]")


@dataclasses.dataclass
class ChapterResult:
    """What an experiment's ``run(cfg, seeds)`` returns, and all a results file needs.

    ``metrics``: numbers, :class:`minir1.stats.Metric` objects or series of them;
    ``evals``: ``{eval_id: record}`` from :func:`minir1.evaluation.eval_record`;
    ``extra``: curves and samples for figures; ``flops``: compute spent; ``config``: the
    complete composed config (a dataclass); ``claims``: the verdicts; ``wall_seconds``: time
    spent in ``run``; ``detail``: raw objects the notebook may plot (never written to the file).
    """

    metrics: dict[str, Any]
    config: Any
    evals: dict[str, dict] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    flops: float = 0.0
    claims: list[dict] = dataclasses.field(default_factory=list)
    wall_seconds: float = 0.0
    detail: Any = dataclasses.field(default=None, repr=False)


def chapter_notebook(chapter: str) -> str | None:
    """The source notebook's file name of ``chapter`` (``notebooks/NN_<chapter>.ipynb``), if any."""
    hits = sorted((repo_root() / "notebooks").glob(f"[0-9][0-9]_{chapter}.ipynb"))
    return hits[0].name if hits else None


def write_results(
    chapter: str,
    result: ChapterResult,
    *,
    profile: str,
    seeds: Sequence[int],
    out_dir: str | os.PathLike | None = None,
) -> Path:
    """Validate and atomically write ``<out_dir>/<chapter>.json`` from an experiment's
    :class:`ChapterResult`; return its path (the one hand-off every chapter notebook makes)."""
    if not isinstance(result, ChapterResult):
        raise TypeError(f"write_results: result must be a ChapterResult (from run(cfg, seeds)); got {type(result)}")
    return write_record(
        chapter,
        profile=profile,
        seeds=seeds,
        config=result.config,
        metrics=result.metrics,
        claims=result.claims,
        wall_seconds=result.wall_seconds,
        flops=result.flops,
        notebook=chapter_notebook(chapter),
        extra=result.extra,
        evals=result.evals,
        out_dir=out_dir,
    )


def write_record(
    chapter: str,
    *,
    profile: str,
    seeds: Sequence[int],
    config: dict,
    metrics: dict,
    claims: Sequence[dict],
    wall_seconds: float,
    flops: float,
    notebook: str | None = None,
    extra: dict | None = None,
    evals: dict | None = None,
    out_dir: str | os.PathLike | None = None,
) -> Path:
    """Validate and atomically write ``<out_dir>/<chapter>.json``; return its path.

    ``config`` is the chapter's complete composed config (a dataclass or a dict);
    ``metrics`` values are numbers, :class:`minir1.stats.Metric` objects or series of them;
    ``evals`` holds one record per cached evaluation (:func:`minir1.evaluation.eval_record`).
    """
    check_profile(profile)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    obj = {
        "chapter": chapter,
        "profile": profile,
        "seeds": [int(s) for s in seeds],
        "config": json.loads(json.dumps(config, default=str)),
        "metrics": to_json_metrics(metrics),
        "claims": list(claims),
        "provenance": provenance(wall_seconds=wall_seconds, flops=flops, notebook=notebook),
    }
    if evals:
        obj["evals"] = json.loads(json.dumps(to_json_metrics(evals), default=str))
    if extra is not None:
        obj["extra"] = json.loads(json.dumps(to_json_metrics(extra), default=str))
    path = Path(out_dir) if out_dir is not None else results_dir(profile)
    validate(obj, f"{chapter}.json")
    if out_dir is None and publish_run_id() and not path.is_dir():
        raise ResultsError(
            f"cannot publish {chapter}.json: {path} does not exist ({PUBLISH_ENV} is "
            f"set only by `make chapters`, which creates it)"
        )
    return atomic_write_json(path / f"{chapter}.json", obj)


def load_results(chapter: str, profile: str | None = None, out_dir: str | os.PathLike | None = None) -> dict:
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
