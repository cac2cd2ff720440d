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
folder is removed by the next run); one killed after it is completed by the next run.

**Clean provenance.**  ``make chapters`` refuses to run while tracked files other than its own
outputs have uncommitted changes (``ALLOW_DIRTY=1`` / ``--allow-dirty`` for drafts: recorded,
and rejected by the project tests).  A lock file (``.artifacts/chapters.lock``) keeps two runs
from interleaving: the second stops with a message, or waits with ``--wait``.

**Freshness.**  Each chapter records the sha256 of its source notebook and of every ``minir1``
module the notebook imports, transitively (:func:`chapter_code`); :func:`chapter_status`
compares them with the current files, so an edit to the notebook or to any code it runs makes
the chapter stale until it is re-executed::

    python -m minir1.publish.chapters --profile cpu --chapter lab

**Threads and order.**  Every kernel runs with one intra-op thread (:data:`THREADS`;
``OMP_NUM_THREADS=1``): our models are so small that a second thread buys little and, on a
shared or busy machine, costs a lot (OpenMP threads wait on each other at every tiny op), and
one thread gives the same numbers on every machine.  The cores are used by running up to
``--jobs`` chapters at once (default 2), each as soon as the chapters it builds on have
published (:func:`dependencies`: a chapter that imports another's experiment module reuses
its models, unless it only borrows a few that it may build itself (:func:`runs_alongside`);
one that reads the published results runs after every earlier chapter).

Smoke runs never touch the book; they go to ``.artifacts/chapters-smoke/``.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures as futures
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..profiles import PROFILES, PUBLISHED_PROFILES
from ..results import PUBLISH_ENV, git_commit, staging_dir
from ..utils import (
    atomic_write_json,
    git_dirty_files,
    minir1_imports,
    module_file,
    module_hashes,
    repo_root,
    sha256_file,
    stable_hash,
)

THREADS = 1  # intra-op threads per kernel (see the module docstring)
JOBS = 2  # chapters executed at once by default (this project's machines have 2 cores)
READS_RESULTS = "minir1.publish.ledger"  # a chapter importing this reads every chapter's results


def kernel_env(threads: int = THREADS) -> dict[str, str]:
    """Environment for a chapter's kernel: ``threads`` intra-op threads everywhere."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1; got {threads!r}")
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TOKENIZERS_PARALLELISM": "false"}


_SOURCE_RE = re.compile(r"^(\d\d)_([a-z0-9][a-z0-9_]*)\.ipynb$")


# ----------------------------------------------------------------------------- locations
def source_notebooks(root: Path | None = None) -> dict[str, Path]:
    """Chapter name -> source notebook, in book order (``{"cost": .../01_cost.ipynb}``)."""
    root = Path(root) if root is not None else repo_root()
    out = {}
    for p in sorted((root / "notebooks").glob("*.ipynb")):
        m = _SOURCE_RE.match(p.name)
        if m:
            out[m.group(2)] = p
    return out


def chapter_dir(profile: str = "cpu", root: Path | None = None) -> Path:
    """Where executed chapters go: ``book/chapters`` (cpu/gpu) or ``.artifacts/chapters-smoke``."""
    root = Path(root) if root is not None else repo_root()
    if profile in PUBLISHED_PROFILES:
        return root / "book" / "chapters"
    return root / ".artifacts" / "chapters-smoke"


def chapter_path(name: str, root: Path | None = None, profile: str = "cpu") -> Path:
    """The executed chapter of source notebook ``name`` (same file name)."""
    src = source_notebooks(root).get(name)
    if src is None:
        raise ValueError(_unknown_chapter(name, root))
    return chapter_dir(profile, root) / src.name


def toc_files(root: Path | None = None) -> list[str]:
    """Every document named in ``_toc.yml`` (``root`` first), e.g. ``book/chapters/01_cost``."""
    import yaml

    root = Path(root) if root is not None else repo_root()

    def walk(node) -> list[str]:
        if isinstance(node, list):
            return [f for v in node for f in walk(v)]
        if not isinstance(node, dict):
            return []
        own = [node[k] for k in ("root", "file") if isinstance(node.get(k), str)]
        return own + [f for v in node.values() if isinstance(v, (list, dict)) for f in walk(v)]

    return walk(yaml.safe_load((root / "_toc.yml").read_text()))


def _unknown_chapter(name: str, root: Path | None = None) -> str:
    valid = ", ".join(repr(n) for n in source_notebooks(root)) or "(none: notebooks/ is empty)"
    return f"chapter must be one of {valid}; got {name!r}"


# ----------------------------------------------------------------------------- notebooks
def _read_nb(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def parameters_cells(nb: dict) -> list[dict]:
    """The code cells tagged ``parameters``."""
    return [
        c
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def notebook_parameters(nb: dict) -> dict:
    """The literal assignments of the ``parameters`` cell (``{"profile": "cpu", ...}``).

    Parsed with :mod:`ast`, never executed; a value that is not a literal is skipped.
    """
    cells = parameters_cells(nb)
    if not cells:
        return {}
    out = {}
    for node in ast.parse(_source(cells[0])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


# ----------------------------------------------------------------------------- freshness
def notebook_imports(nb: dict) -> set[str]:
    """The ``minir1`` modules the code cells of ``nb`` import (parsed with :mod:`ast`).

    IPython magics and shell lines (``%...``, ``!...``) are skipped; a cell that is not
    Python raises ``ValueError`` naming it, so no import goes unnoticed.
    """
    out: set[str] = set()
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        code = "\n".join(line for line in _source(cell).splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            out |= minir1_imports(code)
        except SyntaxError as e:
            raise ValueError(
                f"code cell {i} is not valid Python ({e.msg}, line {e.lineno}); cannot find the modules it imports"
            ) from e
    return out


def chapter_code(source: str | os.PathLike) -> dict:
    """What a chapter's freshness covers: ``{source_hash, code_hash, modules}``: the sha256
    of the source notebook, and of every ``minir1`` module it imports, transitively
    (``modules``: name -> sha256; ``code_hash`` hashes them all)."""
    source = Path(source)
    modules = module_hashes(sorted(notebook_imports(_read_nb(source))))
    return {"source_hash": sha256_file(source), "code_hash": stable_hash(modules), "modules": modules}


def chapter_status(name: str, root: Path | None = None) -> dict:
    """Is the executed chapter of ``name`` up to date with its source and the code it runs?

    Returns ``{name, source, chapter, exists, fresh, source_current, code_current,
    changed_modules, profile, run_id, executed_at, meta}``: ``fresh`` means the chapter
    exists, was executed from the current source notebook (``source_current``) and with the
    current source of every ``minir1`` module the notebook imports (``code_current``;
    ``changed_modules`` names those that changed, appeared or disappeared since).
    """
    src = source_notebooks(root).get(name)
    if src is None:
        raise ValueError(_unknown_chapter(name, root))
    path = chapter_dir("cpu", root) / src.name
    status = {
        "name": name,
        "source": src,
        "chapter": path,
        "exists": path.exists(),
        "fresh": False,
        "source_current": False,
        "code_current": False,
        "changed_modules": [],
        "profile": None,
        "run_id": None,
        "executed_at": None,
        "meta": {},
    }
    if not status["exists"]:
        return status
    meta = _read_nb(path).get("metadata", {}).get("minir1", {})
    now = chapter_code(src)
    recorded = meta.get("modules") if isinstance(meta.get("modules"), dict) else {}
    status.update(
        profile=meta.get("profile"),
        run_id=meta.get("run_id"),
        executed_at=meta.get("executed_at"),
        meta=meta,
        source_current=meta.get("source_hash") == now["source_hash"],
        code_current=meta.get("code_hash") == now["code_hash"],
        changed_modules=sorted(
            m for m in set(recorded) | set(now["modules"]) if recorded.get(m) != now["modules"].get(m)
        ),
    )
    status["fresh"] = status["source_current"] and status["code_current"]
    return status


# ----------------------------------------------------------------------------- publishing
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
    code, commit = chapter_code(src), git_commit(root)  # what we execute now, even if edited meanwhile
    meta = {"profile": profile, **code, "git_commit": commit, "allow_dirty": allow_dirty}
    if profile not in PUBLISHED_PROFILES:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{src.stem}.{os.getpid()}.tmp.ipynb")
        try:
            wall = _execute(src, tmp, profile, root, None, threads)
            _stamp(tmp, {**meta, "run_id": "", "wall_seconds": round(wall, 3), "executed_at": _now()})
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    check_book_writable(root)
    run_id = run_id or new_run_id()
    staging = staging_dir(run_id, root)
    results = root / "book" / "results"
    staging.mkdir()
    try:
        copied = {}  # chapters may read the others' published results
        for p in results.glob("*.json"):
            shutil.copy2(p, staging / p.name)
            copied[p.name] = _digest(staging / p.name)
        staged_nb = staging / src.name
        wall = _execute(src, staged_nb, profile, root, run_id, threads)
        res = _results_of(staging / f"{name}.json", name, run_id)
        prov = res["provenance"]
        if profile == "gpu" and prov.get("device_type") != "cuda":
            raise PublishError(
                f"profile 'gpu' ran on {prov.get('device')!r}: a gpu result is published "
                "only from a GPU (run it by hand with device='cpu' to try the shapes)"
            )
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
        # Only what this chapter wrote: another chapter running at the same time may have
        # published meanwhile, and our copy of its file is older than the book's.
        files = {
            p.name: f"book/results/{p.name}"
            for p in staging.glob("*.json")
            if p.name != "publish.json" and copied.get(p.name) != _digest(p)
        }
        files[src.name] = f"book/chapters/{src.name}"
        atomic_write_json(staging / "publish.json", {"run_id": run_id, "chapter": name, "files": files})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _finish(staging, root)  # from here on, a kill is completed by the next run's recover()
    return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def runs_alongside(name: str) -> set[str]:
    """The chapters that chapter ``name`` may run beside although it imports their experiment modules.

    Its experiment module names them in a tuple ``RUNS_ALONGSIDE`` (read with :mod:`ast`, never
    imported): it only borrows a few models from them, which :func:`minir1.artifacts.cached`
    builds once under a lock, whichever chapter asks first.  A module without it: none.
    """
    path = module_file(f"minir1.experiments.{name}")
    if path is None:
        return set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "RUNS_ALONGSIDE" for t in targets):
                value = ast.literal_eval(node.value)
                if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{path}: RUNS_ALONGSIDE must be a tuple of chapter names; got {value!r}")
                return set(value)
    return set()


def dependencies(names: list[str], root: Path | None = None) -> dict[str, set[str]]:
    """Chapter -> the chapters among ``names`` that must publish before it runs.

    A chapter depends on another when its notebook imports (transitively) that chapter's
    experiment module, ``minir1.experiments.<name>`` (it reuses the models the other trains),
    unless it may run alongside it (:func:`runs_alongside`; it then waits for what that
    chapter waits for instead), and on every earlier chapter when it imports
    :data:`READS_RESULTS` (it reads their published results).
    """
    srcs = source_notebooks(root)
    order = list(srcs)
    mods = {name: set(chapter_code(srcs[name])["modules"]) for name in names}
    deps: dict[str, set[str]] = {}
    for name in names:
        earlier = order[: order.index(name)]
        reads = READS_RESULTS in mods[name]
        deps[name] = {
            other
            for other in names
            if other != name and (f"minir1.experiments.{other}" in mods[name] or (reads and other in earlier))
        }
    for name in names:
        if READS_RESULTS not in mods[name]:
            for other in runs_alongside(name) & deps[name]:
                deps[name] = (deps[name] - {other}) | (deps[other] - {name})
    return deps


def schedule(deps: dict[str, set[str]], done: set[str], running: set[str]) -> list[str]:
    """The chapters ready to start, longest chain of dependents first (it is the critical path).

    >>> schedule({"lab": set(), "rl": {"lab"}, "cost": set()}, done=set(), running=set())
    ['lab', 'cost']
    """

    def dependents(name: str) -> int:
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            for other, d in deps.items():
                if n in d and other not in seen:
                    seen.add(other)
                    todo.append(other)
        return len(seen)

    order = list(deps)
    ready = [n for n in order if n not in done and n not in running and deps[n] <= done]
    return sorted(ready, key=lambda n: (-dependents(n), order.index(n)))


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
        print(f"{s['source'].name:28s} {state:40s} profile={s['profile']} at {s['executed_at']}")


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


def _run_all(names: list[str], args: argparse.Namespace, root: Path, times: dict) -> bool:
    """Execute ``names`` (in order, or ``args.jobs`` at a time by :func:`schedule`); record each
    chapter's wall time in ``times``.  Returns True when a chapter failed (the others that
    were running finish; none starts after it)."""
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
        for name in names:
            bar.set_postfix_str(name)
            started[name] = time.perf_counter()
            try:
                record(*_worker(name, args.profile, str(root), args.allow_dirty, args.threads))
            except Exception as e:
                return fail(name, e)
        return False

    deps, done, running, failed = dependencies(names, root), set(), {}, False
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


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    for flag in ("jobs", "threads"):
        if getattr(args, flag) < 1:
            print(f"error: --{flag} must be >= 1; got {getattr(args, flag)}", file=sys.stderr)
            return 2
    if args.profile not in PROFILES:
        print(
            f"error: --profile must be one of {', '.join(map(repr, PROFILES))}; got {args.profile!r}", file=sys.stderr
        )
        return 2
    if args.chapter is not None and args.chapter not in source_notebooks():
        print(f"error: --{_unknown_chapter(args.chapter)}", file=sys.stderr)
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
            failed = _run_all(names, args, root, times)
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
