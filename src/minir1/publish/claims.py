"""The claims registry (``data/claims.yml``) and the intro's table of verdicts.

The registry holds the article's thesis and one entry per testable claim: ``id``, the
article's words (``claim``), ``topic`` and the ``chapter`` whose results file
(``book/results/<chapter>.json``) carries its verdict.  The table joins the two: one row
per claim, ``pending`` where the chapter has not been run yet.  ``python -m minir1.publish.claims``
writes it as MyST markdown to ``book/_generated/claims.md``, which ``book/intro.md``
includes (the Makefile regenerates it before every build).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import yaml

from ..results import ResultsError, validate
from ..utils import atomic_write_text, repo_root

PENDING = "pending"
_REQUIRED = ("id", "claim", "topic", "chapter")
# sphinx-design badge colour per verdict (the intro's table).
_BADGE = {
    "supported": "success",
    "partly supported": "warning",
    "not supported": "danger",
    "not testable here": "secondary",
    PENDING: "light",
}


def registry_path() -> Path:
    return repo_root() / "data" / "claims.yml"


def load_registry(path: str | os.PathLike | None = None) -> dict:
    """Read and check the whole registry: ``{"source", "thesis", "claims": [...]}``."""
    path = Path(path) if path is not None else registry_path()
    if not path.exists():
        raise FileNotFoundError(f"claims registry not found at {path}")
    reg = yaml.safe_load(path.read_text())
    if not isinstance(reg, dict):
        raise ValueError(f"{path}: expected a mapping with keys 'source', 'thesis', 'claims'")
    for key in ("source", "thesis", "claims"):
        if not reg.get(key):
            raise ValueError(f"{path}: missing top-level field {key!r}")
    seen = set()
    for i, c in enumerate(reg["claims"]):
        missing = [k for k in _REQUIRED if not c.get(k)]
        if missing:
            raise ValueError(f"{path}: claims[{i}] is missing field(s) {', '.join(missing)}")
        if c["id"] in seen:
            raise ValueError(f"{path}: duplicate claim id {c['id']!r}")
        seen.add(c["id"])
    return reg


def load_claims(path: str | os.PathLike | None = None) -> list[dict]:
    """The registry's claims, in book order.

    >>> [c["id"] for c in load_claims()][:2]
    ['cost-final-run', 'cost-fraction-of-compute']
    """
    return load_registry(path)["claims"]


def claims_by_id(path: str | os.PathLike | None = None) -> dict[str, dict]:
    return {c["id"]: c for c in load_claims(path)}


def thesis(path: str | os.PathLike | None = None) -> str:
    """The article's thesis, as quoted in the registry."""
    return load_registry(path)["thesis"]


def _read_results(results_dir: Path, chapter: str) -> dict | None:
    path = results_dir / f"{chapter}.json"
    if not path.exists():
        return None
    try:
        return validate(json.loads(path.read_text()), str(path))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e})") from e


def claims_table(results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per registry claim with its verdict and evidence from the results files.

    ``results_dir`` defaults to the published results, ``book/results``.  A claim whose
    chapter has no results file yet (or whose file has no verdict for it) is ``pending``.
    """
    rdir = Path(results_dir) if results_dir is not None else repo_root() / "book" / "results"
    cache: dict[str, dict | None] = {}
    rows = []
    for c in load_claims():
        if c["chapter"] not in cache:
            cache[c["chapter"]] = _read_results(rdir, c["chapter"])
        res = cache[c["chapter"]]
        found = {x["id"]: x for x in res["claims"]} if res else {}
        hit = found.get(c["id"])
        rows.append(
            {
                "id": c["id"],
                "topic": c["topic"],
                "chapter": c["chapter"],
                "claim": c["claim"],
                "verdict": hit["verdict"] if hit else PENDING,
                "evidence": hit["evidence"]
                if hit
                else ("chapter not run yet" if res is None else "no verdict for this claim in the results file"),
                "profile": res["profile"] if res else "",
            }
        )
    return pd.DataFrame(rows, columns=["id", "topic", "chapter", "claim", "verdict", "evidence", "profile"])


def _cell(text: str) -> str:
    """Make ``text`` safe inside one table cell on one line (``$`` is not math)."""
    return " ".join(str(text).split()).replace("$", "\\$")


def _chapter_docs() -> dict[str, str]:
    """Chapter name -> book document (``chapters/01_cost``) for executed chapters."""
    folder = repo_root() / "book" / "chapters"
    docs = {}
    for p in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        docs[p.stem.split("_", 1)[1]] = f"chapters/{p.stem}"
    return docs


def claims_markdown(table: pd.DataFrame | None = None) -> str:
    """The claims table as a MyST ``list-table`` (fixed column widths so the evidence is
    readable; links to executed chapters; coloured verdicts)."""
    table = claims_table() if table is None else table
    docs = _chapter_docs()
    lines = [
        "```{list-table}",
        ":header-rows: 1",
        ":widths: 16 30 12 42",
        ":class: minir1-claims",
        "",
        "* - Claim",
        "  - The article says",
        "  - Verdict",
        "  - Evidence",
    ]
    for r in table.itertuples():
        chapter = f"{{doc}}`{r.chapter} <{docs[r.chapter]}>`" if r.chapter in docs else r.chapter
        badge = f"{{bdg-{_BADGE.get(r.verdict, 'light')}}}`{r.verdict}`"
        lines += [f"* - {_cell(r.id)} ({chapter})", f"  - {_cell(r.claim)}", f"  - {badge}", f"  - {_cell(r.evidence)}"]
    return "\n".join(lines + ["```"]) + "\n"


def write_claims_markdown(
    path: str | os.PathLike = "book/_generated/claims.md", results_dir: str | os.PathLike | None = None
) -> Path:
    """Atomically write the claims table; a relative ``path`` is taken from the repo root."""
    path = Path(path)
    if not path.is_absolute():
        path = repo_root() / path
    text = (
        "<!-- Generated by `python -m minir1.publish.claims` from data/claims.yml and "
        "book/results/*.json; do not edit. -->\n\n" + claims_markdown(claims_table(results_dir))
    )
    return atomic_write_text(path, text)


def main() -> int:
    path = write_claims_markdown()
    table = claims_table()
    done = int((table["verdict"] != PENDING).sum())
    print(f"wrote {path} ({done}/{len(table)} claims with a verdict)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
