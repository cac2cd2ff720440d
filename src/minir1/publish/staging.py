"""The book's publishing transaction: guards before a run, and the all-or-nothing move after it.

A published run stages a chapter and its results side by side in a private folder
(:func:`minir1.results.staging_dir`, ``book/results/.run-<id>.tmp``); when every cell
succeeded, a manifest (``publish.json``) is written atomically and :func:`_finish` renames
the staged files into place.  A run killed before the manifest leaves the book untouched
(:func:`recover` removes its folder); one killed after it is completed by :func:`recover`.
Before any of that, :func:`check_book_writable`, :func:`check_clean` and :func:`run_lock`
refuse a wrong checkout, uncommitted changes and a second run at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import time
from pathlib import Path

from ..utils import git_dirty_files, repo_root


class PublishError(RuntimeError):
    """The book cannot be written (missing or read-only folder, dirty tree, another run)."""


def new_run_id() -> str:
    """A fresh run id, e.g. ``20250101t120000-3f2a9c1b`` (time, then 8 random hex digits)."""
    return time.strftime("%Y%m%dt%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


def check_book_writable(root: Path | None = None) -> None:
    """Raise :class:`PublishError` naming the folder when ``book/results`` or
    ``book/chapters`` is missing or not writable (the runner never creates them: a missing
    one means a wrong checkout, and nothing should be written elsewhere instead)."""
    root = Path(root) if root is not None else repo_root()
    for d in (root / "book" / "results", root / "book" / "chapters"):
        if not d.is_dir():
            raise PublishError(
                f"{d} does not exist: the published book lives there; check out the "
                "repository (or restore the folder) before `make chapters`"
            )
        if not os.access(d, os.W_OK | os.X_OK):
            raise PublishError(
                f"{d} is not writable: `make chapters` must replace files there "
                f"(fix its permissions, e.g. `chmod u+w {d}`)"
            )


def check_clean(root: Path | None = None, allow_dirty: bool = False) -> list[str]:
    """The tracked files with uncommitted changes outside the runner's outputs; raise
    :class:`PublishError` listing them unless ``allow_dirty``."""
    dirty = git_dirty_files(root)
    if dirty and not allow_dirty:
        shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
        raise PublishError(
            f"uncommitted changes to tracked files: {shown}. Commit them first, so each "
            "chapter records the commit it ran; for a draft, `make chapters ALLOW_DIRTY=1` "
            "(recorded, and rejected by `make test`)."
        )
    return dirty


@contextlib.contextmanager
def run_lock(root: Path | None = None, wait: bool = False):
    """Hold ``.artifacts/chapters.lock`` for the duration; a second holder waits (``wait``)
    or gets :class:`PublishError` naming the running process."""
    root = Path(root) if root is not None else repo_root()
    path = root / ".artifacts" / "chapters.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise PublishError(
                f"another `make chapters` is running ({holder}; lock {path}). Wait for it "
                "to finish, or run with WAIT=1 (`--wait`) to queue behind it."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def _finish(staging: Path, root: Path) -> list[Path]:
    """Move the files a manifest names into place, then remove the staging folder."""
    manifest = json.loads((staging / "publish.json").read_text())
    done = []
    for staged, target in manifest["files"].items():
        src, dst = staging / staged, root / target
        if src.exists():  # absent when a killed earlier finish had moved it already
            os.replace(src, dst)
        done.append(dst)
    shutil.rmtree(staging)
    return done


def recover(root: Path | None = None) -> list[str]:
    """Settle runs that were killed (call with the lock held): a staging folder with its
    manifest is completed (every cell had succeeded), one without it is removed (the book
    was never touched).  Returns one line per folder settled."""
    root = Path(root) if root is not None else repo_root()
    notes = []
    for staging in sorted((root / "book" / "results").glob(".run-*.tmp")):
        if (staging / "publish.json").exists():
            files = _finish(staging, root)
            notes.append(f"completed interrupted run {staging.name}: {', '.join(p.name for p in files)}")
        else:
            shutil.rmtree(staging, ignore_errors=True)
            notes.append(f"removed unfinished run {staging.name} (the book was not touched)")
    return notes
