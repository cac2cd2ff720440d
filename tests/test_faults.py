"""Faults the publishing path survives (issue 16).

Most tests run the real chapter runner (``python -m minir1.publish.chapters``) on a tiny
repository in a temp folder: one source notebook that builds two small artifacts and writes
a results file, with hooks (marker files in ``$FAULT_DIR``) that hold it at a chosen point so
the test can ``kill -9`` it there.  Faults tried and what must happen:

- kill -9 while an artifact trains: no chapter, no results file, no artifact; the next run
  reuses the artifact that had finished and completes;
- kill -9 after the results were written but before the chapter was published, and in the
  middle of publishing: the book is untouched, or the next run completes what was staged;
- a cached model truncated or altered: caught by the checksums in ``meta.json``, rebuilt with
  a warning, never handed out;
- ``book/results`` missing or read-only: a clear error naming the folder, nothing written;
- two runs at once: the second stops with a message naming the first (or waits with --wait);
- by hand (papermill, as the README says): the book and ``git status`` stay untouched, and the
  ``gpu`` profile on a machine without CUDA stops with a message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from minir1 import artifacts, results
from minir1.publish import chapters
from minir1.utils import repo_root

ROOT = repo_root()

DEMO = textwrap.dedent("""\
    import os, pathlib, time
    from minir1 import artifacts, results
    flags = pathlib.Path(os.environ["FAULT_DIR"])

    def hold(name):
        (flags / "kernel.pid").write_text(str(os.getpid()))
        (flags / name).touch()
        while (flags / f"hold_{name}").exists():
            time.sleep(0.05)

    def build_a(folder):
        (folder / "w.bin").write_bytes(b"a" * 4096)
        return {"flops": 10.0, "wall_seconds": 1.0}

    def build_b(folder):
        (folder / "w.bin").write_bytes(b"b" * 2048)
        hold("training")
        (folder / "w2.bin").write_bytes(b"c" * 2048)
        return {"flops": 20.0, "wall_seconds": 2.0}

    artifacts.cached("demo-a", {"n": 1}, build_a)
    artifacts.cached("demo-b", {"n": 1}, build_b)
    out = results.results_dir(profile) / "demo.json"
    prov = results.provenance(wall_seconds=0.5, flops=30.0)
    results.atomic_write_json(out, {"chapter": "demo", "profile": profile, "seeds": seeds, "provenance": prov})
    hold("written")
    print(results.where_results_went("demo", profile))
""")


# ----------------------------------------------------------------------------- a tiny repository
def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A committed repository with ``notebooks/01_demo.ipynb``, ``book/{chapters,results}``."""
    root = tmp_path / "repo"
    for d in ("notebooks", "src/minir1", "book/chapters", "book/results"):
        (root / d).mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (root / ".gitignore").write_text(".artifacts/\n*.tmp\n")
    (root / "book" / "results" / "other.json").write_text('{"chapter": "other"}\n')
    nb = new_notebook(
        cells=[new_code_cell('profile = "cpu"\nseeds = [3]', metadata={"tags": ["parameters"]}), new_code_cell(DEMO)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, root / "notebooks" / "01_demo.ipynb")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")
    flags = tmp_path / "flags"
    flags.mkdir()
    env = {
        "MINIR1_ROOT": str(root),
        "MINIR1_ARTIFACTS": str(tmp_path / "cache"),
        "FAULT_DIR": str(flags),
        "PYTHONPATH": str(ROOT / "src"),
        "OMP_NUM_THREADS": "1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("MINIR1_PUBLISH", "MINIR1_RESULTS_DIR", "ALLOW_DIRTY"):
        monkeypatch.delenv(k, raising=False)
    return root


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "minir1.publish.chapters", "--chapter", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    p = _start(*args)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"runner exited ({proc.returncode}) before {path.name}: {proc.stderr.read()}")
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {path.name}")
        time.sleep(0.05)


def _kill9(proc: subprocess.Popen, flags: Path) -> None:
    """kill -9 the runner and its kernel (which runs in its own session), as a crash would."""
    os.killpg(proc.pid, signal.SIGKILL)
    os.kill(int((flags / "kernel.pid").read_text()), signal.SIGKILL)
    proc.wait(timeout=30)


def _book(root: Path) -> dict[str, bytes]:
    """Every published file (hidden staging folders excluded)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for d in ("book/chapters", "book/results")
        for p in sorted((root / d).iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def _finished(kind: str) -> list[Path]:
    d = artifacts.artifacts_dir() / kind
    return [p for p in d.iterdir() if not p.name.startswith(".")] if d.exists() else []


def _assert_published(root: Path) -> dict:
    chapter = json.loads((root / "book/chapters/01_demo.ipynb").read_text())["metadata"]["minir1"]
    res = json.loads((root / "book/results/demo.json").read_text())
    assert chapter["run_id"] and chapter["run_id"] == res["provenance"]["run_id"]
    assert not list((root / "book/results").glob(".run-*"))  # no staging left behind
    assert not (root / ".artifacts" / "results-cpu").exists()  # nothing published elsewhere
    return chapter


# ----------------------------------------------------------------------------- kill -9
def test_kill_during_training_and_after_results_then_rerun_completes(repo, tmp_path):
    flags = tmp_path / "flags"
    before = _book(repo)
    (flags / "hold_training").touch()
    proc = _start()
    _wait_for(flags / "training", proc)
    _kill9(proc, flags)  # 1. while demo-b trains
    assert _book(repo) == before  # no chapter, no results file
    assert len(_finished("demo-a")) == 1 and _finished("demo-b") == []  # b was half-built: not kept
    artifacts.verify(_finished("demo-a")[0])

    (flags / "hold_training").unlink()
    (flags / "hold_written").touch()
    proc = _start()
    _wait_for(flags / "written", proc)
    _kill9(proc, flags)  # 2. results written (staged), chapter not yet published
    assert _book(repo) == before
    assert len(_finished("demo-b")) == 1  # trained by the second run, kept

    (flags / "hold_written").unlink()
    out = _run()  # 3. completes, reusing both
    assert out.returncode == 0, out.stderr
    assert "removed unfinished run" in out.stdout
    assert _assert_published(repo)["artifacts_built"] == 0
    res = json.loads((repo / "book/results/demo.json").read_text())
    assert {a["kind"]: a["built"] for a in res["provenance"]["artifacts"]} == {"demo-a": False, "demo-b": False}
    assert res["provenance"]["artifacts"][0]["flops"] == 10.0
    for kind in ("demo-a", "demo-b"):  # killed builds' temp folders are gone
        assert not [p for p in (artifacts.artifacts_dir() / kind).iterdir() if p.name.startswith(".tmp")]


def test_kill_while_publishing_is_completed_by_next_run(repo):
    """Killed after the manifest, with one of the two staged files moved into place."""
    moved_before_kill = 1
    script = textwrap.dedent(f"""
        import os, signal
        from minir1.publish import chapters
        def finish(staging, root):
            import json
            files = json.loads((staging / "publish.json").read_text())["files"]
            for staged, target in list(files.items())[:{moved_before_kill}]:
                os.replace(staging / staged, root / target)
            os.kill(os.getpid(), signal.SIGKILL)
        chapters._finish = finish
        chapters.main(["--chapter", "demo"])
    """)
    before = _book(repo)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    staged = list((repo / "book/results").glob(".run-*.tmp"))
    assert len(staged) == 1 and (staged[0] / "publish.json").exists()
    notes = chapters.recover(repo)
    assert notes and "completed interrupted run" in notes[0]
    _assert_published(repo)
    assert (repo / "book/results/other.json").read_bytes() == before["book/results/other.json"]


# ----------------------------------------------------------------------------- corrupt cache
def _build(calls):
    def build(folder):
        calls.append(folder)
        (folder / "model.bin").write_bytes(bytes(range(256)) * 16)
        return {"flops": 1.0}

    return build


@pytest.mark.parametrize("damage", ["truncate", "alter", "delete", "extra"])
def test_corrupt_cached_model_is_rebuilt_with_warning(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(artifacts, "_USED", {})
    monkeypatch.setattr(artifacts, "_BUILT", [])
    calls = []
    path = artifacts.cached("demo", {"x": 1}, _build(calls))
    model = path / "model.bin"
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[:100])
    elif damage == "alter":
        data = bytearray(model.read_bytes())
        data[7] ^= 0xFF  # same size, one byte flipped
        model.write_bytes(bytes(data))
    elif damage == "delete":
        model.unlink()
    else:
        (path / "stray.bin").write_bytes(b"?")
    with pytest.raises(artifacts.CorruptArtifact, match="model.bin|stray.bin"):
        artifacts.verify(path)
    with pytest.warns(RuntimeWarning, match="rebuilding artifact demo/"):
        again = artifacts.cached("demo", {"x": 1}, _build(calls))
    assert again == path and len(calls) == 2
    artifacts.verify(again)
    assert model.read_bytes() == bytes(range(256)) * 16


def test_artifact_without_checksums_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(artifacts, "_USED", {})
    monkeypatch.setattr(artifacts, "_BUILT", [])
    calls = []
    path = artifacts.cached("demo", {"x": 2}, _build(calls))
    meta = json.loads((path / "meta.json").read_text())
    del meta["files"]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="no file checksums"):
        artifacts.cached("demo", {"x": 2}, _build(calls))
    assert len(calls) == 2


# ----------------------------------------------------------------------------- the book's folders
def test_missing_book_results_is_a_clear_error(repo):
    (repo / "book/results/other.json").unlink()
    (repo / "book/results").rmdir()
    out = _run()
    assert out.returncode == 3, out.stderr
    assert f"{repo / 'book' / 'results'} does not exist" in out.stderr
    assert not (repo / "book/results").exists() and not list((repo / "book/chapters").iterdir())
    assert not (repo / ".artifacts" / "results-cpu").exists()


def test_read_only_book_results_is_a_clear_error(repo, monkeypatch, capsys):
    before = _book(repo)
    ro = repo / "book" / "results"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    os.chmod(ro, 0o555)  # what a reader would do; root ignores it, hence the os.access stand-in
    try:
        assert chapters.main(["--chapter", "demo"]) == 3
    finally:
        os.chmod(ro, 0o755)
    assert f"{ro} is not writable" in capsys.readouterr().err
    assert _book(repo) == before
    assert not (repo / ".artifacts" / "results-cpu").exists()


def test_publishing_without_the_runner_is_refused(repo, monkeypatch):
    """MINIR1_PUBLISH set by hand (no staging folder): write_results names the path."""
    monkeypatch.setenv("MINIR1_PUBLISH", "20250101t000000-deadbeef")
    with pytest.raises(results.ResultsError, match=r"\.run-20250101t000000-deadbeef\.tmp does not exist"):
        results.write_record(
            "demo", profile="cpu", seeds=[0], config={}, metrics={"x": 1.0}, claims=[], wall_seconds=0.0, flops=0.0
        )
    monkeypatch.setenv("MINIR1_PUBLISH", "../../etc")
    with pytest.raises(results.ResultsError, match="run id"):
        results.results_dir("cpu")


def test_dirty_tree_is_refused_unless_allowed(repo):
    (repo / "notebooks" / "01_demo.ipynb").write_text((repo / "notebooks" / "01_demo.ipynb").read_text() + " ")
    out = _run()
    assert out.returncode == 3 and "uncommitted changes to tracked files: notebooks/01_demo.ipynb" in out.stderr
    assert not list((repo / "book/chapters").iterdir())


# ----------------------------------------------------------------------------- two runs at once
def test_second_run_stops_or_waits_on_the_lock(repo, capsys):
    with chapters.run_lock(repo):
        assert chapters.main(["--chapter", "demo"]) == 3
        assert "another `make chapters` is running (pid" in capsys.readouterr().err
        waiting = _start("--wait")
        time.sleep(1.5)
        assert waiting.poll() is None  # queued, not interleaved
        assert not list((repo / "book/chapters").iterdir())
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    _assert_published(repo)


# ----------------------------------------------------------------------------- by hand
def _papermill(profile: str, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MINIR1_PUBLISH", "MINIR1_RESULTS_DIR", "MINIR1_ROOT")}
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            "--log-level",
            "WARNING",
            "-p",
            "profile",
            profile,
            "notebooks/01_cost.ipynb",
            str(out),
            "--cwd",
            "notebooks",
        ],
        cwd=ROOT,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _git_state() -> tuple[str, dict[str, bytes]]:
    status = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    return status, {p.name: p.read_bytes() for p in sorted((ROOT / "book" / "results").glob("*.json"))}


def test_papermill_by_hand_leaves_book_and_git_untouched(tmp_path):
    """The README's by-hand command, for the cheapest chapter in the smoke profile."""
    before = _git_state()
    out = _papermill("smoke", tmp_path / "cost.ipynb")
    assert out.returncode == 0, out.stderr[-2000:]
    assert _git_state() == before
    assert (ROOT / ".artifacts" / "results-smoke" / "cost.json").exists()
    readme = (ROOT / "README.md").read_text()
    assert ".artifacts/results-<profile>" in readme, "README must say where by-hand runs write results"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_profile_without_cuda_stops_with_a_message(tmp_path):
    src = (ROOT / "notebooks" / "01_cost.ipynb").read_text()
    assert "check_device(" in src, "notebooks/01_cost.ipynb must call minir1.profiles.check_device(profile, device)"
    before = _git_state()
    out = _papermill("gpu", tmp_path / "cost.ipynb")
    assert out.returncode != 0
    text = out.stderr + (tmp_path / "cost.ipynb").read_text()
    assert "profile 'gpu' needs a CUDA GPU" in text and 'device="cpu"' in text
    assert _git_state() == before
