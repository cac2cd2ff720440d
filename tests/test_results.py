"""Unit tests of the results contract and its consumers.

minir1.results (metric maths by hand, schema errors that name the field, atomic writes,
where results go), minir1.profiles, the claims table, the verdict box, and the chapter
runner (``python -m minir1.publish.chapters``: bad arguments, freshness, atomic replacement).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from minir1 import claims, ledger, profiles, results, stats
from minir1.publish import book, chapters
from minir1.publish import claims as publish_claims
from minir1.publish import ledger as publish_ledger
from minir1.utils import repo_root, sha256_file, stable_hash

ROOT = repo_root()


def _results(**over) -> dict:
    """A small valid results object (as written by write_results)."""
    obj = {
        "chapter": "rl",
        "profile": "cpu",
        "seeds": [0, 1, 2],
        "config": {"lr": 1e-3},
        "metrics": {
            "acc": results.metric(stats.rate([[1, 0, 1, 1], [1, 1, 0, 1]])),
            "flops": 1.0e12,
            "curve": {"0": results.metric(stats.over_seeds([0.1, 0.2])), "10": 0.5},
        },
        "claims": [results.claim("rl-vanilla-to-reasoner", "supported", "accuracy 0.1 -> 0.6")],
        "provenance": results.provenance(wall_seconds=1.5, flops=1e12),
    }
    obj.update(over)
    return obj


def _write(tmp_path: Path, **over) -> Path:
    obj = _results(**over)
    return results.write_record(
        obj["chapter"],
        profile=obj["profile"],
        seeds=obj["seeds"],
        config=obj["config"],
        metrics=obj["metrics"],
        claims=obj["claims"],
        wall_seconds=1.5,
        flops=1e12,
        out_dir=tmp_path,
    )


def _dir_listing(*dirs: Path) -> dict:
    return {str(d): sorted(p.name for p in d.iterdir()) if d.exists() else None for d in dirs}


# ----------------------------------------------------------------------------- metrics
def test_metric_only_from_stats():
    m = stats.rate([[1, 0, 1, 1]])
    assert results.metric(m) == m.to_dict()
    with pytest.raises(results.ResultsError, match="minir1.stats"):
        results.metric([0.5, 0.7, 0.6])  # the old per-seed t-interval is gone
    nested = results.to_json_metrics({"a": m, "s": {"x": stats.exact(2.0)}, "n": 3})
    assert nested["a"]["method"] == "bootstrap" and nested["s"]["x"]["method"] == "exact" and nested["n"] == 3


def test_value_and_claim():
    assert results.value(stats.over_seeds([1.0, 3.0])) == 2.0
    assert results.value(stats.over_seeds([1.0, 3.0]).to_dict()) == 2.0
    assert results.value(0.25) == 0.25
    with pytest.raises(results.ResultsError, match="'supported'"):
        results.claim("cost-final-run", "maybe", "no")


def test_rates_outside_0_1_and_intervals_missing_the_mean_are_rejected():
    bad = _results()
    bad["metrics"]["acc"] = {**bad["metrics"]["acc"], "hi": 1.2}
    with pytest.raises(results.ResultsError, match=r"\[0, 1\]"):
        results.validate(bad)
    bad["metrics"]["acc"] = {**bad["metrics"]["acc"], "hi": 0.5, "lo": 0.4, "mean": 0.9}
    with pytest.raises(results.ResultsError, match="contain the mean"):
        results.validate(bad)


# ----------------------------------------------------------------------------- schema
def test_valid_object_passes():
    assert results.validate(_results())["chapter"] == "rl"


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda o: o["claims"][0].update(verdict="maybe"), "claims/0/verdict"),
        (lambda o: o.pop("provenance"), "provenance"),
        (lambda o: o["provenance"].pop("git_commit"), "git_commit"),
        (lambda o: o.update(profile="laptop"), "profile"),
        (lambda o: o["metrics"].update(acc={"mean": 0.5, "ci95": [0.4, 0.6], "per_seed": [0.5]}), "metrics/acc"),
        (lambda o: o["metrics"].update(acc=float("nan")), "metrics/acc"),
    ],
)
def test_schema_failures_name_the_field(mutate, field):
    obj = _results()
    mutate(obj)
    with pytest.raises(results.ResultsError) as err:
        results.validate(obj, "rl.json")
    assert "rl.json" in str(err.value) and field in str(err.value)


def test_validate_file_names_the_file(tmp_path):
    bad = tmp_path / "rl.json"
    bad.write_text("{not json")
    with pytest.raises(results.ResultsError, match="rl.json"):
        results.validate_file(bad)


# ----------------------------------------------------------------------------- atomic writes
def test_write_then_load_round_trip(tmp_path):
    path = _write(tmp_path)
    assert path == tmp_path / "rl.json"
    assert results.load_results("rl", out_dir=tmp_path)["metrics"]["acc"]["mean"] == pytest.approx(0.75)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rl.json"]  # no temp file left
    with pytest.raises(FileNotFoundError, match="'cost'"):
        results.load_results("cost", out_dir=tmp_path)


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(results.ResultsError, match="verdict"):
        _write(tmp_path, claims=[{"id": "x", "verdict": "maybe", "evidence": "e"}])
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = _write(tmp_path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)  # fail between temp write and rename
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path, seeds=[7])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rl.json"]


# ----------------------------------------------------------------------------- routing
def test_results_dir_routing(monkeypatch):
    """Only the runner's explicit switch points at the book; everything else at .artifacts."""
    monkeypatch.delenv("MINIR1_RESULTS_DIR", raising=False)
    monkeypatch.delenv("MINIR1_PUBLISH", raising=False)
    for profile in ("smoke", "cpu", "gpu"):
        assert results.results_dir(profile) == ROOT / ".artifacts" / f"results-{profile}"
        assert f".artifacts/results-{profile}/x.json" in results.where_results_went("x", profile)
    monkeypatch.setenv("MINIR1_RESULTS_DIR", "/elsewhere")
    monkeypatch.setenv("MINIR1_PUBLISH", "20250101t000000-0123abcd")
    assert results.results_dir("cpu") == ROOT / "book" / "results" / ".run-20250101t000000-0123abcd.tmp"
    assert "book/results/x.json" in results.where_results_went("x", "cpu")
    assert results.provenance(wall_seconds=0, flops=0)["run_id"] == "20250101t000000-0123abcd"


def test_provenance_records_device_threads_and_dirty_flag(monkeypatch):
    monkeypatch.delenv("MINIR1_PUBLISH", raising=False)
    monkeypatch.setenv("ALLOW_DIRTY", "1")
    prov = results.provenance(wall_seconds=1.0, flops=2.0)
    assert prov["device_type"] in ("cpu", "cuda") and prov["threads"] >= 1 and prov["run_id"] == ""
    assert prov["allow_dirty"] is True and isinstance(prov["artifacts"], list) and prov["artifacts_built"] >= 0


def test_check_device(monkeypatch):
    monkeypatch.setattr(profiles.torch.cuda, "is_available", lambda: False)
    with pytest.raises(profiles.DeviceError) as e:
        profiles.check_device("gpu")
    assert "'gpu'" in str(e.value) and "cpu (" in str(e.value) and 'device="cpu"' in str(e.value)
    assert profiles.check_device("gpu", device="cpu") == "cpu" == profiles.current_device()
    assert profiles.check_device("cpu") == "cpu"
    with pytest.raises(profiles.DeviceError):
        profiles.check_device("cpu", device="cuda")
    with pytest.raises(ValueError, match="device must be one of"):
        profiles.check_device("cpu", device="tpu")


def test_results_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIR1_RESULTS_DIR", str(tmp_path))
    assert results.results_dir("cpu") == tmp_path
    monkeypatch.delenv("MINIR1_PUBLISH", raising=False)
    path = results.write_record(
        "rl", profile="smoke", seeds=[0], config={}, metrics={"x": 1.0}, claims=[], wall_seconds=0.1, flops=0.0
    )
    assert path == tmp_path / "rl.json"
    assert results.load_results("rl", "smoke")["profile"] == "smoke"


# ----------------------------------------------------------------------------- profiles
def test_bogus_profile_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        profiles.check_profile("bogus")
    assert all(repr(p) in str(err.value) for p in profiles.PROFILES) and "'bogus'" in str(err.value)
    assert profiles.pick("smoke", smoke=1, cpu=2) == 1
    assert profiles.pick("gpu", smoke=1, cpu=2) == 2


# ----------------------------------------------------------------------------- claims table
def test_registry_is_well_formed():
    reg = claims.load_registry()
    ids = [c["id"] for c in reg["claims"]]
    assert len(ids) == len(set(ids)) and "rl-vanilla-to-reasoner" in ids
    assert "upended" in reg["thesis"]


def test_claims_table_reads_results(tmp_path):
    _write(tmp_path)
    table = publish_claims.claims_table(tmp_path)
    assert list(table["id"]) == [c["id"] for c in claims.load_claims()]
    row = table.set_index("id").loc["rl-vanilla-to-reasoner"]
    assert row["verdict"] == "supported" and row["profile"] == "cpu"
    assert set(table[table["chapter"] != "rl"]["verdict"]) == {publish_claims.PENDING}


def test_write_claims_markdown(tmp_path):
    _write(tmp_path)
    out = publish_claims.write_claims_markdown(tmp_path / "gen" / "claims.md", results_dir=tmp_path)
    text = out.read_text()
    assert "* - rl-vanilla-to-reasoner" in text and "{bdg-success}`supported`" in text
    assert text.count("```") == 2  # one list-table directive
    assert "\\$5.5" in text  # dollars are escaped, not math
    assert sorted(p.name for p in out.parent.iterdir()) == ["claims.md"]


# ----------------------------------------------------------------------------- verdict box
def test_verdict_box_and_footer():
    res = _results(claims=[results.claim("rl-vanilla-to-reasoner", "not supported", "<b>x</b>")])
    html = book.verdict_box(res).data
    assert '<table class="minir1-verdicts"' in html and "Verdict" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # evidence is escaped
    assert book.COLOURS["not supported"][0] in html and "vanilla" in html
    res["provenance"].update(git_commit="0123456789abcdef-dirty", wall_seconds=75.2)
    foot = book.provenance_footer(res).data
    assert 'class="minir1-provenance"' in foot
    for s in ("0123456789 (uncommitted changes)", "1 min 15 s", "1e+12", "torch", "0, 1, 2"):
        assert s in foot


# ----------------------------------------------------------------------------- chapters CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minir1.publish.chapters", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "args, expect",
    [
        (("--profile", "bogus"), ["'smoke'", "'cpu'", "'gpu'", "'bogus'"]),
        (("--profile", "cpu", "--chapter", "no_such_chapter"), ["chapter must be one of", "'no_such_chapter'"]),
    ],
)
def test_cli_rejects_bad_arguments_and_writes_nothing(args, expect):
    watched = [ROOT / "book" / "chapters", ROOT / "book" / "results", ROOT / ".artifacts" / "chapters-smoke"]
    before = _dir_listing(*watched)
    out = _cli(*args)
    assert out.returncode == 2, out.stderr
    assert all(e in out.stderr for e in expect), out.stderr
    assert _dir_listing(*watched) == before


def _fake_repo(tmp_path: Path, monkeypatch, code: str) -> Path:
    """A repository with one source notebook ``notebooks/01_demo.ipynb`` and ``book/``."""
    for d in ("notebooks", "src/minir1", "book/chapters", "book/results"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    monkeypatch.setenv("MINIR1_ROOT", str(tmp_path))
    monkeypatch.delenv("MINIR1_RESULTS_DIR", raising=False)
    monkeypatch.delenv("MINIR1_PUBLISH", raising=False)
    _source(tmp_path, code)
    return tmp_path


def _source(root: Path, code: str) -> None:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Demo"),
            new_code_cell('profile = "cpu"\nseeds = [3, 4]', metadata={"tags": ["parameters"]}),
            new_code_cell(code),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, root / "notebooks" / "01_demo.ipynb")


WRITES = (
    "from minir1 import results\n"
    "results.atomic_write_json(results.results_dir(profile) / 'demo.json', {'seeds': seeds, "
    "'provenance': results.provenance(wall_seconds=0, flops=0)})\n"
    "print(results.where_results_went('demo', profile))"
)


def test_run_chapter_records_provenance_and_is_atomic(tmp_path, monkeypatch):
    root = _fake_repo(tmp_path, monkeypatch, WRITES)
    assert list(chapters.source_notebooks()) == ["demo"]
    assert chapters.chapter_status("demo")["exists"] is False
    path = chapters.run_chapter("demo", "cpu")
    assert path == root / "book" / "chapters" / "01_demo.ipynb"
    nb = json.loads(path.read_text())
    meta = nb["metadata"]["minir1"]
    assert meta["profile"] == "cpu" and meta["seeds"] == [3, 4]
    assert meta["parameters"] == {"profile": "cpu", "seeds": [3, 4]}
    assert meta["source_hash"] == sha256_file(root / "notebooks" / "01_demo.ipynb")
    assert set(meta["modules"]) >= {"minir1", "minir1.results", "minir1.artifacts", "minir1.utils"}
    assert meta["wall_seconds"] > 0 and meta["run_id"] and meta["artifacts_built"] == 0
    res = json.loads((root / "book" / "results" / "demo.json").read_text())
    assert res["provenance"]["run_id"] == meta["run_id"]
    assert "book/results/demo.json" in json.dumps(nb["cells"][-1]["outputs"])
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    status = chapters.chapter_status("demo")
    assert status["fresh"] and status["profile"] == "cpu"

    before = path.read_bytes(), (root / "book" / "results" / "demo.json").read_bytes()
    _source(root, WRITES + "\nraise RuntimeError('boom')")  # the source changes and now fails
    assert chapters.chapter_status("demo")["source_current"] is False
    with pytest.raises(Exception, match="boom"):
        chapters.run_chapter("demo", "cpu")
    assert (path.read_bytes(), (root / "book" / "results" / "demo.json").read_bytes()) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["01_demo.ipynb"]
    assert sorted(p.name for p in (root / "book" / "results").iterdir()) == ["demo.json"]  # staging removed


def test_chapter_is_stale_when_code_it_imports_changes(tmp_path, monkeypatch):
    root = _fake_repo(tmp_path, monkeypatch, "from minir1.publish import plots")
    src = root / "notebooks" / "01_demo.ipynb"
    code = chapters.chapter_code(src)
    assert {"minir1.publish.plots", "minir1.utils"} <= set(code["modules"])  # via results
    nb = nbformat.read(src, as_version=4)
    old = {**code["modules"], "minir1.utils": "old"}  # as recorded before utils.py changed
    nb.metadata["minir1"] = {"profile": "cpu", **code, "modules": old, "code_hash": stable_hash(old)}
    nbformat.write(nb, root / "book" / "chapters" / "01_demo.ipynb")
    status = chapters.chapter_status("demo")
    assert status["source_current"] and not status["code_current"] and not status["fresh"]
    assert status["changed_modules"] == ["minir1.utils"]


def test_notebook_imports_are_parsed(tmp_path):
    nb = new_notebook(
        cells=[
            new_code_cell(
                "%matplotlib inline\nfrom minir1.experiments import lab\n"
                "import minir1.profiles as pr\nfrom minir1.results import load_results"
            )
        ]
    )
    assert chapters.notebook_imports(nb) == {
        "minir1.experiments",
        "minir1.experiments.lab",
        "minir1.profiles",
        "minir1.results",
    }
    with pytest.raises(ValueError, match="code cell 0 is not valid Python"):
        chapters.notebook_imports(new_notebook(cells=[new_code_cell("def (")]))


def test_notebook_parameters_are_parsed_not_executed():
    nb = new_notebook(
        cells=[new_code_cell('profile = "gpu"\nseeds = [1]\nx = os.system("no")', metadata={"tags": ["parameters"]})]
    )
    assert chapters.notebook_parameters(nb) == {"profile": "gpu", "seeds": [1]}


def test_junit_timing(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        "<testsuites><testsuite>"
        '<testcase classname=".artifacts.nbval.01_cost.ipynb" name="Cell 0" time="1.5"/>'
        '<testcase classname=".artifacts.nbval.01_cost.ipynb" name="Cell 1" time="2.0"/>'
        '<testcase classname=".artifacts.nbval.02_lab.ipynb" name="Cell 0" time="4"/>'
        "</testsuite></testsuites>"
    )
    assert chapters.junit_timing(xml) == {"01_cost.ipynb": 3.5, "02_lab.ipynb": 4.0}


# ----------------------------------------------------------------------------- ledger
def _ledger_file(d: Path, chapter: str, wall: float, flops: float, threads: int, arts: list[dict]) -> None:
    prov = {"flops": flops, "wall_seconds": wall, "threads": threads, "artifacts": arts}
    (d / f"{chapter}.json").write_text(json.dumps({"chapter": chapter, "profile": "cpu", "provenance": prov}))


def test_ledger_counts_each_model_once_and_threads_not_cores(tmp_path):
    base = {"key": "k" * 16, "kind": "base", "flops": 100.0, "wall_seconds": 600.0, "threads": 2}
    _ledger_file(tmp_path, "lab", 700.0, 150.0, 2, [{**base, "built": True}])  # trained it: 100 s own
    _ledger_file(tmp_path, "rl", 300.0, 180.0, 1, [{**base, "built": False}])  # reused it, 1 thread
    rows = ledger.ledger_rows(tmp_path)
    assert [(r.chapter, r.kind) for r in rows] == [("lab", "chapter"), ("rl", "chapter"), ("base kkkkkkkk", "artifact")]
    assert [r.wall_seconds for r in rows] == [100.0, 300.0, 600.0]
    assert [r.flops for r in rows] == [50.0, 80.0, 100.0]
    total = ledger.bill(rows, ledger.LedgerConfig(cores=2))[-1]
    assert total["wall_seconds"] == 1000.0 and total["flops"] == 230.0
    assert total["cpu_hours"] == pytest.approx((100 * 2 + 300 * 1 + 600 * 2) / 3600)
    assert total["file"] == "2 files, 1 models"
    md = publish_ledger.write_ledger_markdown(tmp_path / "gen" / "ledger.md", results_dir=tmp_path).read_text()
    assert "| whole book | 2 files, 1 models | 1000 |" in md and "DeepSeek-V3" in md


def test_run_chapter_publishes_only_what_it_wrote(tmp_path, monkeypatch):
    """Two chapters run at once: one that publishes while the other runs is not overwritten by
    the other's older staging copy of its results file."""
    root = _fake_repo(tmp_path, monkeypatch, WRITES)
    other = root / "book" / "results" / "other.json"
    other.write_text('{"v": "old"}')
    execute = chapters._execute

    def execute_while_other_publishes(*args, **kw):
        other.write_text('{"v": "new"}')  # the other chapter publishes meanwhile
        return execute(*args, **kw)

    monkeypatch.setattr(chapters, "_execute", execute_while_other_publishes)
    chapters.run_chapter("demo", "cpu")
    assert other.read_text() == '{"v": "new"}'
    assert (root / "book" / "results" / "demo.json").exists()


def test_kernels_get_one_thread(tmp_path, monkeypatch):
    code = "import os\nassert os.environ['OMP_NUM_THREADS'] == '1', os.environ.get('OMP_NUM_THREADS')\n" + WRITES
    _fake_repo(tmp_path, monkeypatch, code)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    chapters.run_chapter("demo", "cpu")
    assert os.environ["OMP_NUM_THREADS"] == "7"  # restored
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        chapters.kernel_env(0)


def test_chapter_dependencies_and_schedule():
    """The run order comes from each chapter module's ``AFTER`` declaration, nothing else."""
    names = list(chapters.source_notebooks())
    deps = chapters.dependencies(names)
    assert deps == {
        "cost": set(),
        "lab": {"cost"},
        "rl": {"lab"},
        "distillation": {"lab"},  # beside RL: the teacher they share is built once, under a lock
        "censorship": set(),
        "engineering": set(),
        "thesis": set(names) - {"thesis"},  # reads every chapter's published results
    }
    assert chapters.declared_after("no_such_chapter") == ()  # no module (a test's demo notebook)
    assert chapters.dependencies(["rl", "thesis"]) == {"rl": set(), "thesis": {"rl"}}  # only among those run
    first = chapters.schedule(deps, done=set(), running=set())
    assert first[0] == "cost"  # the head of the longest chain (cost -> lab -> rl / distillation -> thesis)
    assert "thesis" not in first
    assert chapters.schedule(deps, done=set(deps) - {"thesis"}, running=set()) == ["thesis"]
    assert chapters.run_order(deps) == names  # one at a time: book order already respects AFTER


def _declaring(tmp_path: Path, monkeypatch, modules: dict[str, str]) -> Path:
    """A repository whose chapters ``modules`` (name -> module source) each have a notebook."""
    from minir1.publish import order

    root = _fake_repo(tmp_path, monkeypatch, WRITES)
    (root / "notebooks" / "01_demo.ipynb").unlink()
    files = {}
    for i, (name, code) in enumerate(modules.items(), 1):
        nbformat.write(new_notebook(), root / "notebooks" / f"{i:02d}_{name}.ipynb")
        files[f"minir1.experiments.{name}"] = root / f"{name}.py"
        files[f"minir1.experiments.{name}"].write_text(code)
    monkeypatch.setattr(order, "module_file", files.get)
    return root


@pytest.mark.parametrize(
    "modules, message",
    [
        ({"a": "AFTER = ('b',)", "b": "AFTER: tuple[str, ...] = ('a',)"}, r"form a cycle \(a -> b -> a: a after b"),
        ({"a": "AFTER = ('a',)"}, r"form a cycle \(a -> a"),
        ({"a": "AFTER = ()", "b": "AFTER = ('a', 'nope')"}, r"'b' declares AFTER = \('a', 'nope'\), but 'nope' is not"),
        ({"a": "AFTER = ['b']", "b": "AFTER = ()"}, r"AFTER must be a literal tuple of chapter names; got \['b'\]"),
        ({"a": "RUNS_ALONGSIDE = ()"}, r"a chapter module must declare `AFTER"),
    ],
)
def test_bad_after_declarations_are_named(tmp_path, monkeypatch, capsys, modules, message):
    _declaring(tmp_path, monkeypatch, modules)
    with pytest.raises(chapters.DeclarationError, match=message):
        chapters.dependencies(list(modules))
    assert chapters.main(["--profile", "smoke"]) == 2  # before anything runs
    assert "error: " in capsys.readouterr().err


def test_good_after_declarations_order_a_fake_book(tmp_path, monkeypatch):
    _declaring(
        tmp_path, monkeypatch, {"b": "AFTER = ('c',)", "c": "x = 1\nAFTER: tuple[str, ...] = ()", "d": "AFTER = ()"}
    )
    deps = chapters.dependencies(["b", "c", "d"])
    assert deps == {"b": {"c"}, "c": set(), "d": set()}
    assert chapters.run_order(deps) == ["c", "b", "d"]


def test_runner_rejects_bad_jobs_and_threads(capsys):
    assert chapters.main(["--jobs", "0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    assert chapters.main(["--threads", "-1"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_runner_runs_chapters_in_parallel_workers(tmp_path, monkeypatch, capsys):
    root = _fake_repo(tmp_path, monkeypatch, WRITES)
    nb = nbformat.read(root / "notebooks" / "01_demo.ipynb", as_version=4)
    nb.cells[-1].source = WRITES.replace("demo", "second")
    nbformat.write(nb, root / "notebooks" / "02_second.ipynb")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1] / "src"))
    assert chapters.main(["--profile", "smoke", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "second" in out and "total" in out
    assert sorted(p.name for p in (root / ".artifacts" / "chapters-smoke").glob("*.ipynb")) == [
        "01_demo.ipynb",
        "02_second.ipynb",
    ]
