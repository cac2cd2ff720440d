"""The three tiers hold: what the layout promises, checked on the source (no imports run)."""

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "minir1"
FILES = sorted(p for p in PKG.rglob("*.py"))
# Publishing reads results only: none of these may be imported from minir1.publish.
TRAINING = {
    "train",
    "grpo",
    "grpo_trl",
    "sampling",
    "models",
    "distill",
    "corpus",
    "evaluation",
    "architectures",
    "routing",
    "kvcache",
    "refusal",
    "world",
    "experiments",
    "torch",
    "transformers",
    "trl",
}


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in ``path`` (top level or not)."""
    tree = ast.parse(path.read_text())
    here = _module(path).split(".")
    pkg = here if path.name == "__init__.py" else here[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from . import x` imports module x
    known = {_module(p) for p in FILES}
    return {m for m in out if m in known or not m.startswith("minir1")}


GRAPH = {_module(p): {m for m in _imports(p) if m.startswith("minir1") and m != _module(p)} for p in FILES}


def _tier(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("experiments", "publish") else "library"


def test_no_import_cycles():
    def strip_pkg(deps):  # importing a subpackage's __init__ is not a cycle through its modules
        return {d for d in deps if d in GRAPH}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(strip_pkg(GRAPH[m])):
            if d.count(".") and d.rsplit(".", 1)[0] == m:
                continue  # a package importing its own submodule
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if not state.get(d):
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if not state.get(m):
            visit(m)


def test_library_never_imports_experiments_or_publish():
    bad = {m: sorted(d for d in deps if _tier(d) != "library") for m, deps in GRAPH.items() if _tier(m) == "library"}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_publishing_never_imports_training_code():
    bad = {}
    for p in FILES:
        m = _module(p)
        if _tier(m) != "publish":
            continue
        hits = sorted(
            i
            for i in _imports(p)
            if i.split(".")[0] in TRAINING or (i.startswith("minir1.") and i.split(".")[1] in TRAINING)
        )
        if hits:
            bad[m] = hits
    assert not bad, bad


# Where a profile name is a label, not a setting: the results file records it and is filed by it,
# and the chapter runner hands it to papermill.  Nothing here resolves sizes or steps from it.
PROFILE_AS_LABEL = ("minir1.profiles", "minir1.results", "minir1.publish.chapters", "minir1.publish.reproduce")


def test_no_profile_string_below_the_experiment_tier():
    """A profile name is resolved once, by an experiment's `config(profile)`; nothing else takes one."""
    bad = []
    for p in FILES:
        m = _module(p)
        if m in PROFILE_AS_LABEL:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs]
                if (
                    "profile" in names
                    and not (_tier(m) == "experiments" and node.name == "config")
                    and not (m == "minir1.bench" and node.name in ("main", "config"))
                ):
                    bad.append(f"{m}.{node.name}")
    assert not bad, f"functions taking a profile string below the experiment tier: {bad}"


def test_no_hand_bumped_cache_versions():
    hits = [
        f"{p.relative_to(PKG)}:{i}"
        for p in FILES
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.match(r"^\s*[A-Z_]*VERSION\s*=", line)
    ]
    assert not hits, f"cache keys are derived from config and source; remove manual VERSION constants: {hits}"


def test_every_chapter_has_an_experiment_module_with_the_api():
    nbs = sorted((PKG.parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert nbs
    for nb in nbs:
        name = nb.stem.split("_", 1)[1]
        path = PKG / "experiments" / f"{name}.py"
        assert path.exists(), f"notebooks/{nb.name} needs src/minir1/experiments/{name}.py"
        defs = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        missing = {"config", "dry_run", "run", "verdicts"} - defs
        assert not missing, f"experiments/{name}.py lacks {sorted(missing)}"
        tree = ast.parse(path.read_text())
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert [a.arg for a in funcs["run"].args.args[:2]] == ["cfg", "seeds"], f"{name}.run(cfg, seeds)"
        assert [a.arg for a in funcs["verdicts"].args.args][1:2] == ["cfg"], f"{name}.verdicts(metrics, cfg)"
        assert any(
            isinstance(n, (ast.Assign, ast.AnnAssign))
            and any(
                isinstance(t, ast.Name) and t.id == "AFTER"
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            )
            for n in tree.body
        ), f"experiments/{name}.py declares no AFTER (the chapters published before it runs)"


def test_notebooks_hand_the_result_on_in_one_call():
    """Every chapter notebook runs ``run(cfg, seeds)`` and writes ``write_results(chapter, result, ...)``."""
    import json

    for nb in sorted((PKG.parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        name = nb.stem.split("_", 1)[1]
        src = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert f'write_results("{name}", result, profile=profile, seeds=seeds)' in src, nb.name
        assert ".run(cfg, seeds" in src, nb.name


# ----------------------------------------------------------------------------- chapters and recipes
CHAPTERS = tuple(p.stem.split("_", 1)[1] for p in sorted((PKG.parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")))


def _owner(mod: str) -> str | None:
    """The chapter an experiment module belongs to (``rl_hard_task`` -> ``rl``); None for shared ones
    (recipes, rules, the ChapterResult re-export)."""
    name = mod.split(".")[2] if mod.count(".") >= 2 else ""
    for ch in CHAPTERS:
        if name == ch or name.startswith(ch + "_"):
            return ch
    return None


def test_experiments_never_import_publish():
    bad = {
        m: sorted(d for d in deps if _tier(d) == "publish") for m, deps in GRAPH.items() if _tier(m) == "experiments"
    }
    assert not {m: d for m, d in bad.items() if d}, bad


def test_no_experiment_module_imports_another_chapters_module():
    """A chapter imports recipes and the library, never another chapter; recipes import no chapter."""
    bad = []
    for m, deps in GRAPH.items():
        if _tier(m) != "experiments":
            continue
        mine = _owner(m)
        for d in deps:
            theirs = _owner(d) if _tier(d) == "experiments" else None
            if theirs is not None and theirs != mine:
                bad.append(f"{m} -> {d}")
    assert not bad, bad


def test_every_chapter_has_its_own_modules_only():
    owners = {m: _owner(m) for m in GRAPH if _tier(m) == "experiments" and m.count(".") == 2}
    shared = sorted(m for m, o in owners.items() if o is None)
    assert set(shared) <= {"minir1.experiments.recipes"}, shared


# ----------------------------------------------------------------------------- size budget
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60
# Exceptions, each with its reason (none today: add one here rather than raise the limits).
LONG_MODULES: dict[str, str] = {}
LONG_FUNCTIONS: dict[str, str] = {}


def test_no_module_over_the_size_budget():
    long = {
        _module(p): n
        for p in FILES
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES and _module(p) not in LONG_MODULES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them, or list them in LONG_MODULES): {long}"


def test_no_function_over_the_size_budget():
    long = {}
    for p in FILES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{_module(p)}.{node.name}"
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS:
                    long[name] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them, or list them in LONG_FUNCTIONS): {long}"
