"""Execute the source notebooks into the book's chapters (``make chapters``).

``notebooks/NN_name.ipynb`` is the clean source; ``book/chapters/NN_name.ipynb`` is the
executed chapter that the book shows (Jupyter Book never executes anything).  Each
executed chapter records in ``metadata.minir1`` what it was executed from: the profile and
parameters, the seeds, the wall time, the sha256 of the source notebook, the package hash
and the git commit.  The project tests compare these with the current files, so a chapter
whose source changed since it was executed fails the tests until it is re-executed::

    python -m minir1.publish.chapters --profile cpu --chapter lab

A run executes into a hidden temp file next to the chapter and renames it over the chapter
only when every cell succeeded: a failed run leaves the previous chapter untouched.  Smoke
runs never touch the book; they go to ``.artifacts/chapters-smoke/``.
"""
from __future__ import annotations

import argparse
import ast
import datetime as _dt
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from ..profiles import PROFILES, PUBLISHED_PROFILES
from ..utils import package_hash, repo_root, sha256_file

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
    return [c for c in nb.get("cells", []) if c.get("cell_type") == "code"
            and "parameters" in c.get("metadata", {}).get("tags", [])]


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
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


# ----------------------------------------------------------------------------- freshness
def chapter_status(name: str, root: Path | None = None) -> dict:
    """Is the executed chapter of ``name`` up to date with its source and the package?

    Returns ``{name, source, chapter, exists, fresh, package_current, profile,
    source_hash, recorded_source_hash, executed_at}``: ``fresh`` means the chapter exists
    and was executed from the current source notebook (same sha256); ``package_current``
    means it was executed with the current ``minir1`` code.
    """
    src = source_notebooks(root).get(name)
    if src is None:
        raise ValueError(_unknown_chapter(name, root))
    path = chapter_dir("cpu", root) / src.name
    status = {"name": name, "source": src, "chapter": path, "exists": path.exists(),
              "fresh": False, "package_current": False, "profile": None,
              "source_hash": sha256_file(src), "recorded_source_hash": None, "executed_at": None}
    if not status["exists"]:
        return status
    meta = _read_nb(path).get("metadata", {}).get("minir1", {})
    status.update(profile=meta.get("profile"), recorded_source_hash=meta.get("source_hash"),
                  executed_at=meta.get("executed_at"))
    status["fresh"] = meta.get("source_hash") == status["source_hash"]
    status["package_current"] = meta.get("package_hash") == package_hash()
    return status


# ----------------------------------------------------------------------------- running
def _seeds(name: str, profile: str, params: dict, since: float) -> list[int]:
    """Seeds from the results file this run wrote, else from the parameters."""
    from ..results import results_dir

    path = results_dir(profile) / f"{name}.json"
    if path.exists() and path.stat().st_mtime >= since:
        seeds = json.loads(path.read_text()).get("seeds")
        if isinstance(seeds, list):
            return [int(s) for s in seeds]
    if isinstance(params.get("seeds"), (list, tuple)):
        return [int(s) for s in params["seeds"]]
    return [int(params["seed"])] if isinstance(params.get("seed"), int) else []


def run_chapter(name: str, profile: str, root: Path | None = None) -> Path:
    """Execute ``notebooks/NN_name.ipynb`` with ``profile`` into its chapter; return its path.

    Raises (and leaves the previous chapter untouched) when a cell fails.
    """
    import nbformat
    import papermill as pm

    from ..results import git_commit

    root = Path(root) if root is not None else repo_root()
    src = source_notebooks(root)[name]
    out = chapter_dir(profile, root) / src.name
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{src.stem}.", suffix=".tmp.ipynb")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would survive the rename
    # Hash what we execute now, even if the files are edited while the chapter runs.
    source_hash, pkg_hash = sha256_file(src), package_hash()
    start, t0 = time.time(), time.perf_counter()
    try:
        pm.execute_notebook(str(src), tmp, parameters={"profile": profile}, kernel_name="python3",
                            cwd=str(src.parent), progress_bar=True)
        wall = time.perf_counter() - t0
        nb = nbformat.read(tmp, as_version=4)
        params = {**notebook_parameters(nb), "profile": profile}
        nb.metadata["minir1"] = {
            "profile": profile, "parameters": params,
            "seeds": _seeds(name, profile, params, start), "wall_seconds": round(wall, 3),
            "source_hash": source_hash, "package_hash": pkg_hash,
            "git_commit": git_commit(root),
            "executed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        nbformat.write(nb, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


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
        state = ("missing" if not s["exists"] else "stale (source changed)" if not s["fresh"]
                 else "fresh" + ("" if s["package_current"] else ", older package"))
        print(f"{s['source'].name:28s} {state:32s} profile={s['profile']} at {s['executed_at']}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m minir1.publish.chapters", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    p.add_argument("--chapter", default=None, help="run one chapter, e.g. 'lab' (default: all)")
    p.add_argument("--status", action="store_true", help="print each chapter's freshness and exit")
    p.add_argument("--timing", metavar="JUNIT_XML", help="print seconds per notebook of an nbval run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.profile not in PROFILES:
        print(f"error: --profile must be one of {', '.join(map(repr, PROFILES))}; "
              f"got {args.profile!r}", file=sys.stderr)
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
    names = [args.chapter] if args.chapter else list(source_notebooks())
    for name in names:
        print(f"==> executing {source_notebooks()[name].name} (profile {args.profile})", flush=True)
        try:
            path = run_chapter(name, args.profile)
        except Exception as e:  # papermill's error already names the failing cell
            print(f"error: chapter {name!r} failed; the previous chapter is unchanged.\n{e}",
                  file=sys.stderr)
            return 1
        print(f"    wrote {path.relative_to(repo_root())}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
