"""The claims registry (``data/claims.yml``): the article's thesis and its testable claims.

The registry holds the article's thesis and one entry per testable claim: ``id``, the
article's words (``claim``), ``topic`` and the ``chapter`` whose results file
(``book/results/<chapter>.json``) carries its verdict.  This module only reads and checks
it; the intro's table of verdicts is :mod:`minir1.publish.claims`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .utils import repo_root

_REQUIRED = ("id", "claim", "topic", "chapter")


def registry_path() -> Path:
    return repo_root() / "data" / "claims.yml"


def load_registry(path: str | os.PathLike | None = None) -> dict:
    """Read and check the whole registry: ``{"source", "thesis", "claims": [...]}``."""
    path = Path(path) if path is not None else registry_path()
    if not path.exists():
        raise FileNotFoundError(f"claims registry not found at {path}")
    reg = yaml.safe_load(path.read_text())
    if not isinstance(reg, dict):
        raise ValueError(f"{path}: expected a mapping with keys 'source', 'thesis', 'claims'")
    for key in ("source", "thesis", "claims"):
        if not reg.get(key):
            raise ValueError(f"{path}: missing top-level field {key!r}")
    seen = set()
    for i, c in enumerate(reg["claims"]):
        missing = [k for k in _REQUIRED if not c.get(k)]
        if missing:
            raise ValueError(f"{path}: claims[{i}] is missing field(s) {', '.join(missing)}")
        if c["id"] in seen:
            raise ValueError(f"{path}: duplicate claim id {c['id']!r}")
        seen.add(c["id"])
    return reg


def load_claims(path: str | os.PathLike | None = None) -> list[dict]:
    """The registry's claims, in book order.

    >>> [c["id"] for c in load_claims()][:2]
    ['cost-final-run', 'cost-fraction-of-compute']
    """
    return load_registry(path)["claims"]


def claims_by_id(path: str | os.PathLike | None = None) -> dict[str, dict]:
    return {c["id"]: c for c in load_claims(path)}


def thesis(path: str | os.PathLike | None = None) -> str:
    """The article's thesis, as quoted in the registry."""
    return load_registry(path)["thesis"]
