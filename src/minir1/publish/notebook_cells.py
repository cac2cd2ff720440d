"""Cells every chapter notebook shares, and the cell tags the book relies on.

Every ``notebooks/NN_name.ipynb`` starts with :data:`COLAB_CELL`, a code cell tagged
``remove-cell`` (the book never shows it).  It does nothing outside Google Colab; in Colab
("Open in Colab" launch button) it clones the repository, installs the package and makes
the notebook's relative paths work, so the chapter runs as written.  ``tests/test_notebook_cells.py``
checks that every source notebook starts with exactly this cell.

Tags (Jupyter Book 1 / myst-nb):

- ``remove-cell``: not in the HTML at all (this cell; the ``parameters`` cell, whose values
  the provenance footer shows; papermill's ``injected-parameters`` cell, which
  ``book/_ext/minir1_book.py`` removes at build time).
- ``remove-input``: plumbing (imports, writing results): the output stays, the code goes.
- ``hide-input``: code a curious reader may open (a click-to-show toggle).
- no tag: code that *is* the point (the GRPO loss, the cost arithmetic).
"""

from __future__ import annotations

REPO_URL = "https://github.com/minir1-book/minir1"  # placeholder; must match _config.yml

COLAB_TAGS = ["remove-cell"]

COLAB_CELL = f"""\
# Colab only (hidden in the book): clone and install minir1; does nothing anywhere else.
try:
    import google.colab  # noqa: F401
    _colab = True
except ImportError:
    _colab = False
if _colab:
    import os, subprocess, sys
    if not os.path.isdir("/content/minir1"):
        subprocess.run(["git", "clone", "--depth", "1", "{REPO_URL}", "/content/minir1"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/minir1"], check=True)
    sys.path.insert(0, "/content/minir1/src")
    os.environ["MINIR1_ROOT"] = "/content/minir1"
    os.chdir("/content/minir1/notebooks")
    print('minir1 installed. On a GPU runtime set profile = "gpu" in the parameters cell below.')"""

PLUMBING_TAGS = ("remove-input", "hide-input")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def colab_cell(with_id: bool = True) -> dict:
    """A fresh nbformat-4 code cell holding :data:`COLAB_CELL`, tagged ``remove-cell``
    (with a cell ``id`` only for nbformat >= 4.5, where ids are allowed)."""
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": list(COLAB_TAGS)},
        "outputs": [],
        "source": COLAB_CELL.splitlines(keepends=True),
    }
    return {"id": "minir1-colab", **cell} if with_id else cell


def is_colab_cell(cell: dict) -> bool:
    """True when ``cell`` is exactly :data:`COLAB_CELL`, tagged ``remove-cell``."""
    return (
        cell.get("cell_type") == "code"
        and _source(cell).strip() == COLAB_CELL.strip()
        and "remove-cell" in cell.get("metadata", {}).get("tags", [])
    )


def ensure_colab_cell(nb: dict) -> bool:
    """Put :data:`COLAB_CELL` first in notebook dict ``nb`` (replacing an older version of it).

    Returns True when ``nb`` changed.  Touches nothing else in the notebook.
    """
    cells = nb.setdefault("cells", [])
    with_id = (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5)
    if cells and is_colab_cell(cells[0]):
        return False
    if cells and cells[0].get("cell_type") == "code" and _source(cells[0]).startswith("# Colab only"):
        cells[0] = colab_cell(with_id)  # an older version of this cell
    else:
        cells.insert(0, colab_cell(with_id))
    return True


def add_tag(cell: dict, tag: str) -> bool:
    """Add ``tag`` to ``cell``'s metadata tags (keeping the others); True when it changed."""
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if tag in tags:
        return False
    tags.append(tag)
    return True
