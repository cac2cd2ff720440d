"""The source notebooks and the freshness of their executed chapters (read, never executed).

``notebooks/NN_name.ipynb`` is the clean source of chapter ``name``;
``book/chapters/NN_name.ipynb`` is the executed chapter the book shows.  Each executed chapter
records the sha256 of its source notebook and of every ``minir1`` module the notebook imports,
transitively (:func:`chapter_code`); :func:`chapter_status` compares them with the current
files, so an edit to the notebook or to any code it runs makes the chapter stale until it is
re-executed (by :mod:`minir1.publish.chapters`).
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

from ..utils import minir1_imports, module_hashes, repo_root, sha256_file, stable_hash

BOOK_CHAPTERS = Path("book", "chapters")  # where published chapters go, under the repository root
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
    path = (Path(root) if root is not None else repo_root()) / BOOK_CHAPTERS / src.name
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
