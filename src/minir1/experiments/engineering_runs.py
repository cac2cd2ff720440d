"""The engineering chapter's training runs (a companion of :mod:`minir1.experiments.engineering`).

Held-out documents and packing, one trained model per :class:`Run` (its curve, held-out loss,
speed and expert loads), every model of a seed (:func:`run_seed`) and every seed, in parallel
processes or not (:func:`train_seeds`), and the paired MoE-vs-dense metrics of those runs
(:func:`training_metrics`).  Imported only by :mod:`minir1.experiments.engineering`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..architectures import build_model
from ..corpus import KINDS, CorpusConfig, render
from ..cost import count_params
from ..curves import Multiplier, compute_multiplier, trailing_curve
from ..routing import RouterMonitor, expert_loads, load_balance
from ..stats import over_seeds, paired_seeds
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
    """Documents as ``<bos> doc <eos>`` concatenated and cut into (n, seq_len) windows."""
    from ..train import encode_example

    stream = [t for d in docs for t in encode_example(tokenizer, "", d)[0]]
    n = len(stream) // seq_len
    if n == 0:
        raise ValueError(f"docs hold {len(stream)} tokens, fewer than seq_len={seq_len}")
    return torch.tensor(stream[: n * seq_len]).view(n, seq_len)  # (n, T)


# ----------------------------------------------------------------------------- training runs
@dataclass
class Run:
    """One trained model: its per-step curve, held-out loss, speed and expert loads."""

    name: str
    seed: int
    params: dict  # {"total", "active"} from count_params
    loss: list[float]  # training loss of every step (a batch not seen before)
    flops: list[float]  # cumulative 6·N_active·D after every step
    wall: list[float]  # cumulative training seconds after every step
    heldout_loss: float  # loss on test-split documents packed like the training data
    heldout_loss_per_doc: float  # eval_loss: each test document alone, from position 0
    tokens_per_s: float  # training throughput
    epochs: float  # passes over the packed corpus (<= 1: every batch is new);
    # set by run_seed
    expert_load: list[list[float]] = field(default_factory=list)  # per MoE layer, share per expert
    aux_loss: float = 0.0  # mean sequence-wise balance loss over training (MoE only)


def train_config(cfg: EngineeringConfig, name: str, seed: int):
    """The :class:`minir1.train.TrainConfig` of model ``name``: packed documents, warm-up
    then a constant learning rate, the loss logged every step."""
    from ..train import TrainConfig

    return TrainConfig(
        steps=cfg.steps_of(name),
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        min_lr_frac=1.0,
        warmup_steps=cfg.warmup_steps,
        seq_len=cfg.seq_len,
        pack=True,
        seed=seed,
        log_every=1,
        progress=False,
        desc=name,
    )


def train_run(
    name: str,
    config,
    tokenizer,
    docs: Sequence[str],
    heldout: Sequence[str],
    cfg: EngineeringConfig,
    seed: int,
    device: str | None = None,
) -> Run:
    """Build model ``name`` from ``config`` with ``seed``, train it on ``docs`` and measure it.

    Every model of one seed sees the same batches in the same order (same documents, same
    batch seed), so their curves are paired step by step.
    """
    from ..train import eval_loss, train

    model = build_model(config, seed, device)
    monitor = RouterMonitor(model, cfg.balance_gamma, cfg.aux_alpha)
    tc = train_config(cfg, name, seed)
    try:
        res = train(model, tokenizer, [("", d) for d in docs], tc)
    finally:
        monitor.detach()
    per_step = cfg.batch_size * cfg.seq_len  # packed: every token is real
    n_active = count_params(config)["active"]
    wall = _cumsum([per_step / max(h["tokens_per_s"], 1e-9) for h in res.history])
    windows = pack_docs(tokenizer, heldout, cfg.seq_len)  # (n, T)
    return Run(
        name=name,
        seed=seed,
        params=count_params(config),
        loss=[h["loss"] for h in res.history],
        flops=[6.0 * n_active * per_step * h["step"] for h in res.history],
        wall=wall,
        heldout_loss=packed_loss(model, windows),
        heldout_loss_per_doc=eval_loss(model, tokenizer, [("", d) for d in heldout]),
        tokens_per_s=res.tokens / max(wall[-1], 1e-9),
        epochs=float("nan"),
        expert_load=expert_loads(model, windows) if monitor.routers else [],
        aux_loss=sum(monitor.aux_losses) / max(len(monitor.aux_losses), 1),
    )


@torch.no_grad()
def packed_loss(model, windows: torch.Tensor, batch_size: int = 32) -> float:
    """Mean next-token loss over packed ``windows`` (n, T), the training objective."""
    dev, total, count = next(model.parameters()).device, 0.0, 0
    model.eval()
    for s in range(0, windows.shape[0], batch_size):
        x = windows[s : s + batch_size].to(dev)  # (B, T)
        total += float(model(input_ids=x, labels=x).loss) * x[:, 1:].numel()
        count += x[:, 1:].numel()
    return total / count


def run_seed(
    seed: int,
    configs: Mapping[str, Any],
    tokenizer,
    docs: Sequence[str],
    heldout: Sequence[str],
    cfg: EngineeringConfig,
    device: str | None = None,
) -> dict[str, Run]:
    """All models of ``configs`` (name -> config) trained with one seed."""
    n_windows = pack_docs(tokenizer, docs, cfg.seq_len).shape[0]
    runs = {name: train_run(name, c, tokenizer, docs, heldout, cfg, seed, device) for name, c in configs.items()}
    for name, r in runs.items():
        r.epochs = cfg.steps_of(name) * cfg.batch_size / n_windows
    return runs


def chapter_flops(runs: Mapping[int, Mapping[str, Run]]) -> float:
    """Training FLOPs (6·N_active·D) of every run of every seed."""
    return sum(r.flops[-1] for per_seed in runs.values() for r in per_seed.values())


def _cumsum(xs: Sequence[float]) -> list[float]:
    out, acc = [], 0.0
    for x in xs:
        acc += x
        out.append(acc)
    return out


def run_multiplier(moe: Run, dense: Run, window: int, axis: str = "flops") -> Multiplier:
    """Compute (``axis="flops"``) or wall-time (``"wall"``) multiplier of ``dense`` at the
    MoE's final smoothed loss, both curves averaged over a trailing ``window`` of steps."""
    if axis not in ("flops", "wall"):
        raise ValueError(f"axis must be 'flops' or 'wall'; got {axis!r}")
    mx, my = trailing_curve(getattr(moe, axis), moe.loss, window)
    dx, dy = trailing_curve(getattr(dense, axis), dense.loss, window)
    return compute_multiplier(mx[-1], my[-1], dx, dy)


# ----------------------------------------------------------------------------- seeds
def _one_thread() -> None:
    torch.set_num_threads(1)


def train_seeds(
    seeds: Sequence[int],
    configs: Mapping[str, Any],
    tokenizer,
    docs: Sequence[str],
    heldout: Sequence[str],
    cfg: EngineeringConfig,
    device: str | None = None,
    progress: bool = False,
) -> dict[int, dict[str, Run]]:
    """:func:`run_seed` for every seed; with ``cfg.workers > 1``, seeds run in parallel
    processes of one thread each (the same bits as one process: see
    :func:`minir1.routing.make_deterministic`)."""
    from tqdm.auto import tqdm

    progress = progress and progress_bars()  # never a bar frozen into a published chapter
    args = [(s, configs, tokenizer, docs, heldout, cfg, device) for s in seeds]
    n = min(cfg.workers, len(seeds))
    if n <= 1 or (device or "").startswith("cuda") or torch.cuda.is_available():
        return {s: run_seed(*a) for s, a in zip(seeds, tqdm(args, desc="seeds", disable=not progress))}
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(n, initializer=_one_thread) as pool:
        out = list(tqdm(pool.imap(_run_seed_args, args), total=len(args), desc="seeds", disable=not progress))
    return dict(zip(seeds, out))


def _run_seed_args(args) -> dict[str, Run]:
    return run_seed(*args)


# ----------------------------------------------------------------------------- metrics
def _curve_extra(run: Run, window: int, points: int = 120) -> dict:
    """A run's smoothed curve, thinned to about ``points`` points, for the results file."""
    fx, ly = trailing_curve(run.flops, run.loss, window)
    wx, _ = trailing_curve(run.wall, run.loss, window)
    k = max(1, len(fx) // points)
    idx = sorted(set(range(0, len(fx), k)) | {len(fx) - 1})
    return {"flops": [fx[i] for i in idx], "wall": [wx[i] for i in idx], "loss": [ly[i] for i in idx]}


def _loss_at_step(run: Run, step: int, window: int) -> float:
    """Mean training loss over the ``window`` steps ending at ``step``."""
    w = min(window, step)
    return sum(run.loss[step - w : step]) / w


def _tokens(run: Run, cfg: EngineeringConfig) -> float:
    return float(cfg.steps_of(run.name) * cfg.batch_size * cfg.seq_len)


def training_metrics(runs: Mapping[int, Mapping[str, Run]], cfg: EngineeringConfig) -> tuple[dict, dict]:
    """Metrics and extra curves of :func:`run_seed` results by seed.

    Every MoE-vs-dense quantity is paired by seed (same initial seed, same batches in the same
    order): multipliers are per-seed ratios, bootstrapped over seeds; loss differences are
    :func:`minir1.stats.paired_seeds`.
    """
    seeds = sorted(runs)
    first = runs[seeds[0]]

    def per_seed(fn):
        return [fn(runs[s]) for s in seeds]

    mults = {
        ref: per_seed(lambda r, ref=ref: run_multiplier(r["moe"], r[ref], cfg.smooth))
        for ref in ("dense_active", "mha")
    }
    wall = per_seed(lambda r: run_multiplier(r["moe"], r["dense_active"], cfg.smooth, "wall"))
    balance = per_seed(lambda r: load_balance(r["moe"].expert_load))
    S = cfg.steps
    loss_at = {n: per_seed(lambda r, n=n: _loss_at_step(r[n], S, cfg.smooth)) for n in first}
    held = {n: per_seed(lambda r, n=n: r[n].heldout_loss) for n in first}
    n_active = first["moe"].params["active"]
    m = {
        "moe_compute_multiplier": over_seeds([x.value for x in mults["dense_active"]], unit="ratio"),
        "moe_compute_multiplier_lower_bounds": float(sum(x.kind == "lower bound" for x in mults["dense_active"])),
        "moe_compute_multiplier_upper_bounds": float(sum(x.kind == "upper bound" for x in mults["dense_active"])),
        "moe_compute_multiplier_vs_mha": over_seeds([x.value for x in mults["mha"]], unit="ratio"),
        "moe_compute_multiplier_vs_mha_lower_bounds": float(sum(x.kind == "lower bound" for x in mults["mha"])),
        "moe_wall_multiplier": over_seeds([x.value for x in wall], unit="ratio"),
        "moe_minus_dense_active_loss_equal_flops": paired_seeds(loss_at["moe"], loss_at["dense_active"]),
        "moe_expert_load_cv": over_seeds([b["cv"] for b in balance]),
        "moe_expert_load_max_over_mean": over_seeds([b["max_over_mean"] for b in balance]),
        "moe_aux_loss": over_seeds(per_seed(lambda r: r["moe"].aux_loss)),
        "moe_total_over_active": first["moe"].params["total"] / n_active,
        "moe_tokens_per_active_param": _tokens(first["moe"], cfg) / n_active,
        "min_tokens_per_active_param": cfg.min_tokens_per_active_param,
        "quality_tolerance": cfg.quality_tolerance,
        "mla_minus_mha_heldout_loss": paired_seeds(held["dense_active"], held["mha"]),
        "gqa_minus_mha_heldout_loss": paired_seeds(held["gqa"], held["mha"]),
        "heldout_loss": {n: over_seeds(held[n]) for n in first},
        "heldout_loss_per_doc": {n: over_seeds(per_seed(lambda r, n=n: r[n].heldout_loss_per_doc)) for n in first},
        "train_tokens_per_s": {n: over_seeds(per_seed(lambda r, n=n: r[n].tokens_per_s)) for n in first},
        "tokens_per_active_param": {n: _tokens(first[n], cfg) / first[n].params["active"] for n in first},
        "params_total": {n: float(first[n].params["total"]) for n in first},
        "params_active": {n: float(first[n].params["active"]) for n in first},
        "max_epochs": max(r.epochs for s in seeds for r in runs[s].values()),
    }
    if "dense_total" in first:
        m["moe_minus_dense_total_loss_equal_steps"] = paired_seeds(loss_at["moe"], loss_at["dense_total"])
    return m, _training_extra(runs, mults, cfg)


def _training_extra(
    runs: Mapping[int, Mapping[str, Run]], mults: Mapping[str, Sequence[Multiplier]], cfg: EngineeringConfig
) -> dict:
    """The figures' side of :func:`training_metrics`: thinned curves by seed and model, the
    kind of every multiplier, expert loads by seed, and the steps of every model."""
    seeds = sorted(runs)
    first = runs[seeds[0]]
    return {
        "curves": {str(s): {n: _curve_extra(r, cfg.smooth) for n, r in runs[s].items()} for s in seeds},
        "multiplier_kinds": {ref: [x.kind for x in xs] for ref, xs in mults.items()},
        "expert_load": {str(s): runs[s]["moe"].expert_load for s in seeds},
        "steps": {n: cfg.steps_of(n) for n in first},
    }
