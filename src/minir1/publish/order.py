"""The order the chapters run in, from what each chapter declares.

Every chapter module ``minir1/experiments/<name>.py`` declares, in a top-level tuple ``AFTER``,
the chapters whose results must be published before it runs (it reads their results, or the
models they cache).  :func:`declared_after` reads it with :mod:`ast`, never importing the
module; :func:`dependencies` checks the declarations (every name a chapter, no cycle) and
:func:`schedule` and :func:`run_order` pick what runs next.  Nothing else orders the chapters:
which modules a notebook imports only decides its freshness (:mod:`minir1.publish.notebooks`).
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..utils import module_file
from .notebooks import _unknown_chapter, source_notebooks


class DeclarationError(ValueError):
    """A chapter's ``AFTER`` is not a tuple of names, names an unknown chapter, or the
    declarations form a cycle."""


def declared_after(name: str) -> tuple[str, ...]:
    """The ``AFTER`` tuple of chapter module ``minir1.experiments.<name>`` (read with :mod:`ast`).

    ``()`` for a chapter without a module (a test's demo notebook); a module that lacks the
    tuple, or binds it to anything but a literal tuple of names, raises :class:`DeclarationError`.
    """
    path = module_file(f"minir1.experiments.{name}")
    if path is None:
        return ()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if not any(isinstance(t, ast.Name) and t.id == "AFTER" for t in targets):
            continue
        try:
            value = ast.literal_eval(node.value) if node.value is not None else None
        except ValueError:
            value = None
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            shown = ast.unparse(node.value) if node.value is not None else "nothing"
            raise DeclarationError(f"{path}: AFTER must be a literal tuple of chapter names; got {shown}")
        return value
    raise DeclarationError(
        f"{path}: a chapter module must declare `AFTER: tuple[str, ...] = (...)`, the chapters "
        "whose results must be published before it runs (`()` for none)"
    )


def _find_cycle(after: dict[str, tuple[str, ...]]) -> list[str]:
    """A cycle ``[a, b, ..., a]`` (``a`` after ``b``, ...) in the declarations, or ``[]``."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = "open"
        path.append(name)
        for other in after.get(name, ()):
            if state.get(other) == "open":
                return path[path.index(other) :] + [other]
            if other not in state and (found := visit(other)):
                return found
        state[name] = "done"
        path.pop()
        return []

    for name in after:
        if name not in state and (found := visit(name)):
            return found
    return []


def declarations(root: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Chapter -> its ``AFTER``, for every chapter of the book (book order), checked: each name
    it declares is a chapter, and no chapter waits, however indirectly, for itself."""
    after = {name: declared_after(name) for name in source_notebooks(root)}
    for name, names in after.items():
        unknown = [c for c in names if c not in after]
        if unknown:
            raise DeclarationError(
                f"chapter {name!r} declares AFTER = {names!r}, but {', '.join(map(repr, unknown))} "
                f"is not a chapter (the chapters: {', '.join(map(repr, after))})"
            )
    cycle = _find_cycle(after)
    if cycle:
        steps = ", ".join(f"{a} after {b}" for a, b in zip(cycle, cycle[1:]))
        raise DeclarationError(
            f"the chapters' AFTER declarations form a cycle ({' -> '.join(cycle)}: {steps}), "
            "so none of them can run first; remove one of these names from its AFTER"
        )
    return after


def dependencies(names: list[str], root: Path | None = None) -> dict[str, set[str]]:
    """Chapter -> the chapters among ``names`` that must publish before it runs: those its
    module declares in ``AFTER`` (:func:`declarations`, which raises :class:`DeclarationError`
    on an unknown name or a cycle; ``ValueError`` for a name in ``names`` that is no chapter)."""
    after = declarations(root)
    for name in names:
        if name not in after:
            raise ValueError(_unknown_chapter(name, root))
    return {name: {c for c in after[name] if c in names} for name in names}


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


def run_order(deps: dict[str, set[str]]) -> list[str]:
    """The chapters of ``deps`` one at a time: in their order (book order), except that each
    comes after the chapters it depends on.

    >>> run_order({"rl": {"lab"}, "lab": set(), "cost": set()})
    ['lab', 'rl', 'cost']
    """
    order: list[str] = []
    while len(order) < len(deps):
        ready = [n for n in deps if n not in order and deps[n] <= set(order)]
        if not ready:
            raise DeclarationError(f"no chapter can run first among {sorted(set(deps) - set(order))}: a cycle")
        order.append(ready[0])
    return order
