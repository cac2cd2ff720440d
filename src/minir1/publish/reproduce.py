"""Same seed, same numbers? Re-execute chapters and compare with the committed results.

``make reproduce [CHAPTER=lab] [PROFILE=cpu] [CACHE=dir]`` runs::

    python -m minir1.publish.reproduce --profile cpu --chapter lab [--cache DIR] [--out DIR]

Each source notebook ``notebooks/NN_name.ipynb`` is executed with papermill into a scratch
folder (default ``.artifacts/reproduce/<UTC timestamp>/``, never ``book/``) with
``MINIR1_RESULTS_DIR=<out>/results`` and ``MINIR1_ARTIFACTS`` set to ``--cache`` or, by
default, a fresh empty folder ``<out>/cache`` (a cold run: every model is retrained).  The
scratch results folder starts with copies of the committed results files of the chapters
*not* being re-executed, because some chapters read others' files (the compute ledger).
The chapters run one at a time, each after those its module's ``AFTER`` names
(:func:`minir1.publish.order.run_order`).

Every metric of the new ``<chapter>.json`` is compared with ``book/results/<chapter>.json``
(:func:`compare_results`); a series is compared entry by entry.  Status per metric:

- ``identical``: every stored number (mean, lo, hi, per-seed values) is the same;
- ``inside``: not identical, but the reproduced mean lies inside the committed interval;
- ``outside``: a plain number that changed, or a mean outside the committed interval;
- ``timing``: not identical, and the metric is a wall-clock measurement (its key names a
  time, a rate per second or an MFU; :data:`TIMING_RE`) that no one expects to repeat on
  another machine or under another load; shown, never a failure;
- ``missing`` (committed, not reproduced) and ``new`` (reproduced only).

A verdict that changed, a metric ``outside`` its interval, or a ``missing`` metric makes the
command exit 1.  Metrics are numbers, ``{mean, lo, hi, per_seed, n, method, unit}`` dicts
(``minir1.stats.Metric``), the older ``{mean, ci95, per_seed}`` form, or series of these.
The table goes to the terminal and to ``<out>/table.md`` and ``<out>/table.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from ..profiles import PROFILES
from ..utils import atomic_write_json, atomic_write_text, repo_root
from .chapters import THREADS, _env, kernel_env, source_notebooks
from .order import DeclarationError, dependencies, run_order

STATUSES = ("identical", "inside", "timing", "new", "outside", "missing")
FAILING = frozenset({"outside", "missing"})

# Wall-clock quantities: seconds, rates per second, milliseconds, MFU, wall-time ratios.
TIMING_RE = re.compile(
    r"(wall|seconds|_per_s(_|$)|ms_per|time_per|_mfu|mfu_|cpu_hours"
    r"|tokens_per_s|flops_per_s)"
)
TIMING_UNITS = frozenset({"s", "ms", "seconds", "tokens/s", "FLOP/s", "flop/s", "s/token"})


# ----------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Value:
    """One comparable metric: ``mean`` with an optional interval and per-seed values."""

    mean: float
    lo: float | None = None
    hi: float | None = None
    per_seed: tuple[float, ...] = ()
    unit: str = ""

    @property
    def has_interval(self) -> bool:
        return self.lo is not None and self.hi is not None

    def numbers(self) -> tuple:
        return (self.mean, self.lo, self.hi, self.per_seed)

    def text(self) -> str:
        if not self.has_interval:
            return f"{self.mean:.6g}"
        return f"{self.mean:.6g} [{self.lo:.6g}, {self.hi:.6g}]"


def _is_metric_dict(d: Mapping) -> bool:
    return "mean" in d and not isinstance(d["mean"], Mapping)


def as_value(m: Any, where: str = "metric") -> Value:
    """A number, a ``{mean, lo, hi, ...}`` dict or an old ``{mean, ci95, ...}`` dict -> :class:`Value`."""
    if isinstance(m, bool) or not isinstance(m, (int, float, Mapping)):
        raise ValueError(f"{where}: a metric must be a number or a dict with 'mean'; got {m!r}")
    if not isinstance(m, Mapping):
        return Value(float(m))
    if not _is_metric_dict(m):
        raise ValueError(f"{where}: a metric dict needs 'mean'; got keys {sorted(m)}")
    if "lo" in m and "hi" in m:
        lo, hi = m["lo"], m["hi"]
    elif "ci95" in m:
        lo, hi = m["ci95"]
    else:
        lo = hi = None
    return Value(
        float(m["mean"]),
        None if lo is None else float(lo),
        None if hi is None else float(hi),
        tuple(float(v) for v in m.get("per_seed", ())),
        str(m.get("unit", "") or ""),
    )


def flatten(metrics: Mapping, prefix: str = "") -> dict[str, Value]:
    """``{"a": 1, "s": {"x": {...}}}`` -> ``{"a": Value, "s/x": Value}`` (series joined by ``/``)."""
    out: dict[str, Value] = {}
    for k, m in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(m, Mapping) and not _is_metric_dict(m):
            out.update(flatten(m, key + "/"))
        else:
            out[key] = as_value(m, key)
    return out


def is_timing(key: str, value: Value | None = None) -> bool:
    """Is ``key`` a wall-clock measurement (by its unit, or by its name: :data:`TIMING_RE`)?"""
    return bool((value is not None and value.unit in TIMING_UNITS) or TIMING_RE.search(key.lower()))


# ----------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Row:
    chapter: str
    metric: str
    committed: str
    reproduced: str
    status: str


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def metric_status(key: str, committed: Value | None, reproduced: Value | None) -> str:
    """The status of one metric (see the module docstring)."""
    if committed is None:
        return "new"
    if reproduced is None:
        return "missing"
    c, r = committed, reproduced
    if (
        _same(c.mean, r.mean)
        and _same(c.lo, r.lo)
        and _same(c.hi, r.hi)
        and len(c.per_seed) == len(r.per_seed)
        and all(map(_same, c.per_seed, r.per_seed))
    ):
        return "identical"
    if is_timing(key, c):
        return "timing"
    if c.has_interval and c.lo <= r.mean <= c.hi:
        return "inside"
    return "outside"


def compare_metrics(committed: Mapping, reproduced: Mapping, chapter: str = "") -> list[Row]:
    """One :class:`Row` per metric (series flattened), in the committed file's order."""
    c, r = flatten(committed), flatten(reproduced)
    keys = list(c) + [k for k in r if k not in c]
    return [
        Row(
            chapter,
            k,
            c[k].text() if k in c else "—",
            r[k].text() if k in r else "—",
            metric_status(k, c.get(k), r.get(k)),
        )
        for k in keys
    ]


def compare_verdicts(committed: list, reproduced: list, chapter: str = "") -> list[Row]:
    """One row per claim id: ``identical`` when the verdict is the same, else ``outside``."""
    c = {x["id"]: x["verdict"] for x in committed}
    r = {x["id"]: x["verdict"] for x in reproduced}
    rows = []
    for cid in list(c) + [k for k in r if k not in c]:
        status = (
            "new" if cid not in c else "missing" if cid not in r else "identical" if c[cid] == r[cid] else "outside"
        )
        rows.append(Row(chapter, f"verdict: {cid}", c.get(cid, "—"), r.get(cid, "—"), status))
    return rows


def compare_results(committed: Mapping, reproduced: Mapping) -> list[Row]:
    """Verdict rows first, then every metric, for one chapter's results dicts."""
    chapter = str(committed.get("chapter", reproduced.get("chapter", "")))
    return compare_verdicts(committed.get("claims", []), reproduced.get("claims", []), chapter) + compare_metrics(
        committed.get("metrics", {}), reproduced.get("metrics", {}), chapter
    )


def failed(rows: list[Row]) -> bool:
    """True when any row is ``outside`` or ``missing`` (a changed verdict is ``outside``)."""
    return any(r.status in FAILING for r in rows)


def counts(rows: list[Row]) -> dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in STATUSES if any(r.status == s for r in rows)}


def markdown_table(rows: list[Row], walls: Mapping[str, tuple[float | None, float]] | None = None) -> str:
    """The comparison as a Markdown table, then wall times ``{chapter: (committed, now)}``."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| chapter | metric | committed | reproduced | status |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.chapter} | {esc(r.metric)} | {esc(r.committed)} | {esc(r.reproduced)} | {r.status} |" for r in rows
    ]
    lines += ["", "Counts: " + ", ".join(f"{k} {v}" for k, v in counts(rows).items())]
    if walls:
        lines += ["", "| chapter | wall time committed (s) | wall time now (s) |", "|---|---|---|"]
        lines += [f"| {ch} | {'—' if c is None else f'{c:.0f}'} | {n:.0f} |" for ch, (c, n) in walls.items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- execution
def default_out(root: Path | None = None) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return (Path(root) if root else repo_root()) / ".artifacts" / "reproduce" / stamp


def _check_out(out: Path, root: Path) -> None:
    book = (root / "book").resolve()
    if out.resolve() == book or book in out.resolve().parents:
        raise ValueError(f"--out must not be inside book/ (the committed book); got {out}")


def execute(
    names: list[str],
    parameters: Mapping[str, Any],
    out: Path,
    cache: Path,
    committed_dir: Path,
    root: Path | None = None,
) -> dict[str, float]:
    """Execute chapters ``names`` with papermill ``parameters`` (e.g. ``{"profile": "cpu"}``,
    resolved by each notebook) into ``out/chapters``; return wall seconds per chapter.

    Results go to ``out/results`` (seeded with the committed files of the other chapters),
    models to ``cache``.  Raises ``RuntimeError`` naming the chapter when one fails.
    """
    import papermill as pm
    from tqdm.auto import tqdm

    root = Path(root) if root is not None else repo_root()
    _check_out(out, root)
    results, chapters = out / "results", out / "chapters"
    for d in (results, chapters, cache):
        d.mkdir(parents=True, exist_ok=True)
    for p in committed_dir.glob("*.json"):
        if p.stem not in names:
            shutil.copy2(p, results / p.name)
    expected = {n: _committed_wall(committed_dir / f"{n}.json") or 60.0 for n in names}
    walls: dict[str, float] = {}
    srcs = source_notebooks(root)
    with (
        _env(MINIR1_RESULTS_DIR=str(results.resolve()), MINIR1_ARTIFACTS=str(cache.resolve()), **kernel_env(THREADS)),
        tqdm(
            total=round(sum(expected.values())),
            unit="s",
            desc="book (ETA from committed wall times)",
            file=sys.stdout,
            dynamic_ncols=True,
        ) as bar,
    ):
        for i, name in enumerate(names, 1):
            bar.set_postfix_str(f"chapter {i}/{len(names)}: {name}")
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(
                    str(srcs[name]),
                    str(chapters / srcs[name].name),
                    parameters=dict(parameters),
                    kernel_name="python3",
                    cwd=str(srcs[name].parent),
                    progress_bar={"desc": name, "leave": False},
                )
            except Exception as e:  # papermill's error names the failing cell
                raise RuntimeError(f"chapter {name!r} failed to execute: {e}") from e
            walls[name] = time.perf_counter() - t0
            bar.update(round(expected[name]))
            tqdm.write(f"    {name}: {walls[name]:.0f} s (committed run: {expected[name]:.0f} s)", file=sys.stdout)
    return walls


def _committed_wall(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text())["provenance"]["wall_seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def compare_dirs(names: list[str], committed_dir: Path, reproduced_dir: Path) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        c = json.loads((committed_dir / f"{name}.json").read_text())
        rp = reproduced_dir / f"{name}.json"
        if not rp.exists():
            rows.append(Row(name, "(results file)", f"{name}.json", "not written", "missing"))
            continue
        rows += compare_results(c, json.loads(rp.read_text()))
    return rows


# ----------------------------------------------------------------------------- CLI
def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m minir1.publish.reproduce", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    p.add_argument("--chapter", default="", help="one chapter, e.g. 'lab' (default: every chapter)")
    p.add_argument("--cache", default="", help="artifact cache to use (default: a fresh empty one under --out)")
    p.add_argument("--out", default="", help="scratch folder (default .artifacts/reproduce/<timestamp>)")
    p.add_argument("--committed", default="", help="committed results folder (default book/results)")
    p.add_argument(
        "--compare-only", action="store_true", help="do not execute; compare <out>/results with the committed files"
    )
    return p.parse_args(argv)


def _plan(a: argparse.Namespace, root: Path) -> tuple[list[str], Path, Path]:
    """Check the command line and the committed results: ``(chapters, committed_dir, out)``.

    Raises ``ValueError`` with the message to print (bad profile or chapter, no committed
    results, results recorded with another profile, ``--out`` inside ``book/``).
    """
    chapters = list(source_notebooks(root))
    if a.profile not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(map(repr, PROFILES))}; got {a.profile!r}")
    if a.chapter and a.chapter not in chapters:
        raise ValueError(f"--chapter must be one of {', '.join(map(repr, chapters))}; got {a.chapter!r}")
    names = [a.chapter] if a.chapter else chapters
    committed_dir = Path(a.committed) if a.committed else root / "book" / "results"
    out = Path(a.out) if a.out else default_out(root)
    for n in names:
        path = committed_dir / f"{n}.json"
        if not path.exists():
            raise ValueError(f"no committed results for {n!r} at {path}")
        prof = json.loads(path.read_text()).get("profile")
        if prof != a.profile:
            raise ValueError(
                f"{path} was recorded with profile {prof!r}; reproduce it with --profile {prof} (got {a.profile!r})"
            )
    _check_out(out, root)
    return names, committed_dir, out


def _write_tables(
    out: Path, profile: str, names: list[str], rows: list[Row], walls: dict[str, float], table: str
) -> None:
    """``<out>/table.md`` (the Markdown ``table``) and ``<out>/table.json`` (every row)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "table.md", table)
    atomic_write_json(
        out / "table.json",
        {
            "profile": profile,
            "chapters": names,
            "counts": counts(rows),
            "failed": failed(rows),
            "wall_seconds": walls,
            "rows": [asdict(r) for r in rows],
        },
    )


def _verdict(rows: list[Row]) -> int:
    """Print the outcome; 1 when a metric or verdict changed beyond its committed interval."""
    if failed(rows):
        bad = [r for r in rows if r.status in FAILING]
        print(f"FAILED: {len(bad)} metric(s) or verdict(s) changed beyond their committed interval:", file=sys.stderr)
        for r in bad[:20]:
            print(f"  {r.chapter}: {r.metric}: {r.committed} -> {r.reproduced} ({r.status})", file=sys.stderr)
        return 1
    print("reproduced: every verdict the same, every metric identical or inside its committed interval")
    return 0


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    root = repo_root()
    # Stage 1: what to reproduce, and where.
    try:
        names, committed_dir, out = _plan(a, root)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cache = Path(a.cache) if a.cache else out / "cache"
    print(
        f"==> reproducing {', '.join(names)} (profile {a.profile}) into {out}\n"
        f"    artifact cache: {cache}{'' if a.cache else ' (fresh: a cold run)'}",
        flush=True,
    )
    # Stage 2: execute, each chapter after those its module's AFTER names.
    walls: dict[str, float] = {}
    if not a.compare_only:
        try:
            order = run_order(dependencies(names, root))
        except DeclarationError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        try:
            walls = execute(order, {"profile": a.profile}, out, cache, committed_dir, root)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
    # Stage 3: compare with the committed results, write and print the table.
    rows = compare_dirs(names, committed_dir, out / "results")
    table = markdown_table(rows, {n: (_committed_wall(committed_dir / f"{n}.json"), walls[n]) for n in walls})
    _write_tables(out, a.profile, names, rows, walls, table)
    print(table)
    print(f"table: {out / 'table.md'}")
    return _verdict(rows)


if __name__ == "__main__":
    raise SystemExit(main())
