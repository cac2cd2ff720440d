"""The data the cost and thesis chapters read: published figures (``data/published_costs.csv``
and the other ``data/published_*.csv``, each row with its source and a primary/secondary mark),
real model configs (``data/model_configs/*.json``), typed and checked; and the arithmetic that
only rearranges published figures: the comparators' training costs and the all-in range.

The cost chapter's names are re-exported by :mod:`minir1.cost`, which does the physics on them.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .stats import Metric
from .utils import repo_root

SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("llama", "qwen2", "deepseek_v3")
CSV_COLUMNS: tuple[str, ...] = ("item", "value", "unit", "source", "cite", "primary", "notes")
# Checkpoint-format keys that are not architecture (remote code, FP8 storage).
_NOT_ARCHITECTURE = ("_source", "auto_map", "quantization_config", "model_type")


def _data_dir() -> Path:
    d = repo_root() / "data"
    return d if d.exists() else Path(__file__).resolve().parents[2] / "data"


# ----------------------------------------------------------------------------- published figures
@dataclass(frozen=True)
class PublishedFigure:
    """One row of ``data/published_costs.csv``."""

    item: str
    value: float
    unit: str
    source: str  # where the number was read, e.g. "DeepSeek-V3 report, Table 1"
    cite: str  # key in book/references.bib
    primary: bool  # True: read in the paper or official file; False: press or blog report
    notes: str = ""


def load_published_costs(path: str | os.PathLike | None = None) -> dict[str, PublishedFigure]:
    """Read ``data/published_costs.csv`` into ``{item: PublishedFigure}``.

    >>> load_published_costs()["v3_total_gpu_hours"].value
    2788000.0
    """
    path = Path(path) if path is not None else _data_dir() / "published_costs.csv"
    if not path.exists():
        raise FileNotFoundError(f"published costs file not found at {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; need {CSV_COLUMNS}")
        out = {}
        for i, row in enumerate(reader, start=2):
            if row["primary"] not in ("true", "false"):
                raise ValueError(f"{path}:{i}: primary must be 'true' or 'false'; got {row['primary']!r}")
            if row["item"] in out:
                raise ValueError(f"{path}:{i}: duplicate item {row['item']!r}")
            out[row["item"]] = PublishedFigure(
                item=row["item"],
                value=float(row["value"]),
                unit=row["unit"],
                source=row["source"],
                cite=row["cite"],
                primary=row["primary"] == "true",
                notes=row["notes"] or "",
            )
    return out


# ----------------------------------------------------------------------------- model configs
def available_model_configs() -> list[str]:
    """Names of the real configs in ``data/model_configs/`` (file names without ``.json``)."""
    return sorted(p.stem for p in (_data_dir() / "model_configs").glob("*.json"))


def _check_model_type(model_type: Any) -> str:
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"model_type must be one of {', '.join(map(repr, SUPPORTED_MODEL_TYPES))}; got {model_type!r}")
    return model_type


def load_model_config(name: str | os.PathLike):
    """A ``transformers`` config from ``data/model_configs/<name>.json`` (or a path).

    The files are published ``config.json`` values typed by hand, with a ``_source`` key;
    keys that describe the checkpoint rather than the architecture are dropped.

    >>> load_model_config("deepseek-v3").num_hidden_layers
    61
    """
    from transformers import CONFIG_MAPPING

    path = Path(name)
    if path.suffix != ".json":
        path = _data_dir() / "model_configs" / f"{name}.json"
        if not path.exists():
            raise ValueError(f"model config must be one of {available_model_configs()} or a .json path; got {name!r}")
    if not path.exists():
        raise FileNotFoundError(f"model config not found at {path}")
    raw = json.loads(path.read_text())
    model_type = _check_model_type(raw.get("model_type"))
    return CONFIG_MAPPING[model_type](**{k: v for k, v in raw.items() if k not in _NOT_ARCHITECTURE})


# ----------------------------------------------------------------------------- other data files
def load_csv(name: str) -> list[dict]:
    """The rows of ``data/<name>.csv``, each checked to name its ``source`` and to say whether
    that source is primary (``primary``: ``true`` or ``false``)."""
    path = _data_dir() / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows, start=2):
        if not (r.get("source") or "").strip():
            raise ValueError(f"{path}:{i}: every row needs a 'source'")
        if r.get("primary") not in ("true", "false"):
            raise ValueError(f"{path}:{i}: primary must be 'true' or 'false'; got {r.get('primary')!r}")
    return rows


# ----------------------------------------------------------------------------- the thesis chapter's data
def load_benchmarks() -> dict[str, dict]:
    """``{benchmark: {"n": problems or None, "name": ..., "scores": {model: share}}}``;
    percentages become shares, other units (ratings, Elo) stay as published."""
    out: dict[str, dict] = {}
    for r in load_csv("published_benchmarks"):
        b = out.setdefault(
            r["benchmark"],
            {"n": int(r["n_problems"]) if r["n_problems"] else None, "name": r["benchmark_name"], "unit": r["unit"],
             "scores": {}},
        )  # fmt: skip
        v = float(r["value"])
        b["scores"][r["model"]] = v / 100 if r["unit"].startswith("%") else v
    return out


def load_hardware() -> dict[str, float]:
    """``{item: value}`` of ``data/published_hardware.csv``."""
    return {r["item"]: float(r["value"]) for r in load_csv("published_hardware")}


def load_prices() -> dict[tuple[str, str], float]:
    """``{(model, item): value}`` of ``data/published_prices.csv``."""
    return {(r["model"], r["item"]): float(r["value"]) for r in load_csv("published_prices")}


def load_replications() -> list[dict]:
    """The rows of ``data/published_replications.csv``, each with its ``class`` derived from the
    recorded criteria (:func:`replication_class`)."""
    return [{**r, "class": replication_class(r)} for r in load_csv("published_replications")]


def load_not_testable() -> list[dict]:
    """The article's sentences this book cannot test (``data/not_testable.csv``)."""
    return load_csv("not_testable")


def replication_class(row: Mapping[str, str]) -> str:
    """The protocol's class of a replication (data/README.md): ``full-r1`` (RL with verifiable
    rewards, from a base model, R1's multi-stage pipeline, general benchmarks), ``r1-zero`` (RL
    from a base), ``rl-on-distill`` (RL on a model trained on a reasoner's traces), else
    ``sft-distill``; ``original`` for R1 itself."""
    if row["scope"] == "original":
        return "original"
    rl, base, multi, general = (row[k] == "true" for k in ("rl", "from_base", "multi_stage", "general_eval"))
    if rl and base and multi and general:
        return "full-r1"
    if rl:
        return "r1-zero" if base else "rl-on-distill"
    return "sft-distill"


# ----------------------------------------------------------------------------- comparators, all-in
# Published training-compute costs of US models: (label, low item, high item, priced). A
# ``priced`` entry is GPU-hours, priced at V3's $2 per GPU-hour; a range (low != high) is a
# statement without a number ("a few $10M's"), read as the two items say.
COMPARATORS: dict[str, tuple[str, str, str, bool]] = {
    "gpt4": ("GPT-4 (AI Index 2024, secondary)", "gpt4_training_cost_usd", "gpt4_training_cost_usd", False),
    "gemini_ultra": (
        "Gemini Ultra (AI Index 2024, secondary)",
        "gemini_ultra_training_cost_usd",
        "gemini_ultra_training_cost_usd",
        False,
    ),
    "claude35_sonnet": (
        "Claude 3.5 Sonnet (Anthropic's CEO, Jan 2025, primary)",
        "claude35_sonnet_training_cost_usd_low",
        "claude35_sonnet_training_cost_usd_high",
        False,
    ),
    "llama405b": (
        "Llama 3.1 405B (Meta's GPU-hours × $2, primary)",
        "llama405b_gpu_hours",
        "llama405b_gpu_hours",
        True,
    ),
}


def comparator_costs(pub: Mapping[str, PublishedFigure]) -> dict[str, tuple[float, float]]:
    """``{comparator: (low, high)}`` in US dollars (see :data:`COMPARATORS`)."""
    rate = pub["v3_usd_per_gpu_hour"].value
    return {
        k: tuple(pub[item].value * (rate if priced else 1.0) for item in (lo, hi))
        for k, (_, lo, hi, priced) in COMPARATORS.items()
    }


def cheapest_ratio(costs: Mapping[str, tuple[float, float]], names: Sequence[str], denominator: float) -> Metric:
    """The cheapest of ``names`` over ``denominator``: an interval over the readings of the
    published ranges (lo: the lowest low, hi: the lowest high), not a sampling interval; the
    point is their geometric midpoint.

    >>> m = cheapest_ratio({"a": (20.0, 50.0), "b": (78.0, 78.0)}, ["a", "b"], 5.0)
    >>> m.lo, m.hi, round(m.mean, 2)
    (4.0, 10.0, 6.32)
    """
    if not names or denominator <= 0:
        raise ValueError(f"names must be non-empty and denominator > 0; got {names!r}, {denominator!r}")
    lo, hi = (min(costs[n][i] for n in names) / denominator for i in (0, 1))
    return Metric(math.sqrt(lo * hi), lo, hi, method="exact", unit="ratio")


def all_in_items(pub: Mapping[str, PublishedFigure], *, with_r1_rl: bool = True) -> list[dict]:
    """What the model cost beyond the reported bill, item by item, each with its source:
    ``{item, usd (None where no number is published), documented, source, primary}``."""
    rate = pub["v3_usd_per_gpu_hour"].value

    def row(item, usd, documented, fig):
        return {"item": item, "usd": usd, "documented": documented, "source": fig.source, "primary": fig.primary}

    rows = [row("V3 final run (reported)", pub["v3_total_cost_usd"].value, True, pub["v3_total_cost_usd"])]
    if with_r1_rl:
        fig = pub["r1_rl_gpu_hours"]
        rows.append(row("R1's RL stages and SFT data (147K GPU-hours × $2)", fig.value * rate, True, fig))
    rows.append(
        row("prior research and ablations (excluded, V3 report section 1)", None, False, pub["v3_total_cost_usd"])
    )
    hw = pub["deepseek_hardware_usd"]
    rows.append(row("DeepSeek's hardware spend (capital, a lower bound)", hw.value, False, hw))
    return rows


def all_in_over_reported(pub: Mapping[str, PublishedFigure], *, with_r1_rl: bool = True) -> Metric:
    """The all-in cost as a range over the reported $5.576M: lo = the documented items only,
    hi = those plus DeepSeek's hardware spend; the point is the documented sum (arithmetic on
    published figures: the interval spans what is and is not counted, not sampling)."""
    rows = all_in_items(pub, with_r1_rl=with_r1_rl)
    reported = pub["v3_total_cost_usd"].value
    lo = sum(r["usd"] for r in rows if r["documented"]) / reported
    hi = sum(r["usd"] or 0.0 for r in rows) / reported
    return Metric(lo, lo, hi, method="exact", unit="ratio")
