"""Small shared helpers: repository paths, seeding, devices, atomic writes and code hashes."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch


def repo_root() -> Path:
    """The repository root (the folder holding ``_toc.yml``).

    ``MINIR1_ROOT`` overrides; otherwise we look upwards from the package (editable
    install) and then from the working directory.
    """
    env = os.environ.get("MINIR1_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for p in (start, *start.parents):
            if (p / "_toc.yml").exists() and (p / "src" / "minir1").exists():
                return p
    return Path.cwd().resolve()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded with ``seed``."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# The process's one device setting: set by minir1.profiles.check_device (an explicit choice wins),
# read by device() and minir1.profiles.current_device.
_DEVICE: str | None = None


def set_device(name: str | None) -> None:
    """Use ``name`` ("cpu" or "cuda") for every model from now on (``None``: automatic)."""
    global _DEVICE
    if name not in (None, "cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or None; got {name!r}")
    _DEVICE = name


def device() -> str:
    """The device chosen by :func:`set_device`, else ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if _DEVICE:
        return _DEVICE
    return "cuda" if torch.cuda.is_available() else "cpu"


PROGRESS_ENV = "MINIR1_PROGRESS"  # "0": no progress bars, "1": bars even in a published run


def progress_bars() -> bool:
    """Whether training loops draw their tqdm bars (each loop's own ``progress`` setting still applies).

    Yes for a reader running a notebook; never in a published run (``$MINIR1_PUBLISH`` set by
    ``make chapters``, :data:`minir1.results.PUBLISH_ENV`), where a bar would be frozen into the
    book as hundreds of stderr lines; ``$MINIR1_PROGRESS`` (``0`` or ``1``) decides when set.
    Whether a bar is drawn never changes what is computed.
    """
    env = os.environ.get(PROGRESS_ENV, "").strip()
    if env in ("0", "1"):
        return env == "1"
    return not os.environ.get("MINIR1_PUBLISH")


def device_name() -> str:
    """A human-readable name of the compute device, e.g. ``"cpu (2 threads)"``."""
    if device() == "cuda":
        return torch.cuda.get_device_name(0)
    return f"cpu ({torch.get_num_threads()} threads)"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and artifacts are meant to be read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return sha256_bytes(Path(path).read_bytes())


def package_hash() -> str:
    """Hash of every ``.py`` file of the installed ``minir1`` package (code version)."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(pkg.rglob("*.py")):
        h.update(p.relative_to(pkg).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def stable_hash(obj) -> str:
    """Short hash of a JSON-serialisable object (dict keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ----------------------------------------------------------------------------- code hashes
PACKAGE = "minir1"


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def module_file(name: str) -> Path | None:
    """The source file of ``minir1`` module ``name`` (``"minir1.experiments.lab"``), or None
    when ``name`` is not a module of the package (e.g. a function imported from it)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = _package_dir().joinpath(*parts[1:])
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _resolve(node: ast.ImportFrom, current: str, is_pkg: bool) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = current.split(".")
    anchor = parts if is_pkg else parts[:-1]  # a package's own name is its anchor
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def minir1_imports(source: str, current: str = "", is_pkg: bool = False) -> set[str]:
    """The ``minir1`` modules that ``source`` imports, found with :mod:`ast` (never executed).

    Every ``import``/``from ... import`` counts, also inside functions.  ``from minir1 import
    cost`` names module ``minir1.cost``; ``from minir1.results import write_results`` names
    ``minir1.results``.  ``current`` (the module's own name) resolves relative imports.

    >>> sorted(minir1_imports("from minir1.experiments import lab; import numpy"))
    ['minir1.experiments', 'minir1.experiments.lab']
    """
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node, current, is_pkg)
            names = [mod, *(f"{mod}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            if name.split(".")[0] == PACKAGE and module_file(name) is not None:
                out.add(name)
    return out


def module_closure(roots: Iterable[str], exclude: Iterable[str] = ()) -> dict[str, Path]:
    """``roots`` and every ``minir1`` module they import, transitively: name -> file.

    Importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` too, so parents count.
    Modules under any prefix in ``exclude`` (e.g. ``"minir1.publish"``) are left out, and
    so is what only they import.
    """
    exclude = tuple(exclude)
    skip = lambda n: any(n == e or n.startswith(e + ".") for e in exclude)  # noqa: E731
    todo, seen = [r for r in roots if not skip(r)], {}
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        deps = minir1_imports(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
        todo.extend(n for n in (*parents, *deps) if n not in seen and not skip(n))
    return dict(sorted(seen.items()))


def module_hashes(modules: Iterable[str], exclude: Iterable[str] = ()) -> dict[str, str]:
    """sha256 of the source of each module in :func:`module_closure` ``(modules)``."""
    return {n: sha256_file(p) for n, p in module_closure(modules, exclude).items()}


def code_hash(modules: Iterable[str], exclude: Iterable[str] = ()) -> str:
    """One hash of the source of ``modules`` and of every ``minir1`` module they import."""
    return stable_hash(module_hashes(modules, exclude))


# ----------------------------------------------------------------------------- git
# What ``make chapters`` writes: its own outputs never make the tree count as dirty.
RUNNER_OUTPUTS: tuple[str, ...] = ("book/chapters", "book/results")


def git_dirty_files(root: Path | None = None, exclude: Iterable[str] = RUNNER_OUTPUTS) -> list[str]:
    """Tracked files with uncommitted changes (``git status``), outside ``exclude``.

    Untracked files do not count.  Raises ``RuntimeError`` when ``root`` is not a git
    work tree (so "clean" is never claimed without checking).
    """
    root = Path(root) if root is not None else repo_root()
    specs = ["--", ".", *(f":(exclude){e}" for e in exclude)]
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", *specs],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if out.returncode != 0:
        raise RuntimeError(f"git status failed in {root}: {out.stderr.strip()}")
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]
