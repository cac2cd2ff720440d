"""Every source notebook starts with the Colab cell, hidden in the book; the cell is inert
outside Colab; plumbing cells are hidden (tags), and the parameters cell keeps its tag."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import nbformat
import pytest
import yaml

from minir1.publish import notebook_cells as nc
from minir1.publish.chapters import source_notebooks
from minir1.utils import repo_root

NOTEBOOKS = source_notebooks()


def _nb(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_starts_with_colab_cell(name):
    cells = _nb(NOTEBOOKS[name])["cells"]
    assert cells and nc.is_colab_cell(cells[0]), (
        f"{NOTEBOOKS[name].name}: the first cell must be minir1.publish.notebook_cells.COLAB_CELL "
        "tagged remove-cell (ensure_colab_cell adds it)"
    )


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_parameters_cell_tagged_and_removed(name):
    cells = [c for c in _nb(NOTEBOOKS[name])["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{name}: exactly one cell tagged 'parameters' (papermill needs it)"
    assert "remove-cell" in cells[0]["metadata"]["tags"], (
        f"{name}: the parameters cell must also be tagged remove-cell (the footer shows the profile)"
    )


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_papermill_parses_every_parameter(name):
    """``papermill --help-notebook`` and its type inference read each line of the parameters cell.

    A line papermill cannot parse (an apostrophe in a comment is enough) is dropped with an
    "Unable to parse line" warning on every execution.
    """
    from papermill.translators import PythonTranslator

    cell = next(c for c in _nb(NOTEBOOKS[name])["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    source = nc._source(cell)
    assigned = [ln.split("=")[0].strip() for ln in source.splitlines() if "=" in ln and not ln.startswith("#")]
    parsed = [p.name for p in PythonTranslator.inspect({"source": source})]
    assert parsed == assigned, f"{name}: papermill parsed {parsed} from the parameters cell, which assigns {assigned}"


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_import_cells_are_hidden(name):
    """A code cell whose code is mostly imports must be tagged remove-input/hide-input/remove-cell."""
    for i, cell in enumerate(_nb(NOTEBOOKS[name])["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = [ln for ln in nc._source(cell).splitlines() if ln.strip() and not ln.startswith("#")]
        imports = [ln for ln in lines if ln.startswith(("import ", "from "))]
        tags = set(cell.get("metadata", {}).get("tags", []))
        if lines and len(imports) * 2 >= len(lines):
            assert tags & {"remove-input", "hide-input", "remove-cell"}, (
                f"{name} cell {i} is an import cell; tag it remove-input (or hide-input)"
            )


def test_colab_cell_is_inert_outside_colab(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", nc.COLAB_CELL + "\nprint('colab', _colab)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "colab False"
    assert list(tmp_path.iterdir()) == []


def test_colab_cell_uses_the_configured_repository():
    cfg = yaml.safe_load((repo_root() / "_config.yml").read_text())
    assert cfg["repository"]["url"] == nc.REPO_URL
    assert nc.REPO_URL in nc.COLAB_CELL


@pytest.mark.parametrize("minor", [4, 5])
def test_ensure_colab_cell_is_surgical_and_idempotent(minor):
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = minor
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("profile = 'cpu'", metadata={"tags": ["parameters"]}),
    ]
    if minor < 5:
        for c in nb.cells:
            c.pop("id", None)
    before = copy.deepcopy(nb)
    assert nc.ensure_colab_cell(nb) is True
    assert nc.is_colab_cell(nb.cells[0]) and nb.cells[1:] == before.cells
    assert nc.ensure_colab_cell(nb) is False
    nbformat.validate(nbformat.from_dict(nb))
    # an older version of the cell is replaced, not stacked
    nb.cells[0]["source"] = "# Colab only: old text"
    assert nc.ensure_colab_cell(nb) is True and len(nb.cells) == 3


def test_add_tag_keeps_existing_tags():
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ""}
    assert nc.add_tag(cell, "remove-cell") and not nc.add_tag(cell, "remove-cell")
    assert cell["metadata"]["tags"] == ["parameters", "remove-cell"]
