"""Editions and errata: what changed between editions of the book, from ``data/editions.yml``.

``data/editions.yml`` lists every edition, newest first: ``version`` (``YYYY.MM.DD``),
``date``, ``tag`` (``edition-YYYY.MM.DD``, made by the lead at release), ``commit`` (filled at
release), ``summary`` and ``changes``: each verdict that changed since the edition before,
``{claim, old, new, number, why}``.  :func:`verdict_changes` finds those changes between two
results folders (the old edition's ``book/results`` and the new one's) with the deciding number
before and after; ``python -m minir1.publish.errata --old DIR --new DIR`` prints them as YAML to
paste into the new edition's entry (with its ``why`` written by a person).  Without arguments it
writes ``book/_generated/errata.md``, which ``book/errata.md`` includes, and
``book/_generated/edition.md``, the intro's edition line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import yaml

from ..claims import load_claims
from ..utils import atomic_write_text, repo_root
from .claims import _read_results
from .dashboard import dashboard_rows, deciding_text

_REQUIRED = ("version", "date", "tag", "summary")


def editions_path() -> Path:
    return repo_root() / "data" / "editions.yml"


def load_editions(path: str | os.PathLike | None = None) -> list[dict]:
    """Every edition, newest first, checked: the fields of :data:`_REQUIRED`, a tag
    ``edition-<version>`` and ``changes`` naming known claims and verdicts."""
    from ..results import VERDICTS

    path = Path(path) if path is not None else editions_path()
    data = yaml.safe_load(path.read_text()) or {}
    eds = data.get("editions") or []
    if not eds:
        raise ValueError(f"{path}: needs a non-empty list 'editions'")
    known = {c["id"] for c in load_claims()}
    for i, ed in enumerate(eds):
        missing = [k for k in _REQUIRED if not ed.get(k)]
        if missing:
            raise ValueError(f"{path}: editions[{i}] is missing {', '.join(missing)}")
        if ed["tag"] != f"edition-{ed['version']}":
            raise ValueError(f"{path}: editions[{i}].tag must be 'edition-{ed['version']}'; got {ed['tag']!r}")
        for ch in ed.get("changes") or []:
            if ch.get("claim") not in known:
                raise ValueError(f"{path}: editions[{i}] changes unknown claim {ch.get('claim')!r}")
            if ch.get("old") not in (*VERDICTS, "pending") or ch.get("new") not in (*VERDICTS, "pending"):
                raise ValueError(f"{path}: editions[{i}] change of {ch['claim']!r} needs old and new verdicts")
            if not ch.get("why") or not ch.get("number"):
                raise ValueError(f"{path}: editions[{i}] change of {ch['claim']!r} needs 'number' and 'why'")
    return eds


def current_edition(path: str | os.PathLike | None = None) -> dict:
    """The newest edition (the one the book shows)."""
    return load_editions(path)[0]


def verdict_changes(
    old_dir: str | os.PathLike, new_dir: str | os.PathLike, old_registry: str | os.PathLike | None = None
) -> list[dict]:
    """Every claim whose verdict differs between two results folders, in registry order:
    ``{claim, old, new, number}`` with the deciding number before -> after (``why`` is left
    for a person to write).  ``old_registry``: the old edition's ``data/claims.yml``, whose rules
    name the deciding metrics its results hold (default: today's)."""
    old = {r.id: r for r in dashboard_rows(old_dir, old_registry)}
    out = []
    for r in dashboard_rows(new_dir):
        before = old[r.id]
        if before.verdict == r.verdict:
            continue
        was = deciding_text(before.deciding) if before.deciding else "—"
        now = deciding_text(r.deciding) if r.deciding else "—"
        out.append({"claim": r.id, "old": before.verdict, "new": r.verdict, "number": f"{was} -> {now}"})
    return out


def edition_line(results_dir: str | os.PathLike | None = None) -> str:
    """The edition the reader is reading: its version and date (``data/editions.yml``), the
    commit the book was built from, and what the chapters were executed with."""
    ed = current_edition()
    rdir = Path(results_dir) if results_dir is not None else repo_root() / "book" / "results"
    commits, envs = set(), set()
    for claim in load_claims():
        res = _read_results(rdir, claim["chapter"])
        if res:
            prov = res["provenance"]
            commits.add(prov["git_commit"][:7] + ("-dirty" if prov["git_commit"].endswith("-dirty") else ""))
            v = prov.get("versions", {})
            envs.add(f"python {v.get('python', '?')}, torch {v.get('torch', '?')}, {prov.get('device', '?')}")
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(), capture_output=True, text=True)
        built = head.stdout.strip() or "unknown"
    except OSError:
        built = "unknown"
    return (
        f"**Edition {ed['version']}** (tag `{ed['tag']}`) · built from `{built}` · chapters run from "
        f"{', '.join(f'`{c}`' for c in sorted(commits)) or '—'} with {'; '.join(sorted(envs)) or '—'} · "
        "{doc}`errata`"
    )


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|").replace("$", "\\$")


def errata_markdown(editions: list[dict] | None = None) -> str:
    """One section per edition: its summary and each changed verdict old -> new, the number
    that moved it and why (or a line saying no verdict changed)."""
    eds = load_editions() if editions is None else editions
    shorts = {c["id"]: c.get("short") or c["id"] for c in load_claims()}
    lines = [
        "<!-- Generated by `python -m minir1.publish.errata` from data/editions.yml; do not edit. -->",
        "",
    ]
    for ed in eds:
        commit = f", commit `{ed['commit']}`" if ed.get("commit") else ""
        lines += [f"## Edition {ed['version']}", "", f"{ed['date']}; tag `{ed['tag']}`{commit}.", ""]
        lines += [" ".join(str(ed["summary"]).split()), ""]
        changes = ed.get("changes") or []
        if not changes:
            lines += ["**No verdict changed in this edition.**", ""]
            continue
        lines += ["| Claim | Verdict: old → new | The number that moved it | Why |", "|---|---|---|---|"]
        for ch in changes:
            claim = f"{_cell(shorts.get(ch['claim'], ch['claim']))} (`{ch['claim']}`)"
            verdicts = f"{ch['old']} → **{ch['new']}**"
            lines.append(f"| {claim} | {verdicts} | {_cell(ch['number'])} | {_cell(ch['why'])} |")
        lines.append("")
    return "\n".join(lines)


def write_errata(out_dir: str | os.PathLike = "book/_generated") -> Path:
    """Write ``errata.md`` (the errata page's body) and ``edition.md`` (the intro's edition line)."""
    out = Path(out_dir)
    if not out.is_absolute():
        out = repo_root() / out
    note = "<!-- Generated by `python -m minir1.publish.errata` from data/editions.yml; do not edit. -->\n\n"
    atomic_write_text(out / "edition.md", note + edition_line() + "\n")
    return atomic_write_text(out / "errata.md", errata_markdown())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", help="the previous edition's results folder")
    ap.add_argument("--new", help="the new edition's results folder (default book/results)")
    ap.add_argument("--old-claims", help="the previous edition's data/claims.yml (default: today's)")
    args = ap.parse_args(argv)
    if args.old:
        changes = verdict_changes(args.old, args.new or repo_root() / "book" / "results", args.old_claims)
        for ch in changes:
            ch["why"] = "TODO: say why"
        print(yaml.safe_dump({"changes": changes}, sort_keys=False, allow_unicode=True, width=100), end="")
        return 0
    print(f"wrote {write_errata()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
