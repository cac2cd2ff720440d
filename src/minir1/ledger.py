"""The book's compute bill: what reproducing every chapter costs, next to V3's and R1's.

:func:`read_ledger` reads every results file it finds (``book/results/*.json`` by default)
and takes ``provenance.flops`` and ``provenance.wall_seconds`` from each; the ledger is computed
when the book is built (``python -m minir1.publish.ledger`` writes ``book/_generated/ledger.md``
from the current results files, :mod:`minir1.publish.ledger`), never copied from an older run.

Each trained model is counted once.  A results file lists the training cost of every cached
model it used under ``provenance.artifacts`` (``{key, kind, flops, wall_seconds, threads,
built}``, :func:`minir1.artifacts.used_records`).  :func:`artifact_rows` gives one row per
distinct key; each chapter's own row is its cost without them: wall time minus the models it
trained during the run (``built``), FLOPs minus the training FLOPs of every model it lists
(a chapter's ``flops`` includes those of the models it uses, built or cached; never below 0).
So a model trained by the lab and reused by three chapters is billed once, whichever chapter
happened to train it.  :func:`bill` turns rows into

- CPU-hours: wall seconds × the threads the run used (``provenance.threads``, at most the
  machine's cores; all cores when a file does not say) / 3600: a 1-thread run is one core;
- GPU-hours and dollars on a rented GPU: FLOPs / (peak × an assumed MFU), priced at V3's
  $2 per H800 GPU-hour (V3 report, Table 1).  The MFU is an assumption, stated in
  :class:`LedgerConfig`: by default V3's own implied BF16 MFU (~35%, cost chapter), which
  models of a million parameters would never reach on a GPU, so the GPU figure is a floor
  on FLOPs, not a quote for a real rental (which would be billed by the hour anyway).

Chapters that count no FLOPs (0 in the file, e.g. one that only does arithmetic) are
listed with 0; a file with no ``provenance.flops`` or ``provenance.wall_seconds`` at all
stops the ledger with a ``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence


@dataclass(frozen=True)
class LedgerConfig:
    cores: int = 2  # CPU cores of the machine the book runs on
    usd_per_gpu_hour: float = 2.0  # V3 Table 1: "rental price of the H800 is $2 per GPU hour"
    gpu_peak_flops: float = 989e12  # H800 = H100 SXM dense BF16 peak (NVIDIA datasheet)
    assumed_mfu: float = 0.35  # V3's implied BF16 MFU by 6ND (cost chapter: ~35%)

    def __post_init__(self):
        for name in ("cores", "usd_per_gpu_hour", "gpu_peak_flops", "assumed_mfu"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
        if self.assumed_mfu > 1:
            raise ValueError(f"assumed_mfu must be in (0, 1]; got {self.assumed_mfu!r}")


@dataclass(frozen=True)
class LedgerRow:
    """One results file's own cost, or one trained model's (``kind="artifact"``)."""

    chapter: str
    profile: str
    flops: float
    wall_seconds: float
    file: str
    threads: int = 0  # torch threads of the run; 0 = not recorded (billed at all cores)
    kind: str = "chapter"  # "chapter" or "artifact"


def _number(prov: Mapping, key: str, path: Path) -> float:
    v = prov.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(
            f"{path}: provenance.{key} must be a finite number >= 0 (the ledger "
            f"needs every results file's FLOPs and wall time); got {v!r}"
        )
    return float(v)


def _read(path: Path) -> tuple[dict, dict]:
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    prov = obj.get("provenance") if isinstance(obj, dict) else None
    if not isinstance(prov, dict):
        raise ValueError(f"{path}: no provenance object, so no FLOPs or wall time to bill")
    return obj, prov


def _artifacts(prov: Mapping, path: Path) -> list[dict]:
    arts = prov.get("artifacts", [])
    if not isinstance(arts, list) or not all(isinstance(a, dict) and a.get("key") for a in arts):
        raise ValueError(
            f"{path}: provenance.artifacts must be a list of {{key, kind, flops, wall_seconds, "
            f"threads}} records; got {arts!r}"
        )
    return arts


def row_from_file(path: str | os.PathLike) -> LedgerRow:
    """The ledger row of one results file: its own cost, without the training of the models
    it lists (see the module docstring); ``ValueError`` naming the file if it lacks
    ``provenance.flops`` or ``provenance.wall_seconds`` or is not JSON."""
    path = Path(path)
    obj, prov = _read(path)
    arts = _artifacts(prov, path)
    flops, wall = _number(prov, "flops", path), _number(prov, "wall_seconds", path)
    trained_wall = sum(_number(a, "wall_seconds", path) for a in arts if a.get("built"))
    trained_flops = sum(_number(a, "flops", path) for a in arts)
    return LedgerRow(
        chapter=str(obj.get("chapter", path.stem)),
        profile=str(obj.get("profile", "?")),
        flops=max(flops - trained_flops, 0.0),
        wall_seconds=max(wall - trained_wall, 0.0),
        file=path.name,
        threads=int(prov.get("threads", 0) or 0),
    )


def artifact_rows(results_dir: str | os.PathLike, exclude: Sequence[str] = ()) -> list[LedgerRow]:
    """One row per trained model (distinct ``key``) listed by any results file, with the
    training cost recorded in its ``meta.json`` (first file in name order wins)."""
    seen: dict[str, LedgerRow] = {}
    d = Path(results_dir)
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        if p.stem in exclude:
            continue
        obj, prov = _read(p)
        for a in _artifacts(prov, p):
            if a["key"] not in seen:
                seen[a["key"]] = LedgerRow(
                    chapter=f"{a.get('kind', 'model')} {a['key'][:8]}",
                    profile=str(obj.get("profile", "?")),
                    flops=_number(a, "flops", p),
                    wall_seconds=_number(a, "wall_seconds", p),
                    file=p.name,
                    threads=int(a.get("threads", 0) or 0),
                    kind="artifact",
                )
    return list(seen.values())


def read_ledger(
    results_dir: str | os.PathLike, exclude: Sequence[str] = (), *, missing_ok: bool = False
) -> list[LedgerRow]:
    """One row per ``*.json`` in ``results_dir`` (sorted by name), skipping files whose stem
    is in ``exclude`` (e.g. the chapter that is adding its own, fresher row).  A missing
    folder is an error unless ``missing_ok`` (then no chapter has run yet: no rows)."""
    d = Path(results_dir)
    if not d.is_dir():
        if missing_ok and not d.exists():
            return []
        raise FileNotFoundError(f"results_dir {d} is not a folder")
    return [row_from_file(p) for p in sorted(d.glob("*.json")) if p.stem not in exclude]


def bill(rows: Sequence[LedgerRow], cfg: LedgerConfig = LedgerConfig()) -> list[dict]:
    """Each row with CPU-hours, GPU-hours at the assumed MFU and dollars, then a total row.

    >>> b = bill([LedgerRow("x", "cpu", 989e12 * 0.35 * 3600, 1800.0, "x.json")])
    >>> b[-1]["cpu_hours"], round(b[-1]["gpu_hours"], 6), b[-1]["usd"]
    (1.0, 1.0, 2.0)
    """
    out = []
    for r in rows:
        gpu_h = r.flops / (cfg.gpu_peak_flops * cfg.assumed_mfu) / 3600.0
        cores = min(r.threads, cfg.cores) if r.threads > 0 else cfg.cores
        out.append(
            {
                "item": r.chapter,
                "file": r.file,
                "profile": r.profile,
                "flops": r.flops,
                "wall_seconds": r.wall_seconds,
                "cpu_hours": r.wall_seconds * cores / 3600.0,
                "gpu_hours": gpu_h,
                "usd": gpu_h * cfg.usd_per_gpu_hour,
            }
        )
    total = {k: sum(o[k] for o in out) for k in ("flops", "wall_seconds", "cpu_hours", "gpu_hours", "usd")}
    n_files = sum(r.kind == "chapter" for r in rows)
    n_models = len(rows) - n_files
    out.append(
        {
            "item": "whole book",
            "file": f"{n_files} files" + (f", {n_models} models" if n_models else ""),
            "profile": "",
            **total,
        }
    )
    return out


def _published(pub: Mapping | None) -> Mapping:
    from .cost import load_published_costs

    return load_published_costs() if pub is None else pub


def published_bills(pub: Mapping | None = None) -> list[dict]:
    """V3's final run (primary, V3 Table 1) and R1 = V3 + its RL stage (RL figures from the
    R1 Nature / arXiv v2 version, secondary), in the ledger's columns.  ``pub`` defaults to
    :func:`minir1.cost.load_published_costs`; V3's FLOPs are 6ND of its pre-training."""
    pub = _published(pub)
    rate = pub["v3_usd_per_gpu_hour"].value
    v3_h, rl_h = pub["v3_total_gpu_hours"].value, pub["r1_rl_gpu_hours"].value
    v3_flops = 6.0 * pub["v3_active_params"].value * pub["v3_tokens"].value
    nan = None  # not published
    return [
        {
            "item": "DeepSeek-V3 final run (published)",
            "file": "V3 Table 1",
            "profile": "",
            "flops": v3_flops,
            "wall_seconds": nan,
            "cpu_hours": nan,
            "gpu_hours": v3_h,
            "usd": v3_h * rate,
        },
        {
            "item": "DeepSeek-R1 = V3 + RL (RL secondary)",
            "file": "R1 v2",
            "profile": "",
            "flops": nan,
            "wall_seconds": nan,
            "cpu_hours": nan,
            "gpu_hours": v3_h + rl_h,
            "usd": (v3_h + rl_h) * rate,
        },
    ]


def ledger_metrics(rows: Sequence[LedgerRow], pub: Mapping | None = None, cfg: LedgerConfig = LedgerConfig()) -> dict:
    """The ledger's numbers for a results file: the book's totals and the published bills."""
    total, (v3, r1) = bill(rows, cfg)[-1], published_bills(pub)
    return {
        "book_total_cpu_hours": total["cpu_hours"],
        "book_total_wall_seconds": total["wall_seconds"],
        "book_total_flops": total["flops"],
        "book_gpu_hours": total["gpu_hours"],
        "book_gpu_usd": total["usd"],
        "book_n_results_files": float(sum(r.kind == "chapter" for r in rows)),
        "v3_total_cost_usd": v3["usd"],
        "r1_total_cost_usd": r1["usd"],
        "ledger_assumed_mfu": cfg.assumed_mfu,
        "ledger_usd_per_gpu_hour": cfg.usd_per_gpu_hour,
    }


def ledger_rows(results_dir: str | os.PathLike, exclude: Sequence[str] = ()) -> list[LedgerRow]:
    """Every chapter's own row, then each trained model once."""
    return read_ledger(results_dir, exclude) + artifact_rows(results_dir, exclude)


def book_bill(results_dir: str | os.PathLike, cfg: LedgerConfig = LedgerConfig()) -> dict:
    """The book's whole bill: the one figure every page quotes (the ledger page, the thesis
    chapter), so they cannot disagree.  Every results file's own row and each trained model once
    (:func:`ledger_rows`), totalled by :func:`bill`: ``{flops, wall_seconds, cpu_hours,
    gpu_hours, usd, n_files, n_models}``.  A missing folder (no chapter has run yet): zeros."""
    d = Path(results_dir)
    rows = ledger_rows(d) if d.is_dir() else []
    total = bill(rows, cfg)[-1]
    n_files = sum(r.kind == "chapter" for r in rows)
    keys = ("flops", "wall_seconds", "cpu_hours", "gpu_hours", "usd")
    return {**{k: float(total[k]) for k in keys}, "n_files": float(n_files), "n_models": float(len(rows) - n_files)}
