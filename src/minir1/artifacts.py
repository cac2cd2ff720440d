"""The artifact cache: trained models shared across chapters, outside git.

An artifact lives in ``.artifacts/<kind>/<key>/`` where ``key`` hashes the full config
and the code version (the source of the modules that shape the result).  A changed
config or changed code gives a new key, so stale models are never reused; ``force=True``
rebuilds.  Artifacts are built in a temp folder and renamed into place, so an
interrupted run leaves nothing half-written that a later run would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from .utils import atomic_write_json, repo_root, stable_hash

# Modules whose code changes what a trained model is.  The chapter-level modules that
# orchestrate training (lab.py, rl.py) are not hashed, so that editing their evaluation or
# reporting code does not retrain models; they put a version number in the config instead,
# bumped whenever their training code changes.
CODE_MODULES: tuple[str, ...] = ("models.py", "train.py", "tokenizer.py", "corpus.py",
                                 "tasks/__init__.py", "tasks/arithmetic.py", "tasks/countdown.py")


def artifacts_dir() -> Path:
    """``$MINIR1_ARTIFACTS`` or ``<repo>/.artifacts``."""
    env = os.environ.get("MINIR1_ARTIFACTS")
    return Path(env) if env else repo_root() / ".artifacts"


def code_version(modules: Iterable[str] = CODE_MODULES) -> str:
    """Hash of the listed package modules (missing ones are skipped)."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        p = pkg / name
        if p.exists():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def key(kind: str, config: dict, modules: Iterable[str] = CODE_MODULES) -> str:
    return stable_hash({"kind": kind, "config": config, "code": code_version(modules)})


def cached(kind: str, config: dict, build_fn: Callable[[Path], dict | None], *, force: bool = False,
           modules: Iterable[str] = CODE_MODULES) -> Path:
    """Return the folder of artifact ``kind`` for ``config``, building it with ``build_fn`` if needed.

    ``build_fn(folder)`` writes the artifact into ``folder`` and may return a dict of
    metadata (losses, wall time, FLOPs) stored as ``meta.json`` beside the config.
    """
    if not kind or "/" in kind:
        raise ValueError(f"kind must be a non-empty name without '/'; got {kind!r}")
    k = key(kind, config, modules)
    final = artifacts_dir() / kind / k
    if final.is_dir() and (final / "meta.json").exists() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{k}-"))
    try:
        meta = build_fn(tmp) or {}
        atomic_write_json(tmp / "meta.json", {"kind": kind, "key": k, "config": config,
                                              "code_version": code_version(modules),
                                              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                              **meta})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_meta(path: str | os.PathLike) -> dict:
    p = Path(path) / "meta.json"
    if not p.exists():
        raise FileNotFoundError(f"{path} is not a minir1 artifact (no meta.json)")
    return json.loads(p.read_text())
