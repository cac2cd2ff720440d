"""Project checks: the promises that a clean clone of the book relies on.

Source notebooks are clean and parameterised and listed in the table of contents; every
executed chapter is fresh (executed from the current source, with a published profile);
results files follow the contract and use registered claim ids; vendored data says where
it comes from.  Failures name the file and say what to run.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from pathlib import Path

import pytest

from minir1 import claims, results
from minir1.profiles import PUBLISHED_PROFILES
from minir1.publish import chapters
from minir1.publish import claims as publish_claims
from minir1.utils import repo_root

ROOT = repo_root()
SOURCES = chapters.source_notebooks()
EXECUTED = sorted((ROOT / "book" / "chapters").glob("*.ipynb"))
RESULTS = sorted((ROOT / "book" / "results").glob("*.json"))
TOC = chapters.toc_files()


def _rerun(name: str) -> str:
    return f"run `make chapters CHAPTER={name}` (or `python -m minir1.publish.chapters --chapter {name}`)"


# ----------------------------------------------------------------------------- sources
@pytest.mark.parametrize("name", list(SOURCES))
def test_source_notebook_is_clean_and_parameterised(name):
    path = SOURCES[name]
    try:
        nb = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        pytest.fail(f"{path.name} is not valid JSON: {e}")
    dirty = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
    params = chapters.parameters_cells(nb)
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters', has {len(params)}"
    tree = ast.parse("".join(params[0]["source"]))
    assigned = {
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    }
    assert "profile" in assigned, f"{path.name}: the parameters cell must assign `profile`"
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    assert kernel == "python3", f"{path.name}: kernelspec name must be 'python3', got {kernel!r}"


@pytest.mark.parametrize("name", list(SOURCES))
def test_source_notebook_chapter_is_in_toc(name):
    doc = f"book/chapters/{SOURCES[name].stem}"
    assert doc in TOC, f"{doc} (from notebooks/{SOURCES[name].name}) is not listed in _toc.yml"


def test_toc_chapters_have_source_notebooks():
    stems = {p.stem for p in SOURCES.values()}
    orphans = [f for f in TOC if f.startswith("book/chapters/") and Path(f).name not in stems]
    assert not orphans, f"_toc.yml lists chapters without a source notebook in notebooks/: {orphans}"


def test_notebooks_are_named_nn_name():
    bad = [p.name for p in (ROOT / "notebooks").glob("*.ipynb") if p.stem not in {s.stem for s in SOURCES.values()}]
    assert not bad, f"source notebooks must be named NN_name.ipynb (lower case): {bad}"


# ----------------------------------------------------------------------------- executed chapters
@pytest.mark.parametrize("name", list(SOURCES))
def test_source_notebook_has_executed_chapter(name):
    status = chapters.chapter_status(name)
    assert status["exists"], f"book/chapters/{SOURCES[name].name} is missing: {_rerun(name)}"


@pytest.mark.parametrize("path", EXECUTED, ids=[p.name for p in EXECUTED])
def test_executed_chapter_is_fresh_and_published(path):
    m = re.match(r"^\d\d_(.+)$", path.stem)
    name = m.group(1) if m else path.stem
    assert name in SOURCES and SOURCES[name].name == path.name, (
        f"book/chapters/{path.name} has no source notebook notebooks/{path.name}"
    )
    status = chapters.chapter_status(name)
    assert status["source_current"], (
        f"book/chapters/{path.name} is stale: its source notebook changed since it was executed; {_rerun(name)}"
    )
    changed = ", ".join(status["changed_modules"]) or "(none recorded: executed before code hashes)"
    assert status["code_current"], (
        f"book/chapters/{path.name} is stale: code it imports changed since it was executed: {changed}; {_rerun(name)}"
    )
    assert status["profile"] in PUBLISHED_PROFILES, (
        f"book/chapters/{path.name} was executed with profile {status['profile']!r}; the book "
        f"shows only {PUBLISHED_PROFILES}: {_rerun(name)}"
    )


@pytest.mark.parametrize("path", EXECUTED, ids=[p.name for p in EXECUTED])
def test_chapter_and_results_come_from_the_same_clean_run(path):
    name = re.sub(r"^\d\d_", "", path.stem)
    meta = json.loads(path.read_text()).get("metadata", {}).get("minir1", {})
    res_path = ROOT / "book" / "results" / f"{name}.json"
    assert res_path.exists(), f"book/chapters/{path.name} has no results file book/results/{name}.json"
    prov = json.loads(res_path.read_text())["provenance"]
    assert meta.get("run_id") and meta.get("run_id") == prov.get("run_id"), (
        f"book/chapters/{path.name} (run {meta.get('run_id')!r}) and book/results/{name}.json (run "
        f"{prov.get('run_id')!r}) come from different runs: something other than `make chapters` wrote "
        f"one of them; {_rerun(name)}"
    )
    assert not str(meta.get("git_commit", "")).endswith("-dirty") and not meta.get("allow_dirty"), (
        f"book/chapters/{path.name} was executed from a dirty tree (ALLOW_DIRTY); commit, then {_rerun(name)}"
    )


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_results_file_is_published_clean_by_the_runner(path):
    obj = json.loads(path.read_text())
    prov = obj["provenance"]
    if path.stem == "bench":  # `make bench` publishes the benchmarks the lab chapter shows
        assert not str(prov.get("git_commit", "")).endswith("-dirty"), (
            f"{path.name} records uncommitted changes ({prov.get('git_commit')}); commit, then `make bench`"
        )
        return
    assert path.stem in SOURCES, (
        f"book/results/{path.name} is not a chapter's results: only `make chapters` writes book/results "
        f"(other runs write .artifacts/results-<profile>/); remove it from book/results"
    )
    assert prov.get("run_id"), f"{path.name} was not written by `make chapters` (no run id); {_rerun(path.stem)}"
    assert not str(prov.get("git_commit", "")).endswith("-dirty") and not prov.get("allow_dirty"), (
        f"{path.name} records uncommitted changes ({prov.get('git_commit')}); commit, then {_rerun(path.stem)}"
    )
    if obj.get("profile") == "gpu":
        assert prov.get("device_type") == "cuda" and not str(prov.get("device", "")).startswith("cpu"), (
            f"{path.name} claims profile 'gpu' but ran on {prov.get('device')!r}"
        )


# ----------------------------------------------------------------------------- results files
@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_results_file_follows_contract(path):
    obj = results.validate_file(path)  # raises naming the file and the field
    assert obj["profile"] in PUBLISHED_PROFILES, (
        f"{path.name}: profile {obj['profile']!r} does not belong in book/results "
        "(smoke results go to .artifacts/results-smoke)"
    )
    assert obj["chapter"] == path.stem, f"{path.name}: field 'chapter' is {obj['chapter']!r}"
    known = claims.claims_by_id()
    unknown = [c["id"] for c in obj["claims"] if c["id"] not in known]
    assert not unknown, f"{path.name}: claim ids {unknown} are not in data/claims.yml"
    wrong = [c["id"] for c in obj["claims"] if known[c["id"]]["chapter"] != obj["chapter"]]
    assert not wrong, f"{path.name}: claims {wrong} belong to another chapter in data/claims.yml"


# ----------------------------------------------------------------------------- registry and data
def test_claims_registry_and_intro_quote_the_same_thesis():
    reg = claims.load_registry()
    intro = " ".join((ROOT / "book" / "intro.md").read_text().replace(">", " ").split())
    assert " ".join(reg["thesis"].split()) in intro, "book/intro.md must quote data/claims.yml's thesis"


def test_claims_table_builds():
    table = publish_claims.claims_table()
    assert len(table) == len(claims.load_claims())
    assert set(table["verdict"]) <= set(results.VERDICTS) | {publish_claims.PENDING}


@pytest.mark.parametrize("path", sorted((ROOT / "data").glob("*.csv")), ids=lambda p: p.name)
def test_data_csv_has_source_column(path):
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    assert "source" in header, f"data/{path.name} needs a 'source' column; it has {header}"


def test_data_files_are_indexed():
    index = (ROOT / "data" / "README.md").read_text()
    missing = [
        p.name
        for p in sorted((ROOT / "data").iterdir())
        if p.is_file() and p.name != "README.md" and p.name not in index
    ]
    assert not missing, f"data/README.md must list each vendored file with source and license: {missing}"


def test_readme_tree_names_every_folder_and_module():
    readme = (ROOT / "README.md").read_text()
    folders = [
        f"{p.name}/"
        for p in sorted(ROOT.iterdir())
        if p.is_dir() and not p.name.startswith((".", "_")) and not p.name.endswith(".egg-info")
    ]
    modules = [
        p.name
        for p in sorted((ROOT / "src" / "minir1").rglob("*.py"))
        if "__pycache__" not in p.parts and p.name != "__init__.py"
    ]
    missing = [n for n in folders + modules if n not in readme]
    assert not missing, f"README.md's layout tree must name each of these (one line each): {missing}"


def test_readme_chapter_times_are_the_published_ones():
    """The README's per-chapter cold times are the executed chapters' own (metadata ``wall_seconds``)."""
    import re

    readme = (ROOT / "README.md").read_text()
    para = readme[readme.index("**What a cold re-execution costs**") :]
    para = para[: para.index("\n\n")]
    names = {"cost": "cost", "lab": "lab", "RL": "rl", "distillation": "distillation"}
    names |= {"censorship": "censorship", "engineering": "engineering", "thesis": "thesis"}
    stated = {
        names[n]: int(v.replace(",", ""))
        for n, v in re.findall(r"\b(cost|lab|RL|distillation|censorship|engineering|thesis) ([\d,]+) s\b", para)
    }
    assert set(stated) == set(names.values()), stated
    for ch, secs in stated.items():
        nb = next((ROOT / "book" / "chapters").glob(f"[0-9][0-9]_{ch}.ipynb"))
        meta = json.loads(nb.read_text())["metadata"]["minir1"]
        assert abs(meta["wall_seconds"] - secs) <= 1, (ch, secs, meta["wall_seconds"])
    total = sum(
        json.loads(nb.read_text())["metadata"]["minir1"]["wall_seconds"]
        for nb in (ROOT / "book" / "chapters").glob("[0-9][0-9]_*.ipynb")
    )
    assert f"{round(total):,} s of chapter" in para, round(total)
