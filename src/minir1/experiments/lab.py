"""The miniature lab: the base models every experiment chapter starts from.

:func:`base_model` returns the pretrained "vanilla" base for a profile (and optionally a
preset size), training it with :mod:`minir1.train` on :mod:`minir1.corpus` the first time
and reusing it from the artifact cache afterwards.  A chapter whose base is missing
therefore trains it at its own profile's size instead of failing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch

from .. import artifacts, models
from ..corpus import CorpusConfig, build_corpus
from ..profiles import check_profile
from ..tokenizer import build_tokenizer
from ..train import TrainConfig, train
from ..utils import device, device_name, seed_everything


@dataclass(frozen=True)
class LabConfig:
    preset: str = "micro"                            # model size (see minir1.models.PRESETS)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1200, batch_size=32, lr=2e-3,
                                                                   pack=True, seq_len=128, desc="pretrain"))
    seed: int = 0                                    # model initialisation


LAB_PROFILES: dict[str, LabConfig] = {
    "smoke": LabConfig(preset="nano", corpus=CorpusConfig(n_docs=3000),
                       train=TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup_steps=10, pack=True,
                                         seq_len=128, desc="pretrain", log_every=20)),
    "cpu": LabConfig(),
    "gpu": LabConfig(preset="mini", corpus=CorpusConfig(n_docs=200_000),
                     train=TrainConfig(steps=4000, batch_size=64, lr=1e-3, pack=True, seq_len=256,
                                       warmup_steps=100, desc="pretrain")),
}


# Held-out evaluation sizes per profile: (problems per task, samples per problem).
EVAL_SIZES = {"smoke": (8, 16), "cpu": (200, 16), "gpu": (500, 64)}


def lab_config(profile: str, *, preset: str | None = None, seed: int = 0) -> LabConfig:
    """The lab configuration of ``profile``, optionally at another model ``preset``."""
    cfg = LAB_PROFILES[check_profile(profile)]
    if preset is not None:
        models._check_preset(preset)
        cfg = replace(cfg, preset=preset)
    return replace(cfg, seed=seed, train=replace(cfg.train, seed=seed), corpus=replace(cfg.corpus, seed=seed))


def _build_base(cfg: LabConfig):
    def build(folder):
        seed_everything(cfg.seed)
        tok = build_tokenizer()
        model = models.build(cfg.preset, tok, seed=cfg.seed).to(device())
        docs = [("", d) for d in build_corpus(cfg.corpus)]
        res = train(model, tok, docs, cfg.train)
        models.save(model.cpu(), tok, folder)
        return {"params": models.n_params(model), "tokens": res.tokens, "flops": res.flops,
                "wall_seconds": res.wall_seconds, "history": res.history, "device": device_name(),
                "threads": torch.get_num_threads()}
    return build


def base_model(profile: str, *, preset: str | None = None, seed: int = 0, force: bool = False):
    """``(model, tokenizer, meta)`` of the pretrained base for ``profile``; trains it if missing.

    ``meta`` holds the training history, tokens, FLOPs and wall time of the (cached) run.
    """
    cfg = lab_config(profile, preset=preset, seed=seed)
    conf = asdict(cfg)
    path = artifacts.cached("base", conf, _build_base(cfg), force=force)
    model, tok = models.load(path, device=device())
    return model, tok, artifacts.load_meta(path)


# ----------------------------------------------------------------------------- capability
LAB_TASKS: tuple[tuple[str, int], ...] = (("addition", 3), ("countdown", 3))  # (task, difficulty)
MAX_NEW_TOKENS = 96  # longest completion we sample (a tagged countdown search fits in ~80)


def heldout(task: str, difficulty: int, profile: str, seed: int = 1234) -> list:
    """The held-out problems a profile evaluates on (test split; fixed across chapters)."""
    from ..tasks import get_task

    n, _ = EVAL_SIZES[check_profile(profile)]
    return get_task(task, difficulty).sample("test", n, seed=seed)


def capability(model, tokenizer, profile: str, seeds=(0, 1, 2), tasks=LAB_TASKS, template: str = "compact") -> dict:
    """Held-out capability per task: sampled (T = 1) strict/lenient accuracy, pass@k, format
    rate over ``seeds`` (bootstrap CIs over problems and seeds), and greedy accuracy.

    Returns ``{task: {"sampled": summary, "greedy": EvalResult, "runs": [EvalResult, ...]}}``.
    """
    from ..evaluation import evaluate, summarize

    _, n_samples = EVAL_SIZES[check_profile(profile)]
    out = {}
    for name, difficulty in tasks:
        problems = heldout(name, difficulty, profile)
        runs = [evaluate(model, tokenizer, problems, n_samples=n_samples, temperature=1.0, seed=s,
                         ks=(1, 4, 16), max_new_tokens=MAX_NEW_TOKENS, template=template) for s in seeds]
        greedy = evaluate(model, tokenizer, problems, n_samples=1, temperature=0.0, ks=(1,),
                          max_new_tokens=MAX_NEW_TOKENS, template=template)
        out[name] = {"sampled": summarize(runs), "greedy": greedy, "runs": runs}
    return out


def capability_metrics(cap: dict) -> dict:
    """Results-file metrics from :func:`capability`: series keyed by task name."""
    from ..results import metric

    def series(key):
        return {t: c["sampled"][key] for t, c in cap.items() if key in c["sampled"]}

    return {
        "base_pass_at_1": series("pass@1"),
        "base_pass_at_16": series("pass@16"),
        "base_pass_at_1_lenient": series("pass@1_lenient"),
        "base_pass_at_16_lenient": series("pass@16_lenient"),
        "base_format_rate": series("format"),
        "base_format_rate_lenient": series("format_lenient"),
        "base_greedy_acc": {t: metric([c["greedy"].acc]) for t, c in cap.items()},
        "base_greedy_acc_lenient": {t: metric([c["greedy"].acc_lenient]) for t, c in cap.items()},
        "base_mean_len": {t: metric([float(sum(r.tokens_generated for r in c["runs"]))
                                     / sum(len(r.correct) * r.n_samples for r in c["runs"])]) for t, c in cap.items()},
    }


def mfu_comparable(meta: dict) -> bool:
    """MFU compares a training run with this machine's measured matmul peak; that is only
    meaningful when the run used the same number of threads as the measurement now does."""
    return meta.get("threads") == torch.get_num_threads()


def lab_metrics(meta: dict, cap: dict, peak_flops_per_s: float) -> dict:
    """All metrics of the lab chapter: the base's size and cost, and its capability.

    ``base_train_mfu`` is left out (rather than guessed) when the cached base was trained
    with another thread count than the peak was measured with, or when the measured peak is
    below the achieved rate (a peak measured under load).
    """
    achieved = meta["flops"] / meta["wall_seconds"]
    out = {
        "base_params": meta["params"], "base_train_tokens": meta["tokens"],
        "base_train_flops": meta["flops"], "base_train_wall_seconds": meta["wall_seconds"],
        "base_train_flops_per_s": achieved, "machine_matmul_flops_per_s": peak_flops_per_s,
        "base_final_train_loss": meta["history"][-1]["loss"],
        **capability_metrics(cap),
    }
    if mfu_comparable(meta) and achieved <= peak_flops_per_s:
        out["base_train_mfu"] = achieved / peak_flops_per_s
    # An "MFU" above 1 means the peak was measured under load (or is stale): report none
    # rather than a wrong number, as nanochat does for unknown peaks.
    return out


def eval_flops(cap: dict, n_params: int) -> float:
    """Forward FLOPs of the evaluation samples (2·N per generated token, prompts ignored)."""
    toks = sum(r.tokens_generated for c in cap.values() for r in [*c["runs"], c["greedy"]])
    return 2.0 * n_params * toks


def lab_extra(meta: dict, cap: dict) -> dict:
    """What the chapter shows besides metrics: loss history and sample completions."""
    return {"loss_history": meta["history"],
            "samples": {t: c["runs"][0].samples for t, c in cap.items()},
            "greedy_samples": {t: c["greedy"].samples for t, c in cap.items()}}


def verdicts(metrics: dict) -> list[dict]:
    """The lab's precondition check: does the base leave room for RL on every task?

    Room means: sampled strict pass@1 is low but not zero (between 0.5% and 50%) and
    pass@16 is clearly higher (its CI lies above pass@1's CI).
    """
    from ..results import claim

    ok, parts = [], []
    for task, p1 in metrics["base_pass_at_1"].items():
        p16 = metrics["base_pass_at_16"][task]
        room = 0.005 <= p1["mean"] <= 0.5 and p16["ci95"][0] > p1["ci95"][1]
        ok.append(room)
        parts.append(f"{task}: pass@1 {p1['mean']:.1%} [{p1['ci95'][0]:.1%}, {p1['ci95'][1]:.1%}], "
                     f"pass@16 {p16['mean']:.1%} [{p16['ci95'][0]:.1%}, {p16['ci95'][1]:.1%}]")
    verdict = "supported" if all(ok) else ("partly supported" if any(ok) else "not supported")
    return [claim("lab-room-for-rl", verdict,
                  "Held-out strict (R1-format) accuracy of the base, sampled at T = 1 — " + "; ".join(parts) + ".")]
