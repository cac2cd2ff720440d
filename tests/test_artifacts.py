import pytest

from minir1 import artifacts


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path))
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


def test_code_change_changes_key(monkeypatch):
    k1 = artifacts.key("base", {"x": 1})
    monkeypatch.setattr(artifacts, "code_version", lambda modules=None: "different")
    assert artifacts.key("base", {"x": 1}) != k1


def test_failed_build_leaves_nothing(tmp_cache):
    def boom(folder):
        (folder / "half.bin").write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        artifacts.cached("base", {"y": 1}, boom)
    assert not any(p.name != "." for p in (tmp_cache / "base").iterdir())


def test_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        artifacts.cached("", {}, lambda f: None)
