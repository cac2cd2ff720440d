"""A Sphinx extension for the book (loaded by ``_config.yml`` -> ``sphinx.local_extensions``).

Papermill copies a notebook's ``parameters`` cell and inserts the values it was given as a new
cell tagged ``injected-parameters``.  The source notebooks tag their ``parameters`` cell
``remove-cell``; this extension adds ``remove-cell`` to the injected cell when Sphinx reads a
chapter, so neither is shown (the provenance footer names the profile and seeds).  The
notebook files themselves are not changed.
"""
from __future__ import annotations

import json

REMOVE_TAGGED = ("injected-parameters",)


def hide_injected_parameters(source: str) -> str:
    """``source`` (a notebook's JSON text) with ``remove-cell`` added to papermill's injected
    cell; any other text is returned unchanged.

    >>> nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}}]}
    >>> json.loads(hide_injected_parameters(json.dumps(nb)))["cells"][0]["metadata"]["tags"]
    ['injected-parameters', 'remove-cell']
    """
    if not source.lstrip().startswith("{") or "injected-parameters" not in source:
        return source
    try:
        nb = json.loads(source)
    except json.JSONDecodeError:
        return source
    changed = False
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if any(t in tags for t in REMOVE_TAGGED) and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
            changed = True
    return json.dumps(nb, ensure_ascii=False) if changed else source


def _source_read(app, docname: str, source: list[str]) -> None:
    if app.env.doc2path(docname).endswith(".ipynb"):
        source[0] = hide_injected_parameters(source[0])


def setup(app):
    app.connect("source-read", _source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
