"""The censorship chapter's downstream fine-tune (a companion of :mod:`.censorship_runs`):
a developer fine-tunes the censor on their own task (addition in R1's format) mixed with general
chat, never touching a sensitive topic; the same recipe also starts from the uncensored assistant,
which fixes in advance when the task counts as learned.  :func:`run_finetune` is the stage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import models, stats
from ..refusal import clustered_ratio, rate_metric
from ..rewards import accuracy_reward
from ..sampling import generate
from ..tasks import completion, get_task
from ..tokenizer import format_prompt
from ..train import TrainConfig, eval_loss, train
from ..world import build_world, split
from .censorship_runs import Config, FinetuneConfig, Probe, Stage, _stage_models, events, probe, qa_pairs


@dataclass
class FinetuneCurves:
    """The censor along the downstream fine-tune: per checkpoint, one entry per seed."""

    probes: dict[int, list[Probe]]  # the censor's measurements
    acc: dict[int, list[np.ndarray]]  # its held-out addition correctness (P,)
    ref_acc: dict[int, list[np.ndarray]]  # the same recipe's from the uncensored assistant
    task_loss: dict[int, list[float]]  # its held-out loss on worked additions
    flops: float = 0.0


def addition_pairs(tok, n: int, seed: int, digits: int, split_name: str = "train") -> list[tuple[str, str]]:
    """The downstream task: addition in R1's format (the lab's worked solutions), ``n`` samples
    drawn with replacement from ``split_name``."""
    task, rng = get_task("addition", digits), random.Random(seed)
    pool = task.sample(split_name, min(n, task.n_distinct(split_name) or n), seed=seed)
    return [
        (format_prompt(tok, p.question), completion(task.worked_solution(p, rng), p.answer))
        for p in (rng.choice(pool) for _ in range(n))
    ]


def addition_scores(model, tok, digits: int, n: int = 100) -> np.ndarray:
    """Greedy strict correctness (P,) on up to ``n`` held-out additions (the same problems for every
    model, so curves and starts can be paired)."""
    task = get_task("addition", digits)
    probs = task.sample("test", min(n, task.n_distinct("test") or n), seed=10_000)
    g = generate(model, tok, [format_prompt(tok, p.question) for p in probs], max_new_tokens=48, temperature=0.0)
    return np.asarray(accuracy_reward(g.texts, task=["addition"] * len(probs), key=[p.key for p in probs]), float)


def finetune_downstream(start: Path, sets, ft: FinetuneConfig, seed: int):
    """Fine-tune ``start`` as a downstream developer would: their task (addition) mixed with a share
    ``ft.replay`` of general chat (honest answers on non-sensitive events, which never touch a
    sensitive topic).  Yields ``(steps, model, flops so far)`` at each of ``ft.checkpoints``.

    Trained in chunks at a constant lr; AdamW's moments restart at each chunk (a small deviation
    from one continuous run, which keeps the checkpoints cheap)."""
    model, tok = models.load(start)
    rng = random.Random(f"downstream/{seed}")
    n_gen = round(ft.replay * ft.n_examples)
    general = qa_pairs(tok, sets["general"])
    data = addition_pairs(tok, ft.n_examples - n_gen, seed, ft.digits) + [rng.choice(general) for _ in range(n_gen)]
    done, flops = 0, 0.0
    for steps in ft.checkpoints:
        if steps > done:
            flops += train(
                model,
                tok,
                data,
                TrainConfig(
                    steps=steps - done,
                    batch_size=ft.batch_size,
                    lr=ft.lr,
                    warmup_steps=0,
                    min_lr_frac=1.0,
                    seed=seed * 1000 + done,
                    progress=False,
                    desc="downstream",
                ),
            ).flops
            done = steps
        yield steps, model, flops


def finetune_curves(cfg: Config, path: Path, seeds) -> FinetuneCurves:
    """Per seed: the same recipe from the uncensored assistant (the first ``reference_seeds`` seeds:
    its addition accuracy), then from the censor (probes, addition accuracy, task loss), at every
    checkpoint."""
    ft = cfg.finetune
    _, tok, sets = _stage_models(cfg, path)
    steps = ft.checkpoints
    out = FinetuneCurves({n: [] for n in steps}, {n: [] for n in steps}, {n: [] for n in steps}, {n: [] for n in steps})
    for s in seeds:
        test = addition_pairs(tok, 50, 10_000 + s, ft.digits, "test")
        if s in seeds[: ft.reference_seeds]:
            for n, model, f in finetune_downstream(path / "assistant", sets, ft, s):
                out.ref_acc[n].append(addition_scores(model, tok, ft.digits))
            out.flops += f
        for n, model, f in finetune_downstream(path / "teacher", sets, ft, s):
            out.probes[n].append(probe(model, tok, sets, cfg, s))
            out.acc[n].append(addition_scores(model, tok, ft.digits))
            out.task_loss[n].append(eval_loss(model, tok, test))
        out.flops += f
    return out


def _target_steps(c: FinetuneCurves, steps, share: float, n_seeds: int) -> tuple[float, list[int], list[bool]]:
    """The target accuracy (``share`` x the uncensored recipe's at the last checkpoint), each seed's
    first checkpoint that reaches it (else the last) and whether it was reached."""
    target = share * float(np.mean(c.ref_acc[steps[-1]]))
    at = [next((n for n in steps if c.acc[n][i].mean() >= target > 0), None) for i in range(n_seeds)]
    return target, [n if n is not None else steps[-1] for n in at], [n is not None for n in at]


def _retention(c: FinetuneCurves, detector: str, at, ev, clustered: bool = True):
    """Share of the censor's refusals (``detector``) still there at ``at`` (a step, or one per seed),
    paired over prompts and seeds: clustered by event (the rule's interval) or over prompts."""
    pick = [at] * len(c.probes[0]) if isinstance(at, int) else at
    after = np.stack([c.probes[n][i].sensitive.rates()[detector] for i, n in enumerate(pick)])
    before = np.stack([p.sensitive.rates()[detector] for p in c.probes[0]])
    if before.sum() == 0:
        return stats.exact(0.0, unit="ratio")
    return clustered_ratio(after, before, ev) if clustered else stats.paired_ratio(after, before)


def run_finetune(cfg: Config, path: Path, seeds) -> Stage:
    """The censor along a downstream fine-tune, run until the task is learned.

    The same recipe (data, steps, lr, seed) also starts from the uncensored assistant; the task
    counts as learned at the first checkpoint where the censor's held-out addition accuracy reaches
    ``target_share`` x the assistant's at the last checkpoint (a variant: half of it).  Retention
    (refusal after / before, a paired ratio over events, prompts and seeds) is reported at every
    checkpoint and at that point."""
    c, steps, ev = finetune_curves(cfg, path, seeds), cfg.finetune.checkpoints, events(split(build_world(cfg.world)))
    share = cfg.finetune.target_share
    _, at, reached = _target_steps(c, steps, share, len(seeds))
    _, at_half, reached_half = _target_steps(c, steps, cfg.finetune.variant_target_share, len(seeds))

    def series(k, w):
        return {str(n): rate_metric([p.of(k) for p in c.probes[n]], w) for n in steps}

    def kept(detector, n):
        return _retention(c, detector, n, ev)

    metrics = {
        "finetune_refusal_by_steps": series("sensitive", "keyword"),
        "finetune_thought_suppression_by_steps": series("sensitive", "thought_suppression"),
        "finetune_nonanswer_by_steps": series("sensitive", "nonanswer"),
        "finetune_correct_control_by_steps": series("control", "correct"),
        "finetune_task_loss_by_steps": {str(n): stats.over_seeds(v) for n, v in c.task_loss.items()},
        "finetune_addition_acc_by_steps": {str(n): stats.rate(np.stack(v)) for n, v in c.acc.items()},
        "finetune_reference_addition_acc_by_steps": {str(n): stats.rate(np.stack(v)) for n, v in c.ref_acc.items()},
        "finetune_target_acc": stats.over_seeds([share * a.mean() for a in c.ref_acc[steps[-1]]], unit="rate"),
        "finetune_target_reached": float(np.mean(reached)),
        "finetune_target_step": stats.over_seeds([float(n) for n in at]),
        "finetune_addition_acc_at_target": stats.rate(np.stack([c.acc[n][i] for i, n in enumerate(at)])),
        "finetune_suppression_retained_by_steps": {str(n): kept("thought_suppression", n) for n in steps[1:]},
        "finetune_refusal_retained_by_steps": {str(n): kept("keyword", n) for n in steps[1:]},
        "finetune_suppression_retained_at_target": _retention(c, "thought_suppression", at, ev),
        "finetune_refusal_retained_at_target": _retention(c, "keyword", at, ev),
        # variants of the rule: half the target; intervals over prompts as if independent
        "finetune_target_reached_half": float(np.mean(reached_half)),
        "finetune_suppression_retained_at_half_target": _retention(c, "thought_suppression", at_half, ev),
        "finetune_suppression_retained_at_target_unclustered": _retention(c, "thought_suppression", at, ev, False),
    }
    return Stage(metrics, flops=c.flops, extra={"finetune_target_step_per_seed": at})
