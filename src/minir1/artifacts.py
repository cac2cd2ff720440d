"""The artifact cache: trained models shared across chapters, outside git.

An artifact lives in ``.artifacts/<kind>/<key>/``.  Its key is *derived*, never bumped by
hand: the hash of its composed config plus the source of the modules that build it, found
by following the builder function's module through its ``minir1`` imports
(:func:`minir1.utils.module_closure`; the publishing tier is left out).  A changed config
or a changed line of building code gives a new key, so a stale model is never reused;
``force=True`` rebuilds.

Faults it survives:

- an interrupted build (an exception, or ``kill -9``) leaves only a ``.tmp-*`` folder that
  is never trusted and is removed by a later build once its process is gone;
- a model file truncated or altered on disk: ``meta.json`` records the sha256 of every
  file, :func:`cached` checks them before returning the folder, and rebuilds (with a
  warning) when one differs.  A corrupt model is never handed out for loading;
- two processes asking for the same missing artifact (two chapters at once): a build holds
  an exclusive lock on ``.locks/<kind>-<key>``, so the second waits and then loads what the
  first built instead of building it again.  Builds nest along the artifacts' dependencies,
  which have no cycles, so the locks cannot deadlock.

``meta.json`` also records what the build cost (``flops``, ``wall_seconds``, ``threads``),
so a results file can list the training cost of each model it used
(:func:`training_record`, :func:`used_records`) and the compute ledger can count each
trained model once.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable

import torch

try:  # POSIX; without it (Windows) concurrent builds of one artifact are merely duplicated
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from .utils import atomic_write_json, code_hash, repo_root, stable_hash

EXCLUDE: tuple[str, ...] = ("minir1.publish",)  # publishing never shapes a model
_META = "meta.json"

# What this process did with the cache (a chapter runs in one kernel): keys built, and
# folders handed out (built or reused).  Results files record both.
_BUILT: list[str] = []
_USED: dict[str, Path] = {}


class CorruptArtifact(RuntimeError):
    """An artifact's files do not match the checksums in its ``meta.json``."""


def artifacts_dir() -> Path:
    """``$MINIR1_ARTIFACTS`` or ``<repo>/.artifacts``."""
    env = os.environ.get("MINIR1_ARTIFACTS")
    return Path(env) if env else repo_root() / ".artifacts"


def builder_modules(build_fn: Callable) -> list[str]:
    """The module that defines ``build_fn`` (a closure counts where it is written)."""
    fn = inspect.unwrap(build_fn)
    name = getattr(fn, "__module__", None) or getattr(type(fn), "__module__", None)
    if not name:
        raise ValueError(f"build_fn must be a function defined in a module; got {build_fn!r}")
    return [name]


def code_version(build_fn: Callable, modules: Iterable[str] = ()) -> str:
    """Hash of the source of ``build_fn``'s module and every ``minir1`` module it imports
    (transitively, without :data:`EXCLUDE`), plus any extra ``modules`` named."""
    return code_hash([*builder_modules(build_fn), *modules], exclude=EXCLUDE)


def module_version(*modules: str) -> str:
    """Hash of the source of the named ``minir1`` modules and everything they import (what
    :func:`code_version` does for a builder), e.g. ``module_version(__name__)``."""
    return code_hash(modules, exclude=EXCLUDE)


def key(kind: str, config: dict, build_fn: Callable, modules: Iterable[str] = ()) -> str:
    """The cache key of artifact ``kind``: hash of config and building code."""
    return stable_hash({"kind": kind, "config": config, "code": code_version(build_fn, modules)})


# ----------------------------------------------------------------------------- checksums
def file_checksums(folder: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file under ``folder`` except ``meta.json`` (relative path -> hex)."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != _META:
            h = hashlib.sha256()
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[p.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def verify(folder: str | os.PathLike) -> dict:
    """The artifact's meta if every file matches its recorded checksum; else raise
    :class:`CorruptArtifact` naming the files that are missing, added or changed."""
    folder = Path(folder)
    meta = load_meta(folder)
    want, have = meta.get("files"), file_checksums(folder)
    if not isinstance(want, dict):
        raise CorruptArtifact(f"{folder}: meta.json records no file checksums")
    bad = sorted(n for n in set(want) | set(have) if want.get(n) != have.get(n))
    if bad:
        raise CorruptArtifact(f"{folder}: files differ from their checksums in meta.json: {', '.join(bad)}")
    return meta


# ----------------------------------------------------------------------------- the cache
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_tmp(parent: Path) -> None:
    """Remove ``.tmp-<key>-<pid>-*`` build folders whose process is gone (killed builds)."""
    for p in parent.glob(".tmp-*"):
        parts = p.name.split("-")
        if len(parts) >= 3 and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            shutil.rmtree(p, ignore_errors=True)


def cached(
    kind: str,
    config: dict,
    build_fn: Callable[[Path], dict | None],
    *,
    force: bool = False,
    modules: Iterable[str] = (),
) -> Path:
    """Return the folder of artifact ``kind`` for ``config``, building it with ``build_fn`` if needed.

    ``build_fn(folder)`` writes the artifact into ``folder`` and may return a dict of
    metadata (losses, ``flops``, ``wall_seconds``) stored in ``meta.json`` with the key,
    the config, the checksum of every file, the build's wall time and torch threads.
    ``modules`` names extra modules to hash (the builder's own imports are found alone).
    """
    if not kind or "/" in kind:
        raise ValueError(f"kind must be a non-empty name without '/'; got {kind!r}")
    k = key(kind, config, build_fn, modules)
    final = artifacts_dir() / kind / k
    if not force and _usable(final, kind, k, warn=False):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    locks = artifacts_dir() / ".locks"  # apart from the artifacts, so a failed build leaves its folder empty
    locks.mkdir(exist_ok=True)
    with _build_lock(locks / f"{kind}-{k}"):
        if not force and _usable(final, kind, k, warn=True):  # built meanwhile by another process
            return final
        return _build(kind, k, final, config, build_fn, modules)


def _usable(final: Path, kind: str, k: str, *, warn: bool) -> bool:
    """Whether ``final`` holds a verified artifact (then it is recorded as used)."""
    if not final.is_dir():
        return False
    try:
        verify(final)
    except (CorruptArtifact, FileNotFoundError, json.JSONDecodeError) as e:
        if warn:
            warnings.warn(f"rebuilding artifact {kind}/{k}: {e}", RuntimeWarning, stacklevel=3)
        return False
    _USED[k] = final
    return True


@contextlib.contextmanager
def _build_lock(path: Path):
    """An exclusive lock on ``path`` for the duration of a build (blocks while another process holds it)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build(kind: str, k: str, final: Path, config: dict, build_fn, modules) -> Path:
    _remove_dead_tmp(final.parent)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{k}-{os.getpid()}-"))
    try:
        t0 = time.perf_counter()
        meta = build_fn(tmp) or {}
        wall = time.perf_counter() - t0
        atomic_write_json(
            tmp / _META,
            {
                "kind": kind,
                "key": k,
                "config": config,
                "code_version": code_version(build_fn, modules),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(wall, 3),
                "threads": torch.get_num_threads(),
                **meta,
                "files": file_checksums(tmp),
            },
        )
        if final.exists():  # forced, corrupt, or half-removed: move aside, then swap in
            old = final.with_name(f".tmp-{k}-{os.getpid()}-old")
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _BUILT.append(k)
    _USED[k] = final
    return final


def load_meta(path: str | os.PathLike) -> dict:
    p = Path(path) / _META
    if not p.exists():
        raise FileNotFoundError(f"{path} is not a minir1 artifact (no meta.json)")
    return json.loads(p.read_text())


# ----------------------------------------------------------------------------- costs
def training_record(path: str | os.PathLike) -> dict:
    """What building the artifact at ``path`` cost: ``{key, kind, flops, wall_seconds,
    threads}`` from its ``meta.json`` (``wall_seconds``: the builder's own figure, else the
    build's measured wall time).  Results files list these under ``provenance.artifacts``
    so the ledger counts each trained model once."""
    meta = load_meta(path)
    wall = meta.get("wall_seconds", meta.get("build_seconds", 0.0))
    return {
        "key": meta.get("key", Path(path).name),
        "kind": meta.get("kind", Path(path).parent.name),
        "flops": float(meta.get("flops", 0.0) or 0.0),
        "wall_seconds": float(wall or 0.0),
        "threads": int(meta.get("threads", 0) or 0),
    }


def used_records() -> list[dict]:
    """:func:`training_record` of every artifact this process built or reused, each with
    ``built`` (True when this process trained it)."""
    out = []
    for k, path in _USED.items():
        try:
            out.append({**training_record(path), "built": k in _BUILT})
        except FileNotFoundError:  # removed since (e.g. rebuilt by someone else): skip
            continue
    return out


def built_count() -> int:
    """How many artifacts this process built (0 on a fully cached run)."""
    return len(_BUILT)
