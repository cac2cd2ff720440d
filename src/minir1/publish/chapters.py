"""Execute the source notebooks into the book's chapters (``make chapters``): the only path
that writes ``book/chapters/`` and ``book/results/``.

``notebooks/NN_name.ipynb`` is the clean source; ``book/chapters/NN_name.ipynb`` is the
executed chapter that the book shows (Jupyter Book never executes anything).

**Publishing is explicit.**  For each chapter the runner draws a run id and executes the
notebook with ``$MINIR1_PUBLISH=<run id>``; only then does :func:`minir1.results.results_dir`
point at the book (a private staging copy of ``book/results``, ``.run-<id>.tmp``).  Any other
execution (papermill by hand, JupyterLab, nbval) writes to ``.artifacts/results-<profile>``.
The run id is stamped into both the chapter's ``metadata.minir1`` and its results file; the
project tests fail when they differ.

**All or nothing.**  The chapter and its results are staged side by side; when every cell
succeeded, a manifest (``publish.json``) is written atomically and the staged files are
renamed into place.  A run killed before the manifest leaves the book untouched (its staging
folder is removed by the next run); one killed after it is completed by the next run
(:mod:`minir1.publish.staging`).

**Clean provenance.**  ``make chapters`` refuses to run while tracked files other than its own
outputs have uncommitted changes (``ALLOW_DIRTY=1`` / ``--allow-dirty`` for drafts: recorded,
and rejected by the project tests).  A lock file (``.artifacts/chapters.lock``) keeps two runs
from interleaving: the second stops with a message, or waits with ``--wait``.

**Freshness.**  Each chapter records the sha256 of its source notebook and of every ``minir1``
module the notebook imports, transitively (:func:`chapter_code`); :func:`chapter_status`
compares them with the current files (:mod:`minir1.publish.notebooks`), so an edit to the
notebook or to any code it runs makes the chapter stale until it is re-executed::

    python -m minir1.publish.chapters --profile cpu --chapter lab

**Threads and order.**  Every kernel runs with one intra-op thread (:data:`THREADS`;
``OMP_NUM_THREADS=1``): our models are so small that a second thread buys little and, on a
shared or busy machine, costs a lot (OpenMP threads wait on each other at every tiny op), and
one thread gives the same numbers on every machine.  The cores are used by running up to
``--jobs`` chapters at once (default 2), each as soon as the chapters it declares in its
module's ``AFTER`` tuple have published (:func:`dependencies`, :mod:`minir1.publish.order`).

Smoke runs never touch the book; they go to ``.artifacts/chapters-smoke/``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import contextlib
import datetime as _dt
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..profiles import PROFILES, PUBLISHED_PROFILES
from ..results import PUBLISH_ENV, git_commit, staging_dir
from ..utils import atomic_write_json, repo_root
from .notebooks import (
    BOOK_CHAPTERS,
    _read_nb,
    _unknown_chapter,
    chapter_code,
    chapter_status,
    notebook_imports,
    notebook_parameters,
    parameters_cells,
    source_notebooks,
    toc_files,
)
from .order import DeclarationError, declarations, declared_after, dependencies, run_order, schedule
from .staging import PublishError, _finish, check_book_writable, check_clean, new_run_id, recover, run_lock

# Importable from here, as before the runner was split (``from minir1.publish.chapters import ...``).
__all__ = [
    "JOBS",
    "THREADS",
    "DeclarationError",
    "PublishError",
    "chapter_code",
    "chapter_dir",
    "chapter_path",
    "chapter_status",
    "check_book_writable",
    "check_clean",
    "declarations",
    "declared_after",
    "dependencies",
    "junit_timing",
    "kernel_env",
    "main",
    "new_run_id",
    "notebook_imports",
    "notebook_parameters",
    "parameters_cells",
    "recover",
    "run_chapter",
    "run_lock",
    "run_order",
    "schedule",
    "source_notebooks",
    "toc_files",
]

THREADS = 1  # intra-op threads per kernel (see the module docstring)
JOBS = 2  # chapters executed at once by default (this project's machines have 2 cores)


def kernel_env(threads: int = THREADS) -> dict[str, str]:
    """Environment for a chapter's kernel: ``threads`` intra-op threads everywhere."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1; got {threads!r}")
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TOKENIZERS_PARALLELISM": "false"}


# ----------------------------------------------------------------------------- locations
def chapter_dir(profile: str = "cpu", root: Path | None = None) -> Path:
    """Where executed chapters go: ``book/chapters`` (cpu/gpu) or ``.artifacts/chapters-smoke``."""
    root = Path(root) if root is not None else repo_root()
    if profile in PUBLISHED_PROFILES:
        return root / BOOK_CHAPTERS
    return root / ".artifacts" / "chapters-smoke"


def chapter_path(name: str, root: Path | None = None, profile: str = "cpu") -> Path:
    """The executed chapter of source notebook ``name`` (same file name)."""
    src = source_notebooks(root).get(name)
    if src is None:
        raise ValueError(_unknown_chapter(name, root))
    return chapter_dir(profile, root) / src.name


# ----------------------------------------------------------------------------- running
@contextlib.contextmanager
def _env(**values: str | None):
    """Set (or, for None, remove) environment variables for the kernel, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _execute(src: Path, out: Path, profile: str, root: Path, run_id: str | None, threads: int = THREADS) -> float:
    import papermill as pm

    t0 = time.perf_counter()
    with _env(**{PUBLISH_ENV: run_id, "MINIR1_ROOT": str(root), **kernel_env(threads)}):
        pm.execute_notebook(
            str(src),
            str(out),
            parameters={"profile": profile},
            kernel_name="python3",
            cwd=str(src.parent),
            progress_bar={"leave": False, "desc": src.stem},
        )
    return time.perf_counter() - t0


def _stamp(out: Path, meta: dict) -> None:
    import nbformat

    nb = nbformat.read(out, as_version=4)
    params = {**notebook_parameters(nb), "profile": meta["profile"]}
    nb.metadata["minir1"] = {**meta, "parameters": params}
    nbformat.write(nb, out)


def _results_of(path: Path, name: str, run_id: str) -> dict:
    if not path.exists():
        raise PublishError(
            f"chapter {name!r} wrote no results file ({path.name}); every chapter "
            "must call minir1.results.write_results"
        )
    res = json.loads(path.read_text())
    got = res.get("provenance", {}).get("run_id")
    if got != run_id:
        raise PublishError(f"{path.name} carries run id {got!r}, not this run's {run_id!r}")
    return res


def gpu_estimate_line(name: str, root: Path) -> str:
    """The chapter's estimated gpu time, one line, from ``python -m minir1.gpu_check --estimate``
    (a subprocess: publishing imports no training code)."""
    try:
        est = subprocess.run(
            [sys.executable, "-m", "minir1.gpu_check", "--estimate", name, "--line"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{name}: no gpu estimate ({e})"
    return est.stdout.strip() if est.returncode == 0 and est.stdout.strip() else f"{name}: no gpu estimate"


def run_chapter(
    name: str,
    profile: str,
    root: Path | None = None,
    *,
    run_id: str | None = None,
    allow_dirty: bool = False,
    threads: int = THREADS,
) -> Path:
    """Execute ``notebooks/NN_name.ipynb`` with ``profile`` into its chapter; return its path.

    A published profile (``cpu``, ``gpu``) publishes: chapter and results are staged under
    run id ``run_id`` (new by default) and moved into ``book/`` together when every cell
    succeeded.  Raises, leaving the book untouched, when a cell fails, the notebook wrote no
    results file for this run, or a ``gpu`` result did not run on a GPU.  ``smoke`` writes to
    ``.artifacts/chapters-smoke`` and ``.artifacts/results-smoke`` only.
    """
    root = Path(root) if root is not None else repo_root()
    src = source_notebooks(root)[name]
    target = chapter_dir(profile, root) / src.name
    if profile == "gpu":
        print(gpu_estimate_line(name, root), flush=True)
    code, commit = chapter_code(src), git_commit(root)  # what we execute now, even if edited meanwhile
    meta = {"profile": profile, **code, "git_commit": commit, "allow_dirty": allow_dirty}
    if profile not in PUBLISHED_PROFILES:
        _run_unpublished(src, target, profile, meta, root, threads)
        return target

    check_book_writable(root)
    run_id = run_id or new_run_id()
    staging = staging_dir(run_id, root)
    staging.mkdir()
    try:
        _stage(name, profile, src, staging, meta, root, run_id, threads)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _finish(staging, root)  # from here on, a kill is completed by the next run's recover()
    return target


def _run_unpublished(src: Path, target: Path, profile: str, meta: dict, root: Path, threads: int) -> None:
    """A profile that is not published (``smoke``): execute, stamp and replace ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{src.stem}.{os.getpid()}.tmp.ipynb")
    try:
        wall = _execute(src, tmp, profile, root, None, threads)
        _stamp(tmp, {**meta, "run_id": "", "wall_seconds": round(wall, 3), "executed_at": _now()})
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _stage(
    name: str, profile: str, src: Path, staging: Path, meta: dict, root: Path, run_id: str, threads: int
) -> None:
    """Execute chapter ``name`` into ``staging`` and write the manifest naming what it publishes
    (the caller removes ``staging`` when this raises)."""
    # Stage 1: a copy of the published results, which chapters may read.
    copied = {}
    for p in (root / "book" / "results").glob("*.json"):
        shutil.copy2(p, staging / p.name)
        copied[p.name] = _digest(staging / p.name)
    # Stage 2: execute, then check the results file this run wrote.
    staged_nb = staging / src.name
    wall = _execute(src, staged_nb, profile, root, run_id, threads)
    res = _results_of(staging / f"{name}.json", name, run_id)
    prov = res["provenance"]
    if profile == "gpu" and prov.get("device_type") != "cuda":
        raise PublishError(
            f"profile 'gpu' ran on {prov.get('device')!r}: a gpu result is published "
            "only from a GPU (run it by hand with device='cpu' to try the shapes)"
        )
    # Stage 3: stamp the chapter with what ran.
    _stamp(
        staged_nb,
        {
            **meta,
            "run_id": run_id,
            "seeds": [int(s) for s in res.get("seeds", [])],
            "wall_seconds": round(wall, 3),
            "artifacts_built": prov.get("artifacts_built", 0),
            "executed_at": _now(),
        },
    )
    # Stage 4: the manifest.  Only what this chapter wrote: another chapter running at the same
    # time may have published meanwhile, and our copy of its file is older than the book's.
    files = {
        p.name: f"book/results/{p.name}"
        for p in staging.glob("*.json")
        if p.name != "publish.json" and copied.get(p.name) != _digest(p)
    }
    files[src.name] = f"book/chapters/{src.name}"
    atomic_write_json(staging / "publish.json", {"run_id": run_id, "chapter": name, "files": files})


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _worker(name: str, profile: str, root: str, allow_dirty: bool, threads: int) -> tuple[str, str, int]:
    """Run one chapter; ``(name, path, models built)`` (in-process, or in a pool worker)."""
    path = run_chapter(name, profile, Path(root), allow_dirty=allow_dirty, threads=threads)
    built = _read_nb(path).get("metadata", {}).get("minir1", {}).get("artifacts_built", 0)
    return name, str(path), int(built or 0)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- CLI
def junit_timing(xml_path: str | os.PathLike) -> dict[str, float]:
    """Seconds per notebook from a pytest ``--junitxml`` report of an nbval run."""
    import xml.etree.ElementTree as ET

    totals: dict[str, float] = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        # classname is the dotted path, e.g. ".artifacts.nbval.01_cost.ipynb"
        cls = (case.get("classname") or "?").removesuffix(".ipynb")
        nb = cls.rsplit(".", 1)[-1] + ".ipynb"
        totals[nb] = totals.get(nb, 0.0) + float(case.get("time", 0.0))
    return totals


def _print_status() -> None:
    """Each chapter's freshness, profile, time and ``AFTER`` (``?`` when the declarations are broken)."""
    try:
        after: dict[str, tuple[str, ...]] | None = declarations()
    except DeclarationError as e:
        print(f"warning: {e}", file=sys.stderr)
        after = None
    for name in source_notebooks():
        s = chapter_status(name)
        state = (
            "missing"
            if not s["exists"]
            else "fresh"
            if s["fresh"]
            else "stale (source changed)"
            if not s["source_current"]
            else f"stale (code changed: {', '.join(s['changed_modules']) or 'recorded before code hashes'})"
        )
        runs_after = "?" if after is None else ",".join(after[name]) or "-"
        print(f"{s['source'].name:28s} {state:40s} profile={s['profile']} at {s['executed_at']}  after={runs_after}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m minir1.publish.chapters", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    p.add_argument("--chapter", default=None, help="run one chapter, e.g. 'lab' (default: all)")
    p.add_argument("--status", action="store_true", help="print each chapter's freshness and exit")
    p.add_argument("--timing", metavar="JUNIT_XML", help="print seconds per notebook of an nbval run")
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        default=os.environ.get("ALLOW_DIRTY") == "1",
        help="run with uncommitted changes (a draft: recorded, rejected by make test); also ALLOW_DIRTY=1",
    )
    p.add_argument("--wait", action="store_true", help="wait for another running `make chapters` instead of stopping")
    p.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("JOBS") or JOBS),
        help=f"chapters executed at once, each with --threads threads (default {JOBS}; also JOBS=n)",
    )
    p.add_argument("--threads", type=int, default=THREADS, help=f"intra-op threads per kernel (default {THREADS})")
    return p.parse_args(argv)


def _summary(times: dict[str, tuple[float, int]], elapsed: float | None = None) -> None:
    if not times:
        return
    print("wall time per chapter:")
    for name, (secs, built) in times.items():
        how = f"cold: {built} artifact(s) built" if built else "cached: no artifact built"
        print(f"  {secs:8.1f} s  {name:14s} ({how})")
    print(f"  {sum(t for t, _ in times.values()):8.1f} s  total (sum over chapters)", flush=True)
    if elapsed is not None:
        print(f"  {elapsed:8.1f} s  elapsed (chapters run side by side)", flush=True)


def _run_all(names: list[str], deps: dict[str, set[str]], args: argparse.Namespace, root: Path, times: dict) -> bool:
    """Execute ``names``, each after its ``deps`` (one at a time by :func:`run_order`, or
    ``args.jobs`` at a time by :func:`schedule`); record each chapter's wall time in ``times``.
    Returns True when a chapter failed (the others that were running finish; none starts after it)."""
    bar = tqdm(total=len(names), unit="chapter", desc=f"chapters ({args.profile})")
    started: dict[str, float] = {}

    def record(name: str, path: Path | str, built: int) -> None:
        times[name] = (time.perf_counter() - started[name], built)
        bar.update(1)
        tqdm.write(f"    wrote {Path(path).relative_to(root)} ({times[name][0]:.1f} s)")

    def fail(name: str, e: BaseException) -> bool:  # papermill's error already names the failing cell
        print(f"error: chapter {name!r} failed; the book is unchanged by it.\n{e}", file=sys.stderr)
        return True

    if args.jobs <= 1 or len(names) == 1:
        for name in run_order(deps):
            bar.set_postfix_str(name)
            started[name] = time.perf_counter()
            try:
                record(*_worker(name, args.profile, str(root), args.allow_dirty, args.threads))
            except Exception as e:
                return fail(name, e)
        return False

    done, running, failed = set(), {}, False
    ctx = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        while len(done) < len(names) and not (failed and not running):
            for name in [] if failed else schedule(deps, done, set(running))[: args.jobs - len(running)]:
                started[name] = time.perf_counter()
                running[name] = pool.submit(_worker, name, args.profile, str(root), args.allow_dirty, args.threads)
            bar.set_postfix_str(", ".join(running))
            finished, _ = futures.wait(running.values(), return_when=futures.FIRST_COMPLETED)
            for fut in finished:
                name = next(n for n, f in running.items() if f is fut)
                del running[name]
                done.add(name)
                try:
                    record(*fut.result())
                except Exception as e:
                    failed = fail(name, e)
    return failed


def _bad_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, or None."""
    for flag in ("jobs", "threads"):
        if getattr(args, flag) < 1:
            return f"--{flag} must be >= 1; got {getattr(args, flag)}"
    if args.profile not in PROFILES:
        return f"--profile must be one of {', '.join(map(repr, PROFILES))}; got {args.profile!r}"
    if args.chapter is not None and args.chapter not in source_notebooks():
        return f"--{_unknown_chapter(args.chapter)}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    error = _bad_args(args)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.timing:
        for nb, secs in junit_timing(args.timing).items():
            print(f"  {secs:7.1f} s  {nb}")
        return 0
    if args.status:
        _print_status()
        return 0
    root = repo_root()
    names = [args.chapter] if args.chapter else list(source_notebooks())
    try:
        deps = dependencies(names, root)  # checks every chapter's AFTER, even for one chapter
    except DeclarationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    publish = args.profile in PUBLISHED_PROFILES
    times: dict[str, tuple[float, int]] = {}
    t0 = time.perf_counter()
    try:
        if publish:
            check_book_writable(root)
            if check_clean(root, args.allow_dirty):
                print("warning: ALLOW_DIRTY: results record a -dirty commit; make test rejects them", file=sys.stderr)
        with run_lock(root, wait=args.wait):
            for note in recover(root) if publish else []:
                print(note, flush=True)
            failed = _run_all(names, deps, args, root, times)
            if failed:
                _summary(times, time.perf_counter() - t0)
                return 1
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    _summary(times, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
