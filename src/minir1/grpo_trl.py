"""The same GRPO experiment run through ``trl.GRPOTrainer`` (TRL 1.16), and a throughput benchmark.

:func:`train_grpo_trl` has the same signature and history keys as :func:`minir1.grpo.train_grpo`
(this module imports :mod:`minir1.grpo`, never the reverse; an experiment picks the engine by
picking the function). We map our
:class:`~minir1.grpo.GRPOConfig` onto ``trl.GRPOConfig`` field by field (:func:`to_trl_config`),
feed TRL a ``datasets.Dataset`` with columns ``prompt``/``task``/``key`` and our reward functions
unchanged (TRL passes dataset columns to them as keyword lists, the signature we use), and turn
TRL's log into our history records. Differences that remain, by design:

* one of our steps is one rollout followed by μ optimizer steps; TRL counts optimizer steps,
  so ``max_steps = steps × μ`` and we merge every μ TRL log entries into one record;
* TRL computes KL only when β > 0, so ``kl`` is nan there when ``kl_coef = 0``;
* TRL samples with ``model.generate`` and scores with a fused LM head; we sample with
  :func:`minir1.sampling.generate`. The loss is the same to 1e-5 (``tests/test_grpo_trl.py``).

TRL needs a reference model it can load from a path when β > 0: we save it to a temporary
folder (no download, ever). TRL is a test/benchmark extra, imported only here.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import tempfile
import time
import warnings
from typing import Sequence

import torch
from tqdm import tqdm

from minir1.grpo import GRPOConfig, GRPOResult, format_line, func_name, prepare, train_grpo
from minir1.utils import progress_bars

_ROLLOUT_KEYS = ("reward", "reward_std", "len", "len_correct", "len_incorrect", "frac_zero_std")


def problems_dataset(tokenizer, problems: Sequence, template: str = "compact"):
    """A ``datasets.Dataset`` with the templated ``prompt`` and the ``task``/``key`` of each problem."""
    from datasets import Dataset

    from minir1.tokenizer import format_prompt

    return Dataset.from_dict(
        {
            "prompt": [format_prompt(tokenizer, p.question, template=template) for p in problems],
            "task": [p.task for p in problems],
            "key": [p.key for p in problems],
        }
    )


def to_trl_config(cfg: GRPOConfig, *, output_dir: str, seed: int, reward_weights: list[float], use_cpu: bool = True):
    """Our config as a ``trl.GRPOConfig``: constant lr, one process, no saving, no reporting."""
    import trl

    return trl.GRPOConfig(
        output_dir=output_dir,
        report_to="none",
        use_cpu=use_cpu,
        seed=seed,
        data_seed=seed,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        log_completions=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        bf16=False,
        fp16=False,
        max_steps=cfg.steps * cfg.num_iterations,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=1,
        num_generations=cfg.group_size,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant",
        optim="adamw_torch",
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_betas[0],
        adam_beta2=cfg.adam_betas[1],
        max_grad_norm=cfg.max_grad_norm,
        beta=cfg.kl_coef,
        use_bias_correction_kl=cfg.kl_ratio_correction,
        epsilon=cfg.clip_eps_low,
        epsilon_high=cfg.eps_high,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        num_iterations=cfg.num_iterations,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_completion_length=cfg.max_completion_length,
        reward_weights=reward_weights,
    )


def _accuracy_probe(name: str, f, log_lengths: bool):
    """Wrap an accuracy function as a zero-weight TRL reward that also logs lengths of right/wrong answers."""

    def probe(completions, task, key, completion_ids=None, log_metric=None, **kw):
        r = [float(x) for x in f(completions, task=task, key=key)]
        if log_lengths and log_metric is not None and completion_ids is not None:
            for label, keep in (("len_correct", True), ("len_incorrect", False)):
                lens = [len(c) for c, x in zip(completion_ids, r) if (x > 0) == keep]
                if lens:
                    log_metric(label, sum(lens) / len(lens))
        return r

    probe.__name__ = f"acc_{name}"
    return probe


def _record(
    logs: list[dict], step: int, names: list[str], acc_names: list[str], B: int, step_s: float, wall_s: float
) -> dict:
    """One history record (our keys) from the μ TRL log entries of one rollout."""
    first, nan = logs[0], math.nan
    rec = {
        "step": step,
        "loss": sum(g["loss"] for g in logs) / len(logs),
        "reward": first.get("reward", nan),
        "reward_std": first.get("reward_std", nan),
    }
    rec.update({f"reward_{n}": first.get(f"rewards/{n}/mean", nan) for n in names})
    rec.update({f"acc_{n}": first.get(f"rewards/acc_{n}/mean", nan) for n in acc_names})
    rec.update(
        len=first.get("completions/mean_length", nan),
        len_correct=first.get("len_correct", nan),
        len_incorrect=first.get("len_incorrect", nan),
    )
    for ours, theirs in (("kl", "kl"), ("clip_frac", "clip_ratio/region_mean"), ("grad_norm", "grad_norm")):
        vals = [g[theirs] for g in logs if g.get(theirs) is not None]
        rec[ours] = sum(vals) / len(vals) if vals else nan
    rec["frac_zero_std"] = first.get("frac_reward_zero_std", nan)
    rec["tokens"] = int(round(rec["len"] * B)) if rec["len"] == rec["len"] else 0
    rec["prompt_tokens"] = first.get("prompt_tokens", nan)  # TRL logs no prompt count: the key is kept
    rec.update(tok_per_s=rec["tokens"] / max(step_s, 1e-9), sample_s=nan, step_s=step_s, wall_s=wall_s)
    return rec


def _recorder(cfg: GRPOConfig, names, acc_names, eval_fn, history: list, evals: list):
    """A ``TrainerCallback`` that builds our history, prints our log line, runs ``eval_fn`` and a tqdm bar."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            self.t0, self.pending, self.step_s = time.perf_counter(), [], 0.0
            self.bar = tqdm(
                total=cfg.steps, desc="GRPO (TRL)", unit="step", disable=cfg.log_every == 0 or not progress_bars()
            )
            if eval_fn is not None:
                evals.append({"step": 0, **eval_fn(model)})

        def on_step_begin(self, args, state, control, **kw):
            self.t_step = time.perf_counter()

        def on_log(self, args, state, control, logs=None, model=None, **kw):
            if not logs or "loss" not in logs:
                return  # the end-of-training summary
            self.pending.append(dict(logs))
            self.step_s += time.perf_counter() - self.t_step
            if state.global_step % cfg.num_iterations:
                return
            step = state.global_step // cfg.num_iterations
            rec = _record(
                self.pending, step, names, acc_names, cfg.batch_size, self.step_s, time.perf_counter() - self.t0
            )
            history.append(rec)
            self.pending, self.step_s = [], 0.0
            self.bar.update(1)
            if cfg.log_every and step % cfg.log_every == 0:
                tqdm.write(format_line(rec))
            if eval_fn is not None and (step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0)):
                evals.append({"step": step, **eval_fn(model)})

        def on_train_end(self, args, state, control, **kw):
            self.bar.close()

    return Recorder()


@contextlib.contextmanager
def _quiet():
    """Silence TRL/transformers deprecation warnings and weight-loading progress bars."""
    from transformers.utils import logging as hf_logging

    was_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            yield
        finally:
            if not was_disabled:
                hf_logging.enable_progress_bar()


def make_trl_trainer(
    model,
    tokenizer,
    problems,
    reward_funcs,
    cfg: GRPOConfig,
    *,
    workdir: str,
    seed: int = 0,
    ref_model=None,
    accuracy_funcs: dict | None = None,
    callbacks=(),
):
    """A ``trl.GRPOTrainer`` for our experiment (β > 0: the reference is saved under ``workdir``)."""
    import trl
    from transformers import PrinterCallback

    acc = dict(accuracy_funcs or {})
    probes = [_accuracy_probe(n, f, i == 0) for i, (n, f) in enumerate(acc.items())]
    weights = list(cfg.reward_weights or [1.0] * len(reward_funcs)) + [0.0] * len(probes)
    args = to_trl_config(
        cfg,
        output_dir=workdir,
        seed=seed,
        reward_weights=weights,
        use_cpu=next(model.parameters()).device.type == "cpu",
    )
    old_name = getattr(model.config, "_name_or_path", "")
    if cfg.kl_coef > 0:  # TRL loads its reference from a path: give it a local one
        (ref_model if ref_model is not None else model).save_pretrained(f"{workdir}/ref")
        model.config._name_or_path = f"{workdir}/ref"
    try:
        trainer = trl.GRPOTrainer(
            model=model,
            reward_funcs=list(reward_funcs) + probes,
            args=args,
            train_dataset=problems_dataset(tokenizer, problems, cfg.template),
            processing_class=tokenizer,
            callbacks=list(callbacks),
        )
    finally:
        model.config._name_or_path = old_name
    trainer.remove_callback(PrinterCallback)
    return trainer


def unpatch(model) -> None:
    """Undo TRL's instance-level ``forward`` patch (its fused LM head) so the model is plain again."""
    model.__dict__.pop("forward", None)


def train_grpo_trl(
    model,
    tokenizer,
    train_problems: Sequence,
    reward_funcs,
    cfg: GRPOConfig | None = None,
    *,
    eval_problems: Sequence | None = None,
    ref_model=None,
    eval_fn=None,
    accuracy_funcs=None,
    seed: int = 0,
) -> GRPOResult:
    """Train with ``trl.GRPOTrainer``; same inputs and outputs as :func:`minir1.grpo.train_grpo`."""
    cfg, reward_funcs, eval_fn, accuracy_funcs = prepare(
        tokenizer,
        train_problems,
        reward_funcs,
        cfg,
        eval_problems=eval_problems,
        eval_fn=eval_fn,
        accuracy_funcs=accuracy_funcs,
    )
    problems = train_problems
    acc = dict(accuracy_funcs or {})
    names = [func_name(f) for f in reward_funcs]
    history, evals = [], []
    cb = _recorder(cfg, names, list(acc), eval_fn, history, evals)
    with tempfile.TemporaryDirectory(prefix="minir1-trl-") as workdir, _quiet():
        trainer = make_trl_trainer(
            model,
            tokenizer,
            problems,
            reward_funcs,
            cfg,
            workdir=workdir,
            seed=seed,
            ref_model=ref_model,
            accuracy_funcs=acc,
            callbacks=[cb],
        )
        try:
            trainer.train()
        finally:
            unpatch(model)
    model.eval()
    return GRPOResult(model=model, history=history, evals=evals)


# ---- benchmark ----------------------------------------------------------------------------


class _ToyProblem:
    """A prompt whose reward is 1 when the completion starts with "7" (any task, learnable in a few steps)."""

    task, key = "toy", "7"

    def __init__(self, i: int):
        self.question = f"say seven ({i})"


def seven_reward(completions, task=None, key=None, **kw) -> list[float]:
    """1.0 when a completion starts with "7", else 0.0."""
    return [float(c[:1] == "7") for c in completions]


def benchmark_grpo(
    model=None,
    tokenizer=None,
    problems=None,
    reward_funcs=None,
    cfg: GRPOConfig | None = None,
    *,
    steps: int = 3,
    seed: int = 0,
    warmup: int = 0,
) -> dict:
    """Throughput of our trainer vs ``trl.GRPOTrainer`` on the same model, task, G, batch and lengths.

    Defaults: the ``nano`` model on a toy task, G = 8, 32 completions of up to 32 tokens, 3 steps.
    Rates use the summed step times (sampling + update), excluding trainer construction and
    the first ``warmup`` steps of each engine (lazy initialisation, first-call allocations).
    """
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup must be in [0, steps - 1] = [0, {steps - 1}]; got {warmup!r}")
    if tokenizer is None:
        from minir1.tokenizer import build_tokenizer

        tokenizer = build_tokenizer()
    if model is None:
        from minir1.models import build

        model = build("nano", tokenizer, seed=seed)
    problems = problems or [_ToyProblem(i) for i in range(64)]
    reward_funcs = reward_funcs or [seven_reward]
    cfg = cfg or GRPOConfig(group_size=8, batch_size=32, max_completion_length=32, log_kl=False, log_every=0)
    cfg = dataclasses.replace(cfg, steps=steps, log_every=0)
    out = {"config": cfg.to_dict(), "threads": torch.get_num_threads()}
    for engine, train in (("minir1", train_grpo), ("trl", train_grpo_trl)):
        t = time.perf_counter()
        res = train(copy.deepcopy(model), tokenizer, problems, reward_funcs, cfg, accuracy_funcs={}, seed=seed)
        timed = res.history[warmup:]
        busy = sum(r["step_s"] for r in timed)
        out[engine] = {
            "steps_per_s": len(timed) / busy,
            "tok_per_s": sum(r["tokens"] for r in timed) / busy,
            "step_s": busy / len(timed),
            "total_s": time.perf_counter() - t,
        }
    out["speedup_steps"] = out["minir1"]["steps_per_s"] / out["trl"]["steps_per_s"]
    out["speedup_tokens"] = out["minir1"]["tok_per_s"] / out["trl"]["tok_per_s"]
    return out
