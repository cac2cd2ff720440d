"""Counts of the shared recipes' work, for the chapters' gpu time estimates.

Each chapter module's ``estimate_gpu(cfg, n_seeds)`` lists its work as
:class:`minir1.gpu_estimate.Stage` counts built here (pretraining a base, scoring its
capability, a GRPO run, an evaluation) and hands them to :func:`minir1.gpu_estimate.estimate`.
This module imports the recipes' config types only, never a chapter.  The counts are upper
bounds where lengths vary: every completion is counted at its maximum length.
"""

from __future__ import annotations

from ... import models
from ...gpu_estimate import Stage, generation, llama_params, training
from ...grpo import GRPOConfig
from ...train import TrainConfig

VOCAB = 104  # the book's character tokenizer (len(minir1.tokenizer.build_tokenizer()))
PROMPT_TOKENS = 32  # a generous prompt length of the book's tasks (compact template)
EVAL_BATCH = 256  # rows per sampling call of minir1.evaluation (its batch_size default)


def preset_size(preset: str) -> tuple[int, int]:
    """``(parameters, layers)`` of a :data:`minir1.models.PRESETS` model with the book's tokenizer."""
    p = models.PRESETS[preset]
    return llama_params(p.d_model, p.n_layer, p.d_ff, VOCAB), p.n_layer


def pretrain(name: str, preset: str, train: TrainConfig, seq_len: float | None = None) -> Stage:
    """Training ``preset`` with ``train`` (packed windows of ``train.seq_len``, else ``seq_len`` tokens)."""
    n, layers = preset_size(preset)
    return training(name, n, layers, train.steps, train.batch_size, train.seq_len if train.pack else seq_len or 64)


def sample(name: str, preset: str, n_sequences: float, new_tokens: int, batch: int = EVAL_BATCH) -> Stage:
    """Sampling ``n_sequences`` completions of ``new_tokens`` from ``preset``."""
    n, layers = preset_size(preset)
    return generation(name, n, layers, n_sequences, new_tokens, batch)


def capability(name: str, lab_cfg, n_seeds: int) -> Stage:
    """:func:`minir1.experiments.recipes.base.capability` of one model: greedy once, two samplings per seed."""
    per_task = lab_cfg.n_eval * (1 + 2 * lab_cfg.n_samples * n_seeds)
    return sample(name, lab_cfg.preset, per_task * len(lab_cfg.tasks), lab_cfg.max_new_tokens)


def grpo_run(name: str, preset: str, g: GRPOConfig, n_curve: float, runs: int = 1) -> list[Stage]:
    """``runs`` GRPO runs of ``g``: rollouts, the policy update (and the KL forward), the curve evaluations."""
    n, layers = preset_size(preset)
    rollouts = generation(
        f"{name}: rollouts", n, layers, runs * g.steps * g.batch_size, g.max_completion_length, g.gen_batch_size
    )
    seq = PROMPT_TOKENS + g.max_completion_length
    update = training(f"{name}: updates", n, layers, runs * g.steps * g.num_iterations, g.batch_size, seq)
    n_evals = (g.steps // g.eval_every + 2) if g.eval_every else 2
    curve = generation(f"{name}: curves", n, layers, runs * n_evals * n_curve, g.max_completion_length, EVAL_BATCH)
    stages = [rollouts, update, curve]
    if g.log_kl or g.kl_coef:
        stages.append(Stage(f"{name}: reference", n, layers, gen_tokens=runs * g.steps * g.batch_size * seq))
    return stages
