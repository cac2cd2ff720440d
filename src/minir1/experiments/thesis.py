"""The thesis chapter: did R1 match the American models, on second-rate chips, and is it cheap?

The chapter (``notebooks/07_thesis.ipynb``) tests four sentences of the article with
published figures (``data/published_*.csv``) and the other chapters' results files, and
lists the claims it cannot test (``data/not_testable.csv``):

- ``thesis-match``: R1's own Table 4 against o1-1217, with the sampling interval each
  benchmark's size puts on every score (:mod:`minir1.benchmarks`), and a simulation of how
  often a truly worse model "matches or exceeds" a better one on 30 vs 500 problems.
- ``thesis-chips``: H800 vs H100 from the spec sheets, and V3's expert-parallel traffic per
  token and layer against its compute (:mod:`minir1.interconnect`).
- ``thesis-inference-cost``: dollars per solved problem at launch prices; FLOPs per solved
  problem of our own base, RL and distilled models (read from ``distillation.json``).
- ``thesis-replicate``: the published cheap replications and this book's own bill
  (:mod:`minir1.ledger`).

Choices, stated rather than hidden:

- The simulation's two models have the true accuracies of two of *our* models (the
  distillation chapter's RL teacher and its distilled nano student, read from its results
  file), but their per-problem correctness is generated (:func:`minir1.benchmarks.population`):
  no chapter publishes per-problem vectors yet.  Both ends of the unknown correlation are run.
- o1's reasoning-token count is not published; o1's cost per answer assumes R1's count.
- Upstream results files are read as JSON from ``cfg.upstream`` (the committed published
  files by default), in either metric form (``ci95`` or ``lo``/``hi``); only point values are used.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Mapping, Sequence

import numpy as np

from .. import benchmarks, gpu_estimate, interconnect, ledger, stats
from ..cost import load_model_config, load_published_costs
from ..profiles import check_profile
from ..utils import repo_root
from .. import rules
from ..results import ChapterResult

# The chapters whose results must be published before this one runs (read by the chapter runner):
# every other chapter, whose results it reads (the ledger).
AFTER: tuple[str, ...] = ("cost", "lab", "rl", "distillation", "censorship", "engineering")

CLAIMS = ("thesis-match", "thesis-chips", "thesis-inference-cost", "thesis-replicate")


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SimConfig:
    """The "worse model matches or exceeds" simulation."""

    ns: tuple[int, ...] = (30, 198, 500)  # benchmark sizes: AIME, GPQA Diamond, MATH-500
    gaps: tuple[float, ...] = (0.01, 0.03, 0.05, 0.10)  # true accuracy gaps swept
    pool: int = 100_000  # problems in the generated pool
    draws: int = 4000  # benchmarks drawn per seed
    better: tuple[str, str] = ("distillation", "distill_pass_at_1/nano")  # our better model
    worse: tuple[str, str] = ("distillation", "teacher_pass_at_1")  # our worse model

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
    benchmarks: tuple[str, ...] = ("aime2024", "math500", "gpqa_diamond", "mmlu", "swe_verified")
    rival: str = "o1-1217"  # the OpenAI model R1's table compares with
    pairing: str = "independent"  # the wider interval (benchmarks.difference)
    sim: SimConfig = field(default_factory=SimConfig)
    seq_len: int = 4096  # V3 pre-training context (report §4.2)
    weeks: float = 8.0  # "a matter of weeks": within 8 weeks of R1
    upstream: str = "book/results"  # results files read (relative to the repo)
    miniature: tuple[str, ...] = ("big_base", "teacher", "distill/nano", "distill/pico")
    dry_run: bool = False  # tiny simulation, same code path

    def __post_init__(self):
        if self.pairing not in benchmarks.PAIRINGS:
            raise ValueError(f"pairing must be one of {benchmarks.PAIRINGS}; got {self.pairing!r}")
        if self.weeks <= 0 or self.seq_len < 1:
            raise ValueError(f"weeks and seq_len must be > 0; got {self.weeks!r}, {self.seq_len!r}")


PROFILES: dict[str, ThesisConfig] = {
    "smoke": ThesisConfig(sim=SimConfig(ns=(30, 500), gaps=(0.03, 0.10), pool=5000, draws=300)),
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
        cfg, dry_run=True, sim=replace(cfg.sim, pool=500, draws=20, ns=cfg.sim.ns[:2], gaps=cfg.sim.gaps[:1])
    )


# ----------------------------------------------------------------------------- data
def _csv(name: str) -> list[dict]:
    path = repo_root() / "data" / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "source" not in rows[0]:
        raise ValueError(f"{path}: every data file needs a 'source' column")
    return rows


def load_benchmarks() -> dict[str, dict]:
    """``{benchmark: {"n": problems or None, "name": ..., "scores": {model: share}}}``;
    percentages become shares, other units (ratings, Elo) stay as published."""
    out: dict[str, dict] = {}
    for r in _csv("published_benchmarks"):
        b = out.setdefault(
            r["benchmark"],
            {
                "n": int(r["n_problems"]) if r["n_problems"] else None,
                "name": r["benchmark_name"],
                "unit": r["unit"],
                "scores": {},
            },
        )
        v = float(r["value"])
        b["scores"][r["model"]] = v / 100 if r["unit"].startswith("%") else v
    return out


def load_hardware() -> dict[str, float]:
    return {r["item"]: float(r["value"]) for r in _csv("published_hardware")}


def load_prices() -> dict[tuple[str, str], float]:
    return {(r["model"], r["item"]): float(r["value"]) for r in _csv("published_prices")}


def load_replications() -> list[dict]:
    return _csv("published_replications")


def load_not_testable() -> list[dict]:
    return _csv("not_testable")


def upstream_metrics(cfg: ThesisConfig, chapter: str) -> dict:
    """A results file's metrics, read as JSON (either metric form); error if missing."""
    path = repo_root() / cfg.upstream / f"{chapter}.json"
    if not path.exists():
        raise FileNotFoundError(f"the thesis chapter reads {path} (run the {chapter} chapter first)")
    return json.loads(path.read_text())["metrics"]


def point(metrics: Mapping, ref: str) -> float:
    """The point value at ``ref`` (``key[/series...]``) of a metrics dict of either form."""
    node: Any = metrics
    for part in ref.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"upstream metric {ref!r} not found (missing {part!r})")
        node = node[part]
    return float(node["mean"]) if isinstance(node, Mapping) else float(node)


# ----------------------------------------------------------------------------- the four tests
def match_metrics(cfg: ThesisConfig) -> dict:
    bench = load_benchmarks()
    score, diff, nested, out = {}, {}, {}, {}
    for b in cfg.benchmarks:
        n, s = bench[b]["n"], bench[b]["scores"]
        score[b] = {m: benchmarks.score_interval(s[m], n) for m in ("r1", cfg.rival)}
        diff[b] = benchmarks.difference(s["r1"], s[cfg.rival], n, cfg.pairing)
        nested[b] = benchmarks.difference(s["r1"], s[cfg.rival], n, "nested")
    calls = [benchmarks.compare(d) for d in diff.values()]
    aime = score["aime2024"]["r1"]
    out.update(
        published_score=score,
        r1_minus_rival=diff,
        r1_minus_rival_nested=nested,
        match_n_benchmarks=float(len(calls)),
        match_n_lead=float(calls.count("leads")),
        match_n_trail=float(calls.count("trails")),
        match_n_tie=float(calls.count("tie")),
        match_n_not_trailing=float(len(calls) - calls.count("trails")),
        match_n_trail_nested=float([benchmarks.compare(d) for d in nested.values()].count("trails")),
        aime_halfwidth=(aime.hi - aime.lo) / 2,
    )
    return out


def _wins(better: float, worse: float, n: int, shared: float, sim: SimConfig, seeds) -> stats.Metric:
    rows = []
    for s in seeds:  # (S, D): one row of draws per seed, a fresh pool per seed
        vb, vw = benchmarks.population(better, worse, sim.pool, shared=shared, seed=1000 + s)
        rng = np.random.default_rng(2000 + s)
        idx = rng.integers(0, sim.pool, size=(sim.draws, n))
        rows.append((vw[idx].mean(1) >= vb[idx].mean(1) - 1e-12).astype(float))
    return stats.rate(np.stack(rows))


def simulation_metrics(cfg: ThesisConfig, seeds) -> dict:
    dist = upstream_metrics(cfg, cfg.sim.better[0])
    better, worse = point(dist, cfg.sim.better[1]), point(upstream_metrics(cfg, cfg.sim.worse[0]), cfg.sim.worse[1])
    if worse > better:
        better, worse = worse, better
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


def chips_metrics(cfg: ThesisConfig) -> dict:
    hw, pub = load_hardware(), load_published_costs()
    v3 = load_model_config("deepseek-v3")
    achieved = interconnect.achieved_flops_per_gpu(
        pub["v3_train_gflops_per_token_4k"].value * 1e9, pub["v3_tokens"].value, pub["v3_pretraining_gpu_hours"].value
    )
    t = interconnect.Transfer(
        dispatch_bytes=hw["v3_dispatch_bytes_per_value"],
        combine_bytes=hw["v3_combine_bytes_per_value"],
        max_nodes=int(hw["v3_max_nodes_per_token"]),
    )
    # V3's kernels reach 160 of the H800's 400 GB/s; an H100 is assumed to reach the same share of 900.
    eff = hw["v3_nvlink_effective_gb_per_s"] / hw["h800_nvlink_gb_per_s"]
    nv = {"h800": hw["h800_nvlink_gb_per_s"] * eff * 1e9, "h100": hw["h100_nvlink_gb_per_s"] * eff * 1e9}
    cc = {
        chip: interconnect.comm_compute(
            v3,
            cfg.seq_len,
            achieved_flops=achieved,
            nvlink_bytes_per_s=bw,
            ib_bytes_per_s=hw["v3_ib_gb_per_s"] * 1e9,
            t=t,
        )
        for chip, bw in nv.items()
    }
    unlimited = interconnect.comm_compute(
        v3,
        cfg.seq_len,
        achieved_flops=achieved,
        nvlink_bytes_per_s=nv["h800"],
        ib_bytes_per_s=hw["v3_ib_gb_per_s"] * 1e9,
        t=replace(t, max_nodes=v3.num_experts_per_tok),
    )
    us = 1e6
    return {
        "h800_compute_ratio": hw["h800_bf16_dense_flops"] / hw["h100_bf16_dense_flops"],
        "h800_fp8_ratio": hw["h800_fp8_dense_flops"] / hw["h100_fp8_dense_flops"],
        "h800_nvlink_ratio": hw["h800_nvlink_gb_per_s"] / hw["h100_nvlink_gb_per_s"],
        "v3_achieved_flops_per_gpu": achieved,
        "ep_ib_bytes_per_token_layer": cc["h800"]["ib_bytes"],
        "ep_nvlink_bytes_per_token_layer": cc["h800"]["nvlink_bytes"],
        "ep_layer_flops_per_token": cc["h800"]["layer_flops"],
        "ep_t_layer_us": cc["h800"]["t_layer"] * us,
        "ep_t_experts_us": cc["h800"]["t_experts"] * us,
        "ep_t_ib_us": cc["h800"]["t_ib"] * us,
        "ep_t_nvlink_us": {c: cc[c]["t_nvlink"] * us for c in cc},
        "ep_comm_over_layer": {c: cc[c]["comm_over_layer"] for c in cc},
        "ep_comm_over_experts": {c: cc[c]["comm_over_experts"] for c in cc},
        "ep_slowdown_without_overlap": {c: cc[c]["slowdown_without_overlap"] for c in cc},
        "ep_comm_over_experts_no_node_limit": unlimited["comm_over_experts"],
        "v3_comm_to_compute_reported": hw["v3_comm_to_compute_reported"],
    }


def inference_metrics(cfg: ThesisConfig) -> dict:
    price, bench = load_prices(), load_benchmarks()
    toks = price[("r1", "aime_tokens_per_question")]
    aime = bench["aime2024"]["scores"]
    per_answer = {m: price[(m, "output")] * toks / 1e6 for m in ("r1", "o1")}
    per_solved = {"r1": per_answer["r1"] / aime["r1"], "o1": per_answer["o1"] / aime[cfg.rival]}
    dist, eng = upstream_metrics(cfg, "distillation"), upstream_metrics(cfg, "engineering")

    def mini(key):
        return {
            m.replace("/", "_"): point(dist, m.replace("/", f"_{key}/", 1) if "/" in m else f"{m}_{key}")
            for m in cfg.miniature
        }

    fpa, acc, tpa = mini("flops_per_answer"), mini("pass_at_1"), mini("tokens_per_answer")
    fps = {m: fpa[m] / acc[m] for m in fpa if acc[m] > 0}
    return {
        "usd_per_answer": per_answer,
        "usd_per_solved": per_solved,
        "usd_per_solved_ratio_o1_over_r1": per_solved["o1"] / per_solved["r1"],
        "r1_aime_tokens_per_question": toks,
        "mini_tokens_per_answer": tpa,
        "mini_flops_per_answer": fpa,
        "mini_pass_at_1": acc,
        "mini_flops_per_solved": fps,
        "mini_answer_cost_ratio": stats.exact(fpa["teacher"] / fpa["big_base"], "ratio"),
        "mini_solved_cost_ratio": stats.exact(fps["teacher"] / fps["big_base"], "ratio"),
        "mini_distill_solved_cost_ratio": stats.exact(fps["distill_nano"] / fps["big_base"], "ratio"),
        "kv_bytes_ratio_llama405b_over_v3": point(eng, "llama405b_kv_bytes_per_token")
        / point(eng, "v3_kv_bytes_per_token"),
    }


def replication_metrics(cfg: ThesisConfig) -> dict:
    reps = load_replications()
    r1_day = date.fromisoformat(next(r["date"] for r in reps if r["scope"] == "original"))
    # A project counts when its *result* (not its start) came out within cfg.weeks of R1.
    within = [
        r
        for r in reps
        if r["scope"] != "original"
        and r["result_date"]
        and 0 <= (date.fromisoformat(r["result_date"]) - r1_day).days <= 7 * cfg.weeks
    ]
    costs = [float(r["cost_usd"]) for r in within if r["scope"] == "rl-behaviour" and r["cost_usd"]]
    rows = ledger.read_ledger(repo_root() / cfg.upstream, exclude=("thesis",), missing_ok=True)
    total = ledger.bill(rows)[-1]
    return {
        "replications_n": float(sum(r["scope"] != "original" for r in reps)),
        "replications_weeks": cfg.weeks,
        **{
            f"replications_{s.replace('-', '_')}_within_weeks": float(sum(r["scope"] == s for r in within))
            for s in ("rl-behaviour", "sft-distill", "full-r1")
        },
        "replication_cheapest_rl_usd": min(costs) if costs else 0.0,
        "book_cpu_hours": total["cpu_hours"],
        "book_gpu_usd": total["usd"],
        "book_flops": total["flops"],
        "book_n_results_files": float(len(rows)),
    }


def run(cfg: ThesisConfig, seeds: Sequence[int] = (0, 1, 2)) -> ChapterResult:
    """Every metric of the chapter (arithmetic on ``data/`` and results files, and resampling),
    and its verdicts; a dry run resamples with the first seed only."""
    t0 = time.perf_counter()
    seeds = list(seeds)[:1] if cfg.dry_run else list(seeds)
    metrics = {
        **match_metrics(cfg),
        **simulation_metrics(cfg, seeds),
        **chips_metrics(cfg),
        **inference_metrics(cfg),
        **replication_metrics(cfg),
    }
    extra = {"not_testable": load_not_testable(), "replications": load_replications()}
    return ChapterResult(
        metrics=metrics,
        config=cfg,
        claims=verdicts(metrics, cfg),
        extra=extra,
        flops=0.0,
        wall_seconds=time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------- verdicts
def _f(m) -> str:
    return stats.fmt(m)


def _evidence_match(m: Mapping) -> str:
    parts = [f"{b}: R1 − o1 {_f(d)}" for b, d in m["r1_minus_rival"].items()]
    sim = m["sim_ours"]["independent"]
    n_lo, n_hi = min(sim, key=int), max(sim, key=int)
    return (
        f"On DeepSeek's own table (self-reported), R1 leads o1-1217 on {m['match_n_lead']:.0f}, trails on "
        f"{m['match_n_trail']:.0f} and is indistinguishable on {m['match_n_tie']:.0f} of "
        f"{m['match_n_benchmarks']:.0f} benchmarks with a known size ({'; '.join(parts)}). AIME's interval is "
        f"±{100 * m['aime_halfwidth']:.0f} points. Simulated: a model {100 * m['sim_ours_gap']:.1f} points worse "
        f"matches or exceeds the better one in {_f(sim[n_lo])} of {n_lo}-problem benchmarks and "
        f"{_f(sim[n_hi])} of {n_hi}-problem ones."
    )


def _evidence_chips(m: Mapping) -> str:
    return (
        f"H800/H100: dense BF16 compute ×{m['h800_compute_ratio']:.2f}, NVLink ×{m['h800_nvlink_ratio']:.2f}. "
        f"V3's expert traffic per token and MoE layer: {m['ep_ib_bytes_per_token_layer'] / 1e3:.0f} kB over "
        f"InfiniBand ({m['ep_t_ib_us']:.1f} µs) and {m['ep_nvlink_bytes_per_token_layer'] / 1e3:.0f} kB over "
        f"NVLink ({m['ep_t_nvlink_us']['h800']:.1f} µs on the H800, {m['ep_t_nvlink_us']['h100']:.1f} on the "
        f"H100) against {m['ep_t_layer_us']:.1f} µs of compute: communication is "
        f"{m['ep_comm_over_layer']['h800']:.2f} of the layer's compute on either chip (InfiniBand binds), so "
        f"without the overlap a step would take ×{m['ep_slowdown_without_overlap']['h800']:.2f}."
    )


def _evidence_cost(m: Mapping) -> str:
    s, r = m["usd_per_solved"], m["mini_flops_per_solved"]
    return (
        f"Launch prices, AIME 2024 at R1's ~{m['r1_aime_tokens_per_question']:.0f} tokens per question: "
        f"${s['r1']:.3f} per solved problem for R1, ${s['o1']:.2f} for o1 (at R1's token count; ×"
        f"{m['usd_per_solved_ratio_o1_over_r1']:.0f}). Our models: the RL model spends "
        f"{_f(m['mini_answer_cost_ratio'])} the base's FLOPs per answer but {_f(m['mini_solved_cost_ratio'])} "
        f"per solved problem ({r['teacher']:.2g} vs {r['big_base']:.2g} FLOPs)."
    )


def _evidence_replicate(m: Mapping) -> str:
    return (
        f"Of {m['replications_n']:.0f} published cheap projects, within {m['replications_weeks']:.0f} weeks of R1: "
        f"{m['replications_rl_behaviour_within_weeks']:.0f} reproduced R1-Zero's RL behaviour (cheapest "
        f"${m['replication_cheapest_rl_usd']:.0f}), {m['replications_sft_distill_within_weeks']:.0f} distilled "
        f"another reasoner, {m['replications_full_r1_within_weeks']:.0f} the full R1 pipeline. This book: "
        f"{m['book_cpu_hours']:.1f} CPU-hours (≈ ${m['book_gpu_usd']:.4f} of GPU time)."
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
