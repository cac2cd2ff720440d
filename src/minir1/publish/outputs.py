"""What an executed chapter's outputs must never show a reader, found by reading the notebook files.

An executed chapter (``book/chapters/NN_name.ipynb``) is what the book prints.  Five kinds of
output there are defects of the code that produced them, never part of a finding:

- ``warning``: a Python warning (``RuntimeWarning: Mean of empty slice``, ``FutureWarning: ...``);
- ``error``: a traceback or an ``error`` output (the cell failed, or printed an exception);
- ``path``: an absolute path of the machine that executed it (``/work/...``, ``/home/...``,
  ``site-packages``): meaningless to a reader, and it leaks the machine;
- ``empty table``: an HTML table with no body rows, or a DataFrame repr with 0 rows;
- ``noise``: loader and progress output (``Loading weights``, ``Writing model shards``, tqdm bars,
  progress widgets).

:func:`scan_notebook` lists the problems of one notebook and :func:`scan_folder` those of every
notebook in a folder (``tests/test_published_chapters.py`` runs it on ``book/chapters``)::

    python -m minir1.publish.outputs book/chapters

Every cell is read, hidden ones too: a hidden cell's outputs are still in the file a reader may
download or open in Colab.  Images are not read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

KINDS = ("warning", "error", "path", "empty table", "noise")

_PATTERNS: dict[str, re.Pattern] = {
    "warning": re.compile(r"\b[A-Z]\w*Warning\b(:|\))|\bwarnings\.warn\("),
    "error": re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", re.MULTILINE),
    "path": re.compile(
        r"(?<![\w./~-])(/(work|home|tmp|root|Users|private|content|mnt|opt|srv|var|usr)/[^\s'\"<>)]*)"
        r"|site-packages|dist-packages|[A-Z]:\\\\?Users"
    ),
    "noise": re.compile(
        r"Loading weights|Writing model shards|Loading checkpoint shards|Fetching \d+ files"
        r"|\d+%\|[^|\n]*\|\s*\d+/\d+\s*\[|\d(\.\d+)?\s*(it|s|step|steps|chapter)/(s|it|step)\]"
    ),
}
_EMPTY_FRAME = re.compile(r"^Empty DataFrame$|\[0 rows x \d+ columns\]", re.MULTILINE)
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")
_WIDGET = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Problem:
    """One defect in one output: where it is, its kind (one of :data:`KINDS`) and the offending text."""

    notebook: str
    cell: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.notebook} cell {self.cell} [{self.kind}]: {self.excerpt}"


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


def _empty_html_table(html: str) -> bool:
    """True when some ``<table>`` in ``html`` has no data row (a header alone is an empty table)."""
    for table in re.findall(r"<table\b.*?</table>", html, flags=re.DOTALL | re.IGNORECASE):
        body = re.search(r"<tbody\b.*?</tbody>", table, flags=re.DOTALL | re.IGNORECASE)
        rows = re.findall(r"<tr\b", body.group(0) if body else table, flags=re.IGNORECASE)
        if len(rows) <= (0 if body else 1):  # without a <tbody>, the first row is the header
            return True
    return False


def _output_texts(out: dict) -> list[tuple[str, str]]:
    """``(mime, text)`` of every textual part of one output (streams as ``stream/<name>``)."""
    kind = out.get("output_type")
    if kind == "stream":
        return [(f"stream/{out.get('name', 'stdout')}", _text(out.get("text", "")))]
    if kind == "error":
        return [("error", "\n".join([f"{out.get('ename')}: {out.get('evalue')}", *map(str, out.get("traceback", []))]))]
    data = out.get("data", {})
    return [(mime, _text(v)) for mime, v in data.items() if mime.endswith(_TEXT_MIMES)]


def _excerpt(text: str, match: re.Match | None) -> str:
    """The line holding ``match`` (or the text's start), ANSI colours removed, at most 160 characters."""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", text)
    if match is None:
        return clean.strip()[:160]
    start = clean.rfind("\n", 0, match.start()) + 1
    end = clean.find("\n", match.end())
    return clean[start : end if end >= 0 else None].strip().replace("\r", " ")[:160]


def output_problems(out: dict) -> list[tuple[str, str]]:
    """``(kind, excerpt)`` for each kind of defect in one notebook output (at most one per kind)."""
    found: dict[str, str] = {}
    if out.get("output_type") == "error":
        found["error"] = f"{out.get('ename')}: {out.get('evalue')}"[:160]
    if _WIDGET in out.get("data", {}):
        found["noise"] = "a progress widget (ipywidgets)"
    for mime, text in _output_texts(out):
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        for kind, pattern in _PATTERNS.items():
            m = pattern.search(text)
            if m and kind not in found:
                found[kind] = _excerpt(text, m)
        if "empty table" not in found:
            if mime.endswith("text/html") and _empty_html_table(text):
                found["empty table"] = "an HTML table with no body rows"
            elif mime.endswith("text/plain") and (m := _EMPTY_FRAME.search(text)):
                found["empty table"] = _excerpt(text, m)
    return [(k, found[k]) for k in KINDS if k in found]


def scan_notebook(path: str | Path) -> list[Problem]:
    """Every problem in the outputs of notebook ``path``, in cell order: one per kind and cell
    (a tqdm bar is hundreds of outputs of one cell)."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems, seen = [], set()
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            for kind, excerpt in output_problems(out):
                if (i, kind) not in seen:
                    seen.add((i, kind))
                    problems.append(Problem(path.name, i, kind, excerpt))
    return problems


def scan_folder(folder: str | Path) -> list[Problem]:
    """Every problem in every ``*.ipynb`` directly inside ``folder`` (sorted by file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder of notebooks: {folder}")
    return [p for nb in sorted(folder.glob("*.ipynb")) for p in scan_notebook(nb)]


def main(argv: list[str] | None = None) -> int:
    """``python -m minir1.publish.outputs [FOLDER]``: print every problem; exit 1 if there is one."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="book/chapters", help="a folder of executed notebooks")
    args = ap.parse_args(argv)
    problems = scan_folder(args.folder)
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s) in {args.folder}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
