"""The thesis chapter: did R1 match the American models, on second-rate chips, and is it cheap?

The chapter (``notebooks/07_thesis.ipynb``) tests four sentences of the article with
published figures (``data/published_*.csv``) and the other chapters' results files, and
lists the claims it cannot test (``data/not_testable.csv``):

- ``thesis-match``: every benchmark of R1's own Table 4 with an o1-1217 entry, with the sampling
  interval each benchmark's size puts on every score (:mod:`minir1.benchmarks`), each judged by
  a non-inferiority test against a margin declared in ``data/claims.yml`` (δ = 5 points), under
  every pairing, margin and benchmark subset the rule's variants name; and a simulation of how
  often a truly worse model "matches or exceeds" a better one on 30 vs 500 problems.
- ``thesis-chips``: H800 vs H100 from the spec sheets, and V3's expert-parallel traffic per
  token and layer against its compute (:mod:`minir1.interconnect`).
- ``thesis-inference-cost``: dollars per solved problem at launch prices; FLOPs per solved
  problem of our own base, RL and distilled models (read from ``distillation.json``), on
  answer-level accuracy (``<model>_pass_at_1_lenient``; strict accuracy is a variant), each
  ratio with its interval (:func:`minir1.benchmarks.solved_cost_ratio`).
- ``thesis-replicate``: the published replications classified by the criteria recorded per row
  under the protocol in ``data/README.md``, and this book's own bill, the ledger's one figure
  (:func:`minir1.ledger.book_bill`).

Choices, stated rather than hidden:

- The simulation's two models have the true accuracies of two of *our* models (the
  distillation chapter's RL teacher and its distilled nano student, read from its results
  file), but their per-problem correctness is generated (:func:`minir1.benchmarks.population`):
  no chapter publishes per-problem vectors yet.  Both ends of the unknown correlation are run.
- o1's reasoning-token count is not published; o1's cost per answer assumes R1's count.
- Upstream results files are read as JSON from ``cfg.upstream`` (the committed published
  files by default); the metric names read are :data:`UPSTREAM`.  A name missing upstream
  stops a real run; a smoke or dry run falls back to the strict metric, or to a stand-in
  it lists in ``extra["missing_upstream"]``, because other chapters may not have published it yet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Mapping, Sequence

import numpy as np

from .. import benchmarks, gpu_estimate, interconnect, ledger, rules, stats
from ..cost import load_model_config, load_published_costs
from ..cost_data import (
    load_benchmarks,
    load_csv,
    load_hardware,
    load_not_testable,
    load_prices,
    load_replications,
)
from ..profiles import check_profile
from ..results import ChapterResult
from ..stats import Metric, as_metric
from ..utils import repo_root

# The chapters whose results must be published before this one runs (read by the chapter runner):
# every other chapter, whose results it reads (the ledger).
AFTER: tuple[str, ...] = ("cost", "lab", "rl", "distillation", "censorship", "engineering")

CLAIMS = ("thesis-match", "thesis-chips", "thesis-inference-cost", "thesis-replicate")

# Every upstream metric this chapter reads ({chapter: names}); "<m>" is each of cfg.miniature.
UPSTREAM: dict[str, tuple[str, ...]] = {
    "distillation": (
        "<m>_pass_at_1_lenient",
        "<m>_pass_at_1",
        "<m>_flops_per_answer",
        "<m>_tokens_per_answer",
    ),
    "engineering": ("llama405b_kv_bytes_per_token", "v3_kv_bytes_per_token"),
}

# The benchmark subsets thesis-match's variants name (data/claims.yml).
SUBSETS: dict[str, tuple[str, ...]] = {
    "first_five": ("aime2024", "math500", "gpqa_diamond", "mmlu", "swe_verified"),
    "no_simpleqa": ("aime2024", "math500", "gpqa_diamond", "mmlu", "drop", "swe_verified", "aider_polyglot"),
    "math_science": ("aime2024", "math500", "gpqa_diamond"),
}


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SimConfig:
    """The "worse model matches or exceeds" simulation."""

    ns: tuple[int, ...] = (30, 198, 500)  # benchmark sizes: AIME, GPQA Diamond, MATH-500
    gaps: tuple[float, ...] = (0.01, 0.03, 0.05, 0.10)  # true accuracy gaps swept
    pool: int = 100_000  # problems in the generated pool
    draws: int = 4000  # benchmarks drawn per seed
    better: tuple[str, str] = ("distillation", "distill_pass_at_1_lenient/nano")  # our better model
    worse: tuple[str, str] = ("distillation", "teacher_pass_at_1_lenient")  # our worse model

    def __post_init__(self):
        for name in ("pool", "draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")
        if not self.ns or min(self.ns) < 1:
            raise ValueError(f"ns must be benchmark sizes >= 1; got {self.ns!r}")
        if not all(0 < g < 1 for g in self.gaps):
            raise ValueError(f"gaps must lie in (0, 1); got {self.gaps!r}")


@dataclass(frozen=True)
class ThesisConfig:
    # Every benchmark of R1's Table 4 with an o1-1217 entry and a published size (thesis-match).
    benchmarks: tuple[str, ...] = (
        "aime2024", "math500", "gpqa_diamond", "mmlu", "drop", "simpleqa", "swe_verified", "aider_polyglot",
    )  # fmt: skip
    unsized: tuple[str, ...] = ("codeforces_percentile", "livecodebench")  # o1 entry, no size: shown, not counted
    rival: str = "o1-1217"  # the OpenAI model R1's table compares with
    pairing: str = "independent"  # the wider interval (benchmarks.difference); "nested" is a variant
    margin: float = 0.05  # δ of thesis-match, declared in data/claims.yml before the run
    margin_tight: float = 0.03  # the variant's tighter δ
    sim: SimConfig = field(default_factory=SimConfig)
    seq_len: int = 4096  # V3 pre-training context (report §4.2)
    weeks: float = 8.0  # "a matter of weeks": within 8 weeks of R1 (4 and 12 are variants)
    upstream: str = "book/results"  # results files read (relative to the repo)
    miniature: tuple[str, ...] = ("big_base", "teacher", "distill/nano", "distill/pico")
    dry_run: bool = False  # tiny simulation, same code path
    tolerate_missing: bool = False  # smoke and dry runs: a missing upstream metric gets a stand-in

    def __post_init__(self):
        if self.pairing not in benchmarks.PAIRINGS:
            raise ValueError(f"pairing must be one of {benchmarks.PAIRINGS}; got {self.pairing!r}")
        if self.weeks <= 0 or self.seq_len < 1:
            raise ValueError(f"weeks and seq_len must be > 0; got {self.weeks!r}, {self.seq_len!r}")
        if not 0 < self.margin_tight <= self.margin < 1:
            raise ValueError(f"need 0 < margin_tight <= margin < 1; got {self.margin_tight!r}, {self.margin!r}")


PROFILES: dict[str, ThesisConfig] = {
    "smoke": ThesisConfig(sim=SimConfig(ns=(30, 500), gaps=(0.03, 0.10), pool=5000, draws=300), tolerate_missing=True),
    "cpu": ThesisConfig(),
    "gpu": ThesisConfig(),  # arithmetic and resampling: nothing to gain from a GPU
}


def config(profile: str) -> ThesisConfig:
    """The chapter's configuration for ``profile`` (``smoke``, ``cpu`` or ``gpu``)."""
    return PROFILES[check_profile(profile)]


def estimate_gpu(cfg: ThesisConfig, n_seeds: int = 3) -> dict:
    """:func:`run`'s time on one GPU by :mod:`minir1.gpu_estimate`: arithmetic and resampling, no model."""
    return gpu_estimate.estimate("thesis", [])


def dry_run(cfg: ThesisConfig) -> ThesisConfig:
    """``cfg`` with a tiny simulation (tests call it)."""
    return replace(
        cfg,
        dry_run=True,
        tolerate_missing=True,
        sim=replace(cfg.sim, pool=500, draws=20, ns=cfg.sim.ns[:2], gaps=cfg.sim.gaps[:1]),
    )


# ----------------------------------------------------------------------------- data
_csv = load_csv  # every data file's rows, checked for a source and a primary/secondary mark


def upstream_metrics(cfg: ThesisConfig, chapter: str) -> dict:
    """A results file's metrics, read as JSON; error if missing."""
    path = repo_root() / cfg.upstream / f"{chapter}.json"
    if not path.exists():
        raise FileNotFoundError(f"the thesis chapter reads {path} (run the {chapter} chapter first)")
    return json.loads(path.read_text())["metrics"]


def lookup(metrics: Mapping, ref: str) -> Any:
    """The node at ``ref`` (``key[/series...]``) of a metrics dict; KeyError naming it if missing."""
    node: Any = metrics
    for part in ref.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"upstream metric {ref!r} not found (missing {part!r})")
        node = node[part]
    return node


def point(metrics: Mapping, ref: str) -> float:
    """The point value at ``ref`` of a metrics dict (a Metric dict or a number)."""
    node = lookup(metrics, ref)
    return float(node["mean"]) if isinstance(node, Mapping) else float(node)


def _metric(metrics: Mapping, ref: str, cfg: ThesisConfig, missing: list, fallback: str | None = None) -> Metric:
    """An upstream metric as a :class:`Metric`; in a smoke or dry run only, a missing one falls back to
    ``fallback`` (the strict metric), else to a stand-in 0.5, and is listed in ``missing``."""
    try:
        return as_metric(lookup(metrics, ref))
    except KeyError:
        if not cfg.tolerate_missing:
            raise
    missing.append(ref)
    if fallback is not None:
        try:
            return as_metric(lookup(metrics, fallback))
        except KeyError:
            pass
    return Metric(0.5, 0.45, 0.55, per_seed=(0.5, 0.5), n=2, method="seeds", unit="rate")


# ----------------------------------------------------------------------------- thesis-match
def _calls(diffs: Mapping[str, Metric], margin: float) -> dict[str, str]:
    return {b: benchmarks.noninferiority(d, margin) for b, d in diffs.items()}


def match_metrics(cfg: ThesisConfig) -> tuple[dict, dict]:
    """Per-benchmark intervals of R1 − o1 and the counts of "matches / trails / inconclusive"
    under the rule (δ, independent pairing) and every variant the rule names; and the calls."""
    bench = load_benchmarks()
    score, diff, nested = {}, {}, {}
    for b in cfg.benchmarks:
        n, s = bench[b]["n"], bench[b]["scores"]
        score[b] = {m: benchmarks.score_interval(s[m], n) for m in ("r1", cfg.rival)}
        diff[b] = benchmarks.difference(s["r1"], s[cfg.rival], n, cfg.pairing)
        nested[b] = benchmarks.difference(s["r1"], s[cfg.rival], n, "nested")
    calls = {
        "primary": _calls(diff, cfg.margin),
        "nested": _calls(nested, cfg.margin),
        "margin_3pp": _calls(diff, cfg.margin_tight),
    }
    counts = {k: benchmarks.count_calls(c.values()) for k, c in calls.items()}
    for name, subset in SUBSETS.items():
        counts[name] = benchmarks.count_calls(calls["primary"][b] for b in subset if b in calls["primary"])
    counts["unsized_inconclusive"] = benchmarks.count_calls(
        [*calls["primary"].values()] + ["inconclusive"] * len(cfg.unsized)
    )
    six = [b for b in SUBSETS["first_five"] + ("simpleqa",) if b in nested]
    old = [benchmarks.compare(nested[b]) for b in six]  # the first edition's rule: trails when hi < 0
    primary = counts.pop("primary")
    aime = score["aime2024"]["r1"]
    metrics = {
        "published_score": score,
        "r1_minus_rival": diff,
        "r1_minus_rival_nested": nested,
        "match_counts": counts,
        **{f"match_{k}": v for k, v in primary.items()},
        "match_margin": cfg.margin,
        "match_zero_margin_nested_with_simpleqa": {"n_trail": float(old.count("trails")),
                                                   "n_not_trailing": float(len(old) - old.count("trails"))},
        "aime_halfwidth": (aime.hi - aime.lo) / 2,
    }  # fmt: skip
    unsized = {b: {m: bench[b]["scores"][m] for m in ("r1", cfg.rival)} for b in cfg.unsized}
    return metrics, {"match_calls": calls, "match_unsized": unsized}


def _wins(better: float, worse: float, n: int, shared: float, sim: SimConfig, seeds) -> stats.Metric:
    rows = []
    for s in seeds:  # (S, D): one row of draws per seed, a fresh pool per seed
        vb, vw = benchmarks.population(better, worse, sim.pool, shared=shared, seed=1000 + s)
        rng = np.random.default_rng(2000 + s)
        idx = rng.integers(0, sim.pool, size=(sim.draws, n))
        rows.append((vw[idx].mean(1) >= vb[idx].mean(1) - 1e-12).astype(float))
    return stats.rate(np.stack(rows))


def simulation_metrics(cfg: ThesisConfig, seeds, missing: list) -> dict:
    dist = upstream_metrics(cfg, cfg.sim.better[0])
    strict = {ref: ref.replace("_lenient", "") for ref in (cfg.sim.better[1], cfg.sim.worse[1])}
    better = _metric(dist, cfg.sim.better[1], cfg, missing, strict[cfg.sim.better[1]]).mean
    up = upstream_metrics(cfg, cfg.sim.worse[0])
    worse = _metric(up, cfg.sim.worse[1], cfg, missing, strict[cfg.sim.worse[1]]).mean
    better, worse = max(better, worse), min(better, worse)
    pairs = {"independent": 0.0, "nested": 1.0}
    sweep = {
        p: {
            f"{round(100 * g)}pp": {str(n): _wins(better, better - g, n, sh, cfg.sim, seeds) for n in cfg.sim.ns}
            for g in cfg.sim.gaps
        }
        for p, sh in pairs.items()
    }
    ours = {p: {str(n): _wins(better, worse, n, sh, cfg.sim, seeds) for n in cfg.sim.ns} for p, sh in pairs.items()}
    return {
        "sim_match_or_exceed": sweep,
        "sim_ours": ours,
        "sim_ours_better_acc": better,
        "sim_ours_worse_acc": worse,
        "sim_ours_gap": better - worse,
    }


# ----------------------------------------------------------------------------- thesis-chips
def chips_metrics(cfg: ThesisConfig) -> dict:
    """H800 vs H100 from the spec sheets, and V3's expert traffic against its compute."""
    return interconnect.chips_metrics(load_hardware(), load_published_costs(), load_model_config("deepseek-v3"),
                                      cfg.seq_len)  # fmt: skip


# ----------------------------------------------------------------------------- thesis-inference-cost
def _mini(dist: Mapping, cfg: ThesisConfig, key: str, missing: list, strict_key: str | None = None) -> dict:
    """``{model: Metric}`` of ``<model>_<key>`` (``distill_<key>/nano`` for ``distill/nano``)."""

    def ref(m, k):
        return m.replace("/", f"_{k}/", 1) if "/" in m else f"{m}_{k}"

    return {
        m.replace("/", "_"): _metric(dist, ref(m, key), cfg, missing, ref(m, strict_key) if strict_key else None)
        for m in cfg.miniature
    }


def inference_metrics(cfg: ThesisConfig, missing: list) -> dict:
    price, bench = load_prices(), load_benchmarks()
    toks = price[("r1", "aime_tokens_per_question")]
    aime = bench["aime2024"]["scores"]
    per_answer = {m: price[(m, "output")] * toks / 1e6 for m in ("r1", "o1")}
    per_solved = {"r1": per_answer["r1"] / aime["r1"], "o1": per_answer["o1"] / aime[cfg.rival]}
    dist, eng = upstream_metrics(cfg, "distillation"), upstream_metrics(cfg, "engineering")
    fpa, tpa = _mini(dist, cfg, "flops_per_answer", missing), _mini(dist, cfg, "tokens_per_answer", missing)
    acc = _mini(dist, cfg, "pass_at_1_lenient", missing, "pass_at_1")
    strict = _mini(dist, cfg, "pass_at_1", missing)

    def solved(a, b, accs=acc):
        return benchmarks.solved_cost_ratio(fpa[a], accs[a], fpa[b], accs[b])

    def per_answer_ratio(a, b):
        return benchmarks.solved_cost_ratio(fpa[a], Metric(1, 1, 1), fpa[b], Metric(1, 1, 1))

    fps = {m: fpa[m].mean / acc[m].mean for m in fpa if acc[m].mean > 0}
    return {
        "usd_per_answer": per_answer,
        "usd_per_solved": per_solved,
        "usd_per_solved_ratio_o1_over_r1": per_solved["o1"] / per_solved["r1"],
        "r1_aime_tokens_per_question": toks,
        "mini_tokens_per_answer": tpa,
        "mini_flops_per_answer": fpa,
        "mini_pass_at_1": acc,
        "mini_pass_at_1_strict": strict,
        "mini_flops_per_solved": fps,
        "mini_answer_cost_ratio": per_answer_ratio("teacher", "big_base"),
        "mini_solved_cost_ratio": solved("teacher", "big_base"),
        "mini_solved_cost_ratio_strict": solved("teacher", "big_base", strict),
        "mini_distill_answer_cost_ratio": per_answer_ratio("distill_nano", "big_base"),
        "mini_distill_solved_cost_ratio": solved("distill_nano", "big_base"),
        "kv_bytes_ratio_llama405b_over_v3": _metric(eng, "llama405b_kv_bytes_per_token", cfg, missing).mean
        / _metric(eng, "v3_kv_bytes_per_token", cfg, missing).mean,
    }


# ----------------------------------------------------------------------------- thesis-replicate
def _within(reps: list[dict], r1_day: date, weeks: float) -> list[dict]:
    """Projects whose *result* (not start) came out within ``weeks`` of R1."""
    return [
        r for r in reps
        if r["class"] != "original" and r["result_date"]
        and 0 <= (date.fromisoformat(r["result_date"]) - r1_day).days <= 7 * weeks
    ]  # fmt: skip


def replication_metrics(cfg: ThesisConfig) -> dict:
    reps = load_replications()
    r1_day = date.fromisoformat(next(r["date"] for r in reps if r["class"] == "original"))
    classes = ("full-r1", "r1-zero", "rl-on-distill", "sft-distill")
    by_window = {
        str(int(w)): {c.replace("-", "_"): float(sum(r["class"] == c for r in _within(reps, r1_day, w)))
                      for c in classes}
        for w in sorted({4.0, cfg.weeks, 12.0})
    }  # fmt: skip
    main = by_window[str(int(cfg.weeks))]
    within = _within(reps, r1_day, cfg.weeks)
    costs = [float(r["cost_usd"]) for r in within if r["class"] == "r1-zero" and r["cost_usd"]]
    book = ledger.book_bill(repo_root() / cfg.upstream)
    return {
        "replications_n": float(sum(r["class"] != "original" for r in reps)),
        "replications_weeks": cfg.weeks,
        "replications_by_window": by_window,
        **{f"replications_{c}_within_weeks": v for c, v in main.items()},
        "replications_r1_zero_or_rl_on_distill_within_weeks": main["r1_zero"] + main["rl_on_distill"],
        "replication_cheapest_r1_zero_usd": min(costs) if costs else 0.0,
        "book_cpu_hours": book["cpu_hours"],
        "book_gpu_usd": book["usd"],
        "book_flops": book["flops"],
        "book_n_results_files": book["n_files"],
        "book_n_models": book["n_models"],
    }


def run(cfg: ThesisConfig, seeds: Sequence[int] = (0, 1, 2)) -> ChapterResult:
    """Every metric of the chapter (arithmetic on ``data/`` and results files, and resampling),
    and its verdicts; a dry run resamples with the first seed only."""
    t0 = time.perf_counter()
    seeds = list(seeds)[:1] if cfg.dry_run else list(seeds)
    missing: list[str] = []
    match, match_extra = match_metrics(cfg)
    metrics = {
        **match,
        **simulation_metrics(cfg, seeds, missing),
        **chips_metrics(cfg),
        **inference_metrics(cfg, missing),
        **replication_metrics(cfg),
    }
    extra = {
        **match_extra,
        "not_testable": load_not_testable(),
        "replications": load_replications(),
        "upstream_read": UPSTREAM,
        "missing_upstream": sorted(set(missing)),
    }
    return ChapterResult(
        metrics=metrics, config=cfg, claims=verdicts(metrics, cfg), extra=extra, flops=0.0,
        wall_seconds=time.perf_counter() - t0,
    )  # fmt: skip


# ----------------------------------------------------------------------------- verdicts
def _f(m) -> str:
    return stats.fmt(m)


def _evidence_match(m: Mapping) -> str:
    d = {b: as_metric(x) for b, x in m["r1_minus_rival"].items()}
    calls = {b: benchmarks.noninferiority(x, float(m["match_margin"])) for b, x in d.items()}
    parts = [f"{b} {_f(x)} ({calls[b]})" for b, x in d.items()]
    sim, old = m["sim_ours"]["independent"], m["match_zero_margin_nested_with_simpleqa"]
    n_lo, n_hi = min(sim, key=int), max(sim, key=int)
    return (
        f"On DeepSeek's own table (self-reported; o1's figures from OpenAI), R1 − o1-1217 with its 95% sampling "
        f"interval, against a margin of {100 * m['match_margin']:.0f} points declared before the run: "
        f"{'; '.join(parts)}. R1 matches or exceeds on {m['match_n_match']:.0f}, trails on {m['match_n_trail']:.0f}, "
        f"and {m['match_n_inconclusive']:.0f} of {m['match_n_benchmarks']:.0f} cannot tell (AIME's interval is "
        f"±{100 * m['aime_halfwidth']:.0f} points). Codeforces and LiveCodeBench publish no problem count and are "
        f"not counted. Under the first edition's rule (no margin, nested pairing) with SimpleQA added, R1 trails on "
        f"{old['n_trail']:.0f} and does not on {old['n_not_trailing']:.0f}. Simulated: a model "
        f"{100 * m['sim_ours_gap']:.1f} points worse matches or exceeds the better one in {_f(sim[n_lo])} of "
        f"{n_lo}-problem benchmarks and {_f(sim[n_hi])} of {n_hi}-problem ones."
    )


def _evidence_chips(m: Mapping) -> str:
    return (
        f"H800/H100: dense BF16 compute ×{m['h800_compute_ratio']:.2f}, NVLink ×{m['h800_nvlink_ratio']:.2f}. "
        f"V3's expert traffic per token and MoE layer: {m['ep_ib_bytes_per_token_layer'] / 1e3:.0f} kB over "
        f"InfiniBand ({m['ep_t_ib_us']:.1f} µs) and {m['ep_nvlink_bytes_per_token_layer'] / 1e3:.0f} kB over "
        f"NVLink ({m['ep_t_nvlink_us']['h800']:.1f} µs on the H800, {m['ep_t_nvlink_us']['h100']:.1f} on the "
        f"H100) against {m['ep_t_layer_us']:.1f} µs of compute: communication is "
        f"{m['ep_comm_over_layer']['h800']:.2f} of the layer's compute on either chip (InfiniBand binds: the "
        f"H800's binding link runs at ×{m['h800_binding_link_ratio']:.2f} the H100's), so without the overlap a "
        f"step would take ×{m['ep_slowdown_without_overlap']['h800']:.2f}."
    )


def _evidence_cost(m: Mapping) -> str:
    s, acc, strict = m["usd_per_solved"], m["mini_pass_at_1"], m["mini_pass_at_1_strict"]
    return (
        f"Launch prices, AIME 2024 at R1's ~{m['r1_aime_tokens_per_question']:.0f} tokens per question: "
        f"${s['r1']:.3f} per solved problem for R1, ${s['o1']:.2f} for o1 (at R1's token count; ×"
        f"{m['usd_per_solved_ratio_o1_over_r1']:.0f}). Our models, answer-level accuracy (a correct final answer "
        f"whatever its format): base {_f(acc['big_base'])}, RL reasoner {_f(acc['teacher'])}. The reasoner spends "
        f"{_f(m['mini_answer_cost_ratio'])} the base's FLOPs per answer and {_f(m['mini_solved_cost_ratio'])} per "
        f"solved problem. On strict accuracy (answer inside the tags: base {_f(strict['big_base'])}, a format "
        f"failure) the per-solved ratio would be {_f(m['mini_solved_cost_ratio_strict'])}; with the distilled student "
        f"as the reasoner, {_f(m['mini_distill_solved_cost_ratio'])}."
    )


def _evidence_replicate(m: Mapping) -> str:
    w = m["replications_by_window"]
    return (
        f"Under the declared protocol (data/README.md), of {m['replications_n']:.0f} published projects, within "
        f"{m['replications_weeks']:.0f} weeks of R1: {m['replications_r1_zero_within_weeks']:.0f} reproduced "
        f"R1-Zero's RL from a base model on narrow tasks (cheapest ${m['replication_cheapest_r1_zero_usd']:.0f}), "
        f"{m['replications_rl_on_distill_within_weeks']:.0f} ran RL on an R1 distill (not R1-Zero), "
        f"{m['replications_sft_distill_within_weeks']:.0f} distilled another reasoner, "
        f"{m['replications_full_r1_within_weeks']:.0f} the full R1 pipeline (within 12 weeks: "
        f"{w['12']['full_r1']:.0f}). This book, from the ledger: {m['book_cpu_hours']:.2f} CPU-hours over "
        f"{m['book_n_results_files']:.0f} results files and {m['book_n_models']:.0f} trained models "
        f"(≈ ${m['book_gpu_usd']:.4f} of GPU time)."
    )


def verdicts(metrics: Mapping, cfg: ThesisConfig) -> list[dict]:
    """The chapter's claims judged by their rules in ``data/claims.yml``, then the claims this
    book cannot test (fixed rules), with their reasons from ``data/not_testable.csv`` (the rules
    read only ``metrics``; ``cfg`` is the chapter interface's)."""
    out = [
        rules.judge("thesis-match", metrics, _evidence_match(metrics)),
        rules.judge("thesis-chips", metrics, _evidence_chips(metrics)),
        rules.judge("thesis-inference-cost", metrics, _evidence_cost(metrics)),
        rules.judge("thesis-replicate", metrics, _evidence_replicate(metrics)),
    ]
    for r in load_not_testable():
        out.append(rules.judge(r["id"], metrics, f"Alleged or stated by {r['by whom']}."))
    return out
