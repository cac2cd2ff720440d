"""The engineering chapter's training runs (a companion of :mod:`minir1.experiments.engineering`).

Held-out documents and packing, one trained model per :class:`Run` (its curve, held-out loss,
speed and expert loads), every run of every seed and scale as a list of :class:`Job` (in
parallel processes or not: :func:`train_all`), and the per-seed metrics of those runs
(:func:`moe_metrics`, :func:`attention_metrics`, :func:`flops_metrics`).  Imported only by
:mod:`minir1.experiments.engineering`.

The corpus is packed once (:func:`pack_docs`) and every run trains on those windows with
:func:`train_packed`, which is :func:`minir1.train.train` on pre-packed windows (the same
optimiser, batches, learning rate and clipping; a test checks that both give the same losses):
``train`` would re-tokenise the whole corpus for each of the chapter's ~50 runs.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..architectures import build_model, param_counts
from ..corpus import KINDS, CorpusConfig, render
from ..curves import Multiplier, compute_multiplier, trailing_curve
from ..routing import RouterMonitor, expert_loads, load_balance
from ..stats import Metric, over_seeds, paired_seeds
from ..stats_hier import conservative
from ..utils import progress_bars
from .engineering_config import EngineeringConfig


# ----------------------------------------------------------------------------- data
def heldout_docs(corpus: CorpusConfig, n: int, seed: int = 1234) -> list[str]:
    """``n`` documents in the corpus' mixture, rendered from *test*-split problems only."""
    from ..tasks import get_task

    rng, docs = random.Random(seed), []
    total = sum(w for _, _, w in corpus.tasks)
    for i, (name, difficulty, weight) in enumerate(corpus.tasks):
        task = get_task(name, difficulty)
        for p in task.sample("test", max(1, round(n * weight / total)), seed=seed + 101 * i):
            kind = rng.choices(KINDS, weights=corpus.mix)[0]
            docs.append(render(p, kind, rng, corpus.error_rate, task))
    rng.shuffle(docs)
    return docs


def pack_docs(tokenizer, docs: Sequence[str], seq_len: int) -> torch.Tensor:
    """Documents as ``<bos> doc <eos>`` concatenated and cut into (n, seq_len) windows
    (what :func:`minir1.train.train` does with ``pack=True``)."""
    from ..train import encode_example

    stream = [t for d in docs for t in encode_example(tokenizer, "", d)[0]]
    n = len(stream) // seq_len
    if n == 0:
        raise ValueError(f"docs hold {len(stream)} tokens, fewer than seq_len={seq_len}")
    return torch.tensor(stream[: n * seq_len]).view(n, seq_len)  # (n, T)


@dataclass(frozen=True)
class Data:
    """What every run reads: the packed training windows, held-out windows and documents."""

    windows: torch.Tensor  # (n, T) training windows (train-split problems)
    heldout_windows: torch.Tensor  # (m, T) test-split documents packed the same way
    heldout: tuple[str, ...]  # the same documents, for the per-document loss
    tokenizer: Any


# ----------------------------------------------------------------------------- training runs
@dataclass
class Run:
    """One trained model: its per-step curve, held-out loss, speed and expert loads."""

    name: str
    seed: int
    scale: str
    params: dict  # {"total", "active"} from architectures.param_counts
    loss: list[float]  # training loss of every step (a batch not seen before)
    flops: list[float]  # cumulative 6·N_active·D after every step
    wall: list[float]  # cumulative training seconds after every step
    heldout_loss: float  # loss on test-split documents packed like the training data
    heldout_loss_per_doc: float  # eval_loss: each test document alone, from position 0
    tokens_per_s: float  # training throughput
    epochs: float  # passes over the packed corpus (<= 1: every batch is new)
    expert_load: list[list[float]] = field(default_factory=list)  # per MoE layer, share per expert
    aux_loss: float = 0.0  # mean sequence-wise balance loss over training (MoE only)
    cpu_seconds: float = 0.0  # CPU time of the run's process (training and measuring; the budget's unit)


def train_config(cfg: EngineeringConfig, steps: int, seed: int, desc: str = "train"):
    """The :class:`minir1.train.TrainConfig` of a run: packed windows, warm-up then a constant
    learning rate, the loss logged every step."""
    from ..train import TrainConfig

    return TrainConfig(
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        min_lr_frac=1.0,
        warmup_steps=cfg.warmup_steps,
        seq_len=cfg.seq_len,
        pack=True,
        seed=seed,
        log_every=1,
        progress=False,
        desc=desc,
    )


def train_packed(model, windows: torch.Tensor, tc) -> list[dict]:
    """:func:`minir1.train.train` on pre-packed ``windows`` (n, T): the same AdamW groups,
    batches (:func:`minir1.train._batches`), learning rate, clipping and autocast.  Returns one
    ``{"step", "loss", "seconds"}`` per step."""
    from ..train import _autocast, _batches, lr_at

    dev, gen = next(model.parameters()).device, torch.Generator().manual_seed(tc.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr,
        betas=tc.betas,
    )
    history, model = [], model.train()
    for step, idx in enumerate(_batches(windows.shape[0], tc, gen)):
        t0 = time.perf_counter()
        x = windows[idx].to(dev)  # (B, T)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        with _autocast(dev, tc.bf16):
            loss = model(input_ids=x, attention_mask=torch.ones_like(x), labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        history.append({"step": step + 1, "loss": loss.item(), "seconds": time.perf_counter() - t0})
    model.eval()
    return history


@torch.no_grad()
def packed_loss(model, windows: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token loss over packed ``windows`` (n, T), the training objective."""
    dev, total, count = next(model.parameters()).device, 0.0, 0
    model.eval()
    for s in range(0, windows.shape[0], batch_size):
        x = windows[s : s + batch_size].to(dev)  # (B, T)
        total += float(model(input_ids=x, labels=x).loss) * x[:, 1:].numel()
        count += x[:, 1:].numel()
    return total / count


@dataclass(frozen=True)
class Job:
    """One run to train: model ``name`` at ``scale`` with ``seed`` for ``steps`` steps."""

    seed: int
    scale: str
    name: str
    config: Any
    steps: int

    def cost(self) -> float:
        """Rough work (for scheduling only): steps × active parameters, routed tokens ×3."""
        return self.steps * param_counts(self.config)["active"] * (3 if self.name == "moe" else 1)


def jobs_for(seeds: Sequence[int], configs: Mapping[str, Mapping[str, Any]], cfg: EngineeringConfig) -> list[Job]:
    """Every run of the chapter: each seed × scale × model of ``configs`` ({scale: {model: config}})."""
    out = []
    for scale, models in configs.items():
        n_moe = param_counts(models["moe"])["active"]
        for seed in seeds:
            out += [Job(seed, scale, n, c, cfg.steps_of(n, n_moe)) for n, c in models.items()]
    return out


def train_run(job: Job, data: Data, cfg: EngineeringConfig, device: str | None = None) -> Run:
    """Build the job's model with its seed, train it on ``data.windows`` and measure it.

    Every model of one seed sees the same batches in the same order (same windows, same batch
    seed), so runs of one seed are paired step by step; a longer run continues a shorter one's
    batches."""
    from ..train import eval_loss

    cpu0 = time.process_time()
    model = build_model(job.config, job.seed, device)
    monitor = RouterMonitor(model, cfg.balance_gamma, cfg.aux_alpha)
    try:
        hist = train_packed(model, data.windows, train_config(cfg, job.steps, job.seed, job.name))
    finally:
        monitor.detach()
    per_step, params = cfg.batch_size * cfg.seq_len, param_counts(job.config)
    wall = np.cumsum([h["seconds"] for h in hist]).tolist()
    run = Run(
        name=job.name,
        seed=job.seed,
        scale=job.scale,
        params=params,
        loss=[h["loss"] for h in hist],
        flops=[6.0 * params["active"] * per_step * h["step"] for h in hist],
        wall=wall,
        heldout_loss=packed_loss(model, data.heldout_windows),
        heldout_loss_per_doc=eval_loss(model, data.tokenizer, [("", d) for d in data.heldout]),
        tokens_per_s=per_step * len(hist) / max(wall[-1], 1e-9),
        epochs=job.steps * cfg.batch_size / data.windows.shape[0],
        expert_load=expert_loads(model, data.heldout_windows) if monitor.routers else [],
        aux_loss=sum(monitor.aux_losses) / max(len(monitor.aux_losses), 1),
    )
    run.cpu_seconds = time.process_time() - cpu0
    return run


# ----------------------------------------------------------------------------- every run
_WORKER: dict = {}  # a worker process's Data and config (set once by _init_worker)


@contextlib.contextmanager
def _threads(n: int):
    was = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(was)


def _init_worker(data: Data, cfg: EngineeringConfig, device: str | None) -> None:
    torch.set_num_threads(1)
    _WORKER.update(data=data, cfg=cfg, device=device)


def _work(job: Job) -> tuple[Job, Run]:
    return job, train_run(job, _WORKER["data"], _WORKER["cfg"], _WORKER["device"])


def train_all(
    jobs: Sequence[Job], data: Data, cfg: EngineeringConfig, device: str | None = None, progress: bool = False
) -> dict[int, dict[str, dict[str, Run]]]:
    """Every job's :class:`Run` as ``{seed: {scale: {model: Run}}}``.  On the CPU each run uses
    one thread, in ``cfg.workers`` processes (largest jobs first); the bits do not depend on it."""
    from tqdm.auto import tqdm

    order = sorted(jobs, key=lambda j: -j.cost())
    bar = dict(total=len(order), desc="runs", disable=not (progress and progress_bars()))
    n = min(cfg.workers, len(order))
    if n <= 1 or (device or "").startswith("cuda") or torch.cuda.is_available():
        with _threads(torch.get_num_threads() if torch.cuda.is_available() else 1):  # CPU runs: one thread
            done = [(j, train_run(j, data, cfg, device)) for j in tqdm(order, **bar)]
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(n, initializer=_init_worker, initargs=(data, cfg, device)) as pool:
            done = list(tqdm(pool.imap_unordered(_work, order), **bar))
    out: dict = {}
    for job, run in done:
        out.setdefault(job.seed, {}).setdefault(job.scale, {})[job.name] = run
    return {s: {sc: out[s][sc] for sc in dict.fromkeys(j.scale for j in jobs)} for s in sorted(out)}


def chapter_flops(runs: Mapping[int, Mapping[str, Mapping[str, Run]]]) -> float:
    """Training FLOPs (6·N_active·D) of every run of every seed and scale."""
    return sum(r.flops[-1] for per_seed in runs.values() for per_scale in per_seed.values() for r in per_scale.values())


def run_multiplier(moe: Run, dense: Run, window: int, axis: str = "flops") -> Multiplier:
    """Compute (``axis="flops"``) or wall-time (``"wall"``) multiplier of ``dense`` at the
    MoE's final smoothed loss, both curves averaged over a trailing ``window`` of steps."""
    if axis not in ("flops", "wall"):
        raise ValueError(f"axis must be 'flops' or 'wall'; got {axis!r}")
    mx, my = trailing_curve(getattr(moe, axis), moe.loss, window)
    dx, dy = trailing_curve(getattr(dense, axis), dense.loss, window)
    return compute_multiplier(mx[-1], my[-1], dx, dy)


# ----------------------------------------------------------------------------- metrics
def _cons(m: Metric) -> Metric:
    """The reporting rule (:func:`minir1.stats_hier.conservative`: the hull of the bootstrap over
    seeds and the seed-level t interval; seeds are the units); one seed has no t interval."""
    return conservative(m) if m.n >= 2 else m


def _scaled(m: Metric, k: float) -> Metric:
    return Metric(m.mean * k, m.lo * k, m.hi * k, tuple(x * k for x in m.per_seed), m.n, m.method, m.unit)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` on ``xs``."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


def _loss_at_step(run: Run, step: int, window: int) -> float:
    """Mean training loss over the ``window`` steps ending at ``step``."""
    w = min(window, step)
    return sum(run.loss[step - w : step]) / w


def _curve_extra(run: Run, window: int, points: int = 100) -> dict:
    """A run's smoothed curve, thinned to about ``points`` points, for the results file."""
    fx, ly = trailing_curve(run.flops, run.loss, window)
    wx, _ = trailing_curve(run.wall, run.loss, window)
    k = max(1, len(fx) // points)
    idx = sorted(set(range(0, len(fx), k)) | {len(fx) - 1})
    return {"flops": [fx[i] for i in idx], "wall": [wx[i] for i in idx], "loss": [ly[i] for i in idx]}


def _by_seed(runs: Mapping[int, Mapping[str, Mapping[str, Run]]], scale: str, fn) -> list:
    return [fn(runs[s][scale]) for s in sorted(runs)]


def _multipliers(runs, scales: Sequence[str], window: int) -> dict[str, list[Multiplier]]:
    return {sc: _by_seed(runs, sc, lambda r: run_multiplier(r["moe"], r["dense_active"], window)) for sc in scales}


def _trend(vals: Mapping[str, Sequence[float]], n_act: Mapping[str, int], n_seeds: int) -> list[float]:
    """Per seed, the slope of ln multiplier on ln active parameters over the scales."""
    if len(vals) < 2:
        return [0.0] * n_seeds
    x = [math.log(n_act[sc]) for sc in vals]
    return [_slope(x, [math.log(vals[sc][i]) for sc in vals]) for i in range(n_seeds)]


def _equal_flops_diff(r: Mapping[str, Run], window: int) -> float:
    """MoE − dense training loss over the window ending at the MoE's last step (equal FLOPs)."""
    n = len(r["moe"].loss)
    return _loss_at_step(r["moe"], n, window) - _loss_at_step(r["dense_active"], n, window)


def moe_metrics(runs: Mapping[int, Mapping[str, Mapping[str, Run]]], cfg: EngineeringConfig) -> tuple[dict, dict]:
    """The MoE-vs-dense metrics by scale, every one paired by seed (same initial seed, same
    batches): compute multipliers at equal loss, their trend with scale (per-seed slope of
    ln multiplier on ln active parameters), loss at equal FLOPs, balance and regime."""
    first = runs[min(runs)]
    scales, big = list(first), list(first)[-1]
    mults = _multipliers(runs, scales, cfg.smooth)
    vals = {sc: [m.value for m in mults[sc]] for sc in scales}
    n_act = {sc: first[sc]["moe"].params["active"] for sc in scales}
    trend = _trend(vals, n_act, len(runs))
    tpp = {sc: len(first[sc]["moe"].loss) * cfg.batch_size * cfg.seq_len / n_act[sc] for sc in scales}
    equal = {sc: _by_seed(runs, sc, lambda r: _equal_flops_diff(r, cfg.smooth)) for sc in scales}
    balance = _by_seed(runs, big, lambda r: load_balance(r["moe"].expert_load))
    wall = _by_seed(runs, big, lambda r: run_multiplier(r["moe"], r["dense_active"], cfg.smooth, "wall").value)
    m = {
        "moe_compute_multiplier": _cons(over_seeds(vals[big], unit="ratio")),
        "moe_compute_multiplier_bootstrap": over_seeds(vals[big], unit="ratio"),
        "moe_compute_multiplier_by_scale": {sc: _cons(over_seeds(vals[sc], unit="ratio")) for sc in scales},
        "moe_compute_multiplier_lower_bounds": float(sum(x.kind == "lower bound" for x in mults[big])),
        "moe_compute_multiplier_upper_bounds": float(sum(x.kind == "upper bound" for x in mults[big])),
        "moe_compute_multiplier_lower_bounds_by_scale": {
            sc: float(sum(x.kind == "lower bound" for x in mults[sc])) for sc in scales
        },
        "moe_multiplier_trend": _cons(over_seeds(trend)),
        "moe_multiplier_trend_bootstrap": over_seeds(trend),
        "moe_wall_multiplier": over_seeds(wall, unit="ratio"),
        "moe_minus_dense_active_loss_equal_flops": _cons(paired_seeds(equal[big], [0.0] * len(runs))),
        "moe_minus_dense_active_loss_equal_flops_by_scale": {
            sc: _cons(paired_seeds(equal[sc], [0.0] * len(runs))) for sc in scales
        },
        "moe_expert_load_cv": over_seeds([b["cv"] for b in balance]),
        "moe_expert_load_max_over_mean": over_seeds([b["max_over_mean"] for b in balance]),
        "moe_aux_loss": over_seeds(_by_seed(runs, big, lambda r: r["moe"].aux_loss)),
        "moe_total_over_active": first[big]["moe"].params["total"] / n_act[big],
        "moe_total_over_active_by_scale": {sc: first[sc]["moe"].params["total"] / n_act[sc] for sc in scales},
        "moe_params_active_by_scale": {sc: float(n_act[sc]) for sc in scales},
        "moe_tokens_per_active_param": min(tpp.values()),
        "moe_tokens_per_active_param_by_scale": tpp,
        "min_tokens_per_active_param": cfg.min_tokens_per_active_param,
    }
    extra = {
        "multiplier_kinds": {sc: [x.kind for x in mults[sc]] for sc in scales},
        "expert_load": {str(s): runs[s][big]["moe"].expert_load for s in sorted(runs)},
    }
    return m, extra


def attention_metrics(runs: Mapping[int, Mapping[str, Mapping[str, Run]]], cfg: EngineeringConfig) -> dict:
    """MLA, MHA and GQA at the largest scale (one implementation; same seeds, same batches):
    held-out loss differences paired by seed, and every model's loss, speed and size."""
    first = runs[min(runs)]
    big = list(first)[-1]
    names = list(first[big])
    held = {n: _by_seed(runs, big, lambda r, n=n: r[n].heldout_loss) for n in names}
    doc = {n: _by_seed(runs, big, lambda r, n=n: r[n].heldout_loss_per_doc) for n in names}
    diff = paired_seeds(held["dense_active"], held["mha"], unit="")
    return {
        "quality_tolerance": cfg.quality_tolerance,
        "mla_minus_mha_heldout_loss": _cons(diff),
        "mla_minus_mha_heldout_loss_bootstrap": diff,
        "mla_minus_mha_heldout_loss_per_doc": _cons(paired_seeds(doc["dense_active"], doc["mha"], unit="")),
        # the difference × (0.02 / margin): judged against the rule's ±0.02, it reads as ±margin
        "mla_minus_mha_heldout_loss_rescaled": {
            f"{mg:g}": _scaled(_cons(diff), cfg.quality_tolerance / mg) for mg in (0.01, 0.04)
        },
        "gqa_minus_mha_heldout_loss": _cons(paired_seeds(held["gqa"], held["mha"], unit="")),
        "mla_minus_gqa_heldout_loss": _cons(paired_seeds(held["dense_active"], held["gqa"], unit="")),
        "heldout_loss": {n: over_seeds(held[n]) for n in names},
        "heldout_loss_per_doc": {n: over_seeds(doc[n]) for n in names},
        "train_tokens_per_s": {n: over_seeds(_by_seed(runs, big, lambda r, n=n: r[n].tokens_per_s)) for n in names},
        "tokens_per_active_param": {
            n: len(first[big][n].loss) * cfg.batch_size * cfg.seq_len / first[big][n].params["active"] for n in names
        },
        "params_total": {n: float(first[big][n].params["total"]) for n in names},
        "params_active": {n: float(first[big][n].params["active"]) for n in names},
        "max_epochs": max(r.epochs for s in runs.values() for sc in s.values() for r in sc.values()),
    }


def flops_metrics(runs: Mapping[int, Mapping[str, Mapping[str, Run]]]) -> tuple[dict, dict]:
    """Every arm's spent FLOPs over seeds (``"<model>/<scale>"``), and the dense model's FLOPs
    at the MoE's last step (``"dense_active/<scale>@moe_steps"``), where the chapter compares
    the two "at equal FLOPs": ``({"flops_spent": ...}, {"equal_flops": [[a, b], ...]})``."""
    first = runs[min(runs)]
    spent, pairs = {}, []
    for sc, models in first.items():
        for n in models:
            spent[f"{n}/{sc}"] = over_seeds(_by_seed(runs, sc, lambda r, n=n: r[n].flops[-1]))
        at = f"dense_active/{sc}@moe_steps"
        spent[at] = over_seeds(_by_seed(runs, sc, lambda r: r["dense_active"].flops[len(r["moe"].loss) - 1]))
        pairs.append([f"moe/{sc}", at])
    return {"flops_spent": spent}, {"equal_flops": pairs}


def curves_extra(runs: Mapping[int, Mapping[str, Mapping[str, Run]]], cfg: EngineeringConfig) -> dict:
    """The figures' side: thinned curves by seed, scale and model, and every run's steps."""
    first = runs[min(runs)]
    return {
        "curves": {
            str(s): {sc: {n: _curve_extra(r, cfg.smooth) for n, r in per.items()} for sc, per in runs[s].items()}
            for s in sorted(runs)
        },
        "steps": {sc: {n: len(r.loss) for n, r in per.items()} for sc, per in first.items()},
        "cpu_seconds": {  # per run, summed over seeds: what the chapter costs on one core
            sc: {n: sum(runs[s][sc][n].cpu_seconds for s in runs) for n in per} for sc, per in first.items()
        },
    }
