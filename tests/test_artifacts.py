import multiprocessing
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from minir1 import artifacts, utils


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(artifacts, "_USED", {})  # what this process used: per test here
    monkeypatch.setattr(artifacts, "_BUILT", [])
    return tmp_path


def test_reuse_and_invalidate():
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "weights.bin").write_text("w")
        return {"flops": 1.0}

    a = artifacts.cached("base", {"lr": 1}, build)
    b = artifacts.cached("base", {"lr": 1}, build)
    assert a == b and len(calls) == 1
    assert artifacts.load_meta(a)["flops"] == 1.0
    c = artifacts.cached("base", {"lr": 2}, build)  # config change -> new key
    assert c != a and len(calls) == 2
    artifacts.cached("base", {"lr": 1}, build, force=True)  # force -> rebuilt in place
    assert len(calls) == 3 and a.exists()


def _builder_in(module: str):
    def build(folder):
        return None

    build.__module__ = module  # as if written in that module
    return build


@pytest.fixture
def pkg_copy(tmp_path, monkeypatch):
    """A temp copy of the minir1 sources that the code hash reads instead of the real ones."""
    copy = tmp_path / "minir1"
    shutil.copytree(Path(utils.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(utils, "_package_dir", lambda: copy)
    return copy


def test_key_follows_the_builder_source_and_its_imports(pkg_copy):
    build = _builder_in("minir1.experiments.recipes.base")
    mods = utils.module_closure(artifacts.builder_modules(build), exclude=artifacts.EXCLUDE)
    assert {"minir1.experiments.recipes.base", "minir1.train", "minir1.models", "minir1"} <= set(mods)
    assert not [m for m in mods if m.startswith("minir1.publish")]
    k0 = artifacts.key("base", {"x": 1}, build)
    assert artifacts.key("base", {"x": 1}, build) == k0  # stable
    assert artifacts.key("base", {"x": 2}, build) != k0  # config
    recipe = pkg_copy / "experiments" / "recipes" / "base.py"
    recipe.write_text(recipe.read_text() + "\n# the builder's module changed\n")
    k1 = artifacts.key("base", {"x": 1}, build)
    assert k1 != k0
    train = pkg_copy / "train.py"  # imported by the recipe: a transitive change counts too
    train.write_text(train.read_text().replace("def ", "def  ", 1))
    k2 = artifacts.key("base", {"x": 1}, build)
    assert k2 not in (k0, k1)
    plots = pkg_copy / "publish" / "plots" / "common.py"  # publishing never shapes a model
    plots.write_text(plots.read_text() + "\n# a new caption\n")
    assert artifacts.key("base", {"x": 1}, build) == k2


def test_relative_and_function_level_imports_are_found():
    src = "from ..train import train\nfrom . import lab\ndef f():\n    from ..tasks import get_task\n"
    found = utils.minir1_imports(src, "minir1.experiments.rl")
    assert {"minir1.train", "minir1.experiments.lab", "minir1.tasks"} <= found
    assert "minir1.train.train" not in found  # a function, not a module


def test_no_hand_bumped_version_constants():
    src = Path(utils.__file__).parent
    pat = re.compile(r"^\s*[A-Z_]*VERSION\s*=", re.M)
    bumped = [p.relative_to(src).as_posix() for p in src.rglob("*.py") if pat.search(p.read_text())]
    assert not bumped, f"cache keys are derived from the code; remove these VERSION constants: {bumped}"


def test_training_record_and_used_records(tmp_cache):
    def build(folder):
        (folder / "w.bin").write_bytes(b"w")
        return {"flops": 5.0, "wall_seconds": 2.5}

    path = artifacts.cached("rec", {"a": 1}, build)
    rec = artifacts.training_record(path)
    assert rec == {
        "key": path.name,
        "kind": "rec",
        "flops": 5.0,
        "wall_seconds": 2.5,
        "threads": artifacts.load_meta(path)["threads"],
    }
    assert rec["threads"] >= 1
    used = {r["key"]: r for r in artifacts.used_records()}
    assert used[path.name]["built"] is True


def test_failed_build_leaves_nothing(tmp_cache):
    def boom(folder):
        (folder / "half.bin").write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        artifacts.cached("base", {"y": 1}, boom)
    assert not any((tmp_cache / "base").iterdir())


def test_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        artifacts.cached("", {}, lambda f: None)


def _slow_build(folder):
    """Builder for the concurrency test: records each call, then takes a while."""
    with open(folder.parent.parent / "calls.txt", "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(1.0)
    (folder / "x.txt").write_text("x")
    return {"flops": 1.0}


def _ask(root: str, out: str) -> None:
    os.environ["MINIR1_ARTIFACTS"] = root
    Path(out).write_text(str(artifacts.cached("slow", {"a": 1}, _slow_build)))


def test_two_processes_build_a_missing_artifact_once(tmp_cache):
    ctx = multiprocessing.get_context("spawn")
    outs = [tmp_cache / f"out{i}.txt" for i in range(2)]
    procs = [ctx.Process(target=_ask, args=(str(tmp_cache), str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    paths = {o.read_text() for o in outs}
    assert len(paths) == 1 and (Path(paths.pop()) / "x.txt").read_text() == "x"
    assert len((tmp_cache / "calls.txt").read_text().split()) == 1  # the second waited, then loaded
