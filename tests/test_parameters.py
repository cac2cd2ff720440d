"""Chapter parameters as a person types them: ``papermill -p`` passes strings (``-p seeds "0,1"``).

Every notebook normalises its parameters in the cell right after the ``parameters`` cell with
:func:`minir1.profiles.chapter_parameters`; a bad value stops there with a message naming the
parameter, the value and what is allowed.
"""

from __future__ import annotations

import ast
import json
import os

import pytest

from minir1.profiles import ParameterError, chapter_parameters, parse_seeds
from minir1.publish.notebooks import notebook_parameters, source_notebooks

NOTEBOOKS = source_notebooks()


@pytest.mark.parametrize(
    "typed, seeds",
    [
        ([0, 1, 2], [0, 1, 2]),
        ((4, 2), [4, 2]),
        ("0,1,2", [0, 1, 2]),
        ("0, 1, 2", [0, 1, 2]),
        ("[0, 1, 2]", [0, 1, 2]),
        ("(0,1)", [0, 1]),
        ("0 1 2", [0, 1, 2]),
        (" 7 ", [7]),
        (3, [3]),
        ("3", [3]),
        (["0", "1"], [0, 1]),
    ],
)
def test_seeds_in_every_form_a_person_types(typed, seeds):
    assert parse_seeds(typed) == seeds


@pytest.mark.parametrize("bad", ["0-2", "0,,x", "", "[]", "1.5", 1.5, True, None, [], [0, 0], "-1", [0, "a"], {"a": 1}])
def test_bad_seeds_say_what_is_allowed(bad):
    with pytest.raises(ParameterError) as e:
        parse_seeds(bad)
    msg = str(e.value)
    assert msg.startswith(f"parameter seeds: got {bad!r}"), msg
    assert '"0,1,2"' in msg and '-y "seeds: [0, 1, 2]"' in msg and "single integer" in msg


def test_strings_for_profile_device_and_model_path(tmp_path):
    assert chapter_parameters(profile=" cpu ", device="CPU", model_path="") == ("cpu", "cpu", "")
    assert chapter_parameters(device=None, model_path=None) == ("", "")
    assert chapter_parameters(model_path=str(tmp_path)) == str(tmp_path)
    for given, words in [
        ({"profile": "cpux"}, ["parameter profile: got 'cpux'", "'smoke', 'cpu', 'gpu'", "-p profile cpu"]),
        ({"profile": 1}, ["parameter profile: got 1 (int)"]),
        ({"device": "gpu"}, ["parameter device: got 'gpu'", "'', 'cpu', 'cuda'"]),
        ({"model_path": str(tmp_path / "nope")}, ["parameter model_path: got", "existing local checkpoint"]),
    ]:
        with pytest.raises(ParameterError) as e:
            chapter_parameters(**given)
        assert all(w in str(e.value) for w in words), str(e.value)
    with pytest.raises(TypeError, match="knows"):
        chapter_parameters(sedes="0")


def _check_cell(nb: dict) -> tuple[dict, str]:
    cells = nb["cells"]
    i = next(k for k, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    return cells[i + 1], "".join(cells[i + 1]["source"])


def _typed(value) -> list:
    """What a person would type for a default value with ``papermill -p`` (always a string)."""
    if isinstance(value, list):
        return [",".join(map(str, value)), str(value), " ".join(map(str, value))]
    return [str(value)]


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_each_chapter_takes_its_parameters_as_strings(name):
    """The cell after ``parameters`` normalises every parameter; typed as strings, the defaults come back."""
    nb = json.loads(NOTEBOOKS[name].read_text(encoding="utf-8"))
    defaults = notebook_parameters(nb)
    cell, source = _check_cell(nb)
    assert "chapter_parameters(" in source, f"{name}: the cell after the parameters cell must call chapter_parameters"
    assert "remove-cell" in cell["metadata"].get("tags", []), f"{name}: tag the parameters check remove-cell"
    call = next(n for n in ast.parse(source).body if isinstance(n, ast.Assign))
    assert [t.id for t in call.targets[0].elts] == list(defaults), f"{name}: normalise every parameter, in order"
    assert [k.arg for k in call.value.keywords] == list(defaults)
    for k in range(3):
        typed = {p: _typed(v)[min(k, len(_typed(v)) - 1)] for p, v in defaults.items()}
        ns = dict(typed)
        exec(compile(source, f"{name} parameters check", "exec"), ns)
        assert {p: ns[p] for p in defaults} == defaults, typed
    ns = {**defaults, "seeds": "0-2"}
    with pytest.raises(ParameterError, match="parameter seeds: got '0-2'"):
        exec(compile(source, f"{name} parameters check", "exec"), ns)


def _papermill(tmp_path, monkeypatch, parameters: dict):
    import papermill as pm

    for k in ("MINIR1_PUBLISH", "MINIR1_ROOT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("MINIR1_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MINIR1_PROGRESS", "0")
    src = NOTEBOOKS["cost"]
    out = tmp_path / "cost.ipynb"
    pm.execute_notebook(
        str(src), str(out), parameters=parameters, kernel_name="python3", cwd=str(src.parent), progress_bar=False
    )
    return out


def test_papermill_seeds_as_a_string(tmp_path, monkeypatch):
    """The shortest chapter, executed with every parameter a string: `-p seeds "0,1"` works."""
    _papermill(tmp_path, monkeypatch, {"profile": "smoke", "seeds": "0,1", "device": ""})
    res = json.loads((tmp_path / "results" / "cost.json").read_text())
    assert res["seeds"] == [0, 1] and res["profile"] == "smoke"


def test_papermill_bad_seeds_stop_after_the_parameters_cell(tmp_path, monkeypatch):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as e:
        _papermill(tmp_path, monkeypatch, {"profile": "smoke", "seeds": "0-2"})
    assert e.value.ename == "ParameterError"
    assert "parameter seeds: got '0-2'" in e.value.evalue and '-y "seeds: [0, 1, 2]"' in e.value.evalue
    nb = json.loads((tmp_path / "cost.ipynb").read_text())
    ran = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and c.get("execution_count")]
    check = next(i for i, c in enumerate(nb["cells"]) if "chapter_parameters(" in "".join(c["source"]))
    assert ran[-1] == check, "nothing after the parameters check may run"
    assert not (tmp_path / "results").exists() or not os.listdir(tmp_path / "results")
