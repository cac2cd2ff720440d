"""The data the cost chapter reads: published figures (``data/published_costs.csv``) and real
model configs (``data/model_configs/*.json``), typed and checked.

Every name here is re-exported by :mod:`minir1.cost`, which does the arithmetic on them.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
