"""Benchmarks (not timed tests): ``python -m minir1.bench`` or ``make bench``.

Writes ``bench.json`` (same contract as a chapter's results; ``.artifacts/bench.json`` by
default, ``book/results/bench.json`` with ``--out-dir book/results`` as ``make bench`` does):

* **roofline**: for each model preset, achieved FLOP/s as a fraction of this machine's
  measured fp32 matmul FLOP/s (:func:`minir1.cost.machine_peak`, measured in the same run),
  for training (6·N per token plus attention) and for decoding with our sampler (2·N per
  token plus attention over the context);
* **sampler vs Hugging Face** ``generate`` at the shape GRPO uses (prompts × G rows, T = 1,
  eos suppressed so that both sample exactly the same number of tokens), and whether greedy
  decoding gives the same tokens;
* **GRPO vs TRL**'s ``GRPOTrainer`` (:func:`minir1.grpo_trl.benchmark_grpo`): steps/s on the
  same model, task, group size, batch and lengths.

Each comparison is measured side by side (ours, then theirs, in the same process and repeat)
``repeats`` times; a speed-up is the ratio within each repeat, reported as the mean over
repeats with a bootstrap interval (:func:`minir1.stats.over_seeds`). Intra-op threads are
set once (``--threads``, default 1) and recorded in the config.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import asdict, dataclass, field

import torch

from . import models
from .cost import MatmulBench, matmul_flops_samples
from .profiles import check_profile
from .results import write_record
from .sampling import generate, set_threads
from .stats import over_seeds
from .tokenizer import build_tokenizer, format_prompt
from .train import TrainConfig, train
from .utils import repo_root

PRESETS = ("pico", "nano", "micro", "mini")


@dataclass
class BenchConfig:
    """What ``make bench`` measures (the ``smoke`` profile shrinks it to a quick check)."""

    presets: tuple[str, ...] = PRESETS
    repeats: int = 3  # side-by-side repeats of every comparison
    threads: int = 1  # intra-op threads, set once for the whole run
    train_steps: int = 8  # training steps per repeat (roofline)
    train_batch: int = 32
    train_seq_len: int = 128
    sampler_preset: str = "micro"  # sampler vs HF and GRPO vs TRL run on this model
    prompts: int = 8  # distinct prompts per sampling call
    group: int = 8  # samples per prompt (GRPO's G): prompts × group rows
    new_tokens: int = 64
    temperature: float = 1.0
    grpo_steps: int = 4  # GRPO steps per engine and repeat (the first is a warm-up, not timed)
    grpo: bool = True
    results_profile: str = "cpu"  # the profile recorded in bench.json
    matmul: MatmulBench = field(default_factory=MatmulBench)  # the peak the roofline divides by


def config(profile: str) -> BenchConfig:
    """The benchmark of a profile (``smoke``: two small presets, short runs)."""
    check_profile(profile)
    matmul = MatmulBench(n=512, repeats=5) if profile == "smoke" else MatmulBench()
    base = {"results_profile": profile, "matmul": matmul}
    if profile == "smoke":
        return BenchConfig(presets=("pico", "nano"), repeats=2, train_steps=2, new_tokens=8, grpo_steps=2, **base)
    return BenchConfig(**base)


def _docs(n: int = 4000) -> list[tuple[str, str]]:
    rng = random.Random(0)
    return [("", f"{rng.randint(100, 999)}+{rng.randint(100, 999)}") for _ in range(n)]


def bench_training(preset: str, cfg: BenchConfig, seed: int) -> dict:
    """Training tokens/s and FLOP/s (:func:`minir1.train.train`'s count) of ``preset``, one repeat."""
    tok = build_tokenizer()
    model = models.build(preset, tok, seed=seed)
    res = train(
        model,
        tok,
        _docs(),
        TrainConfig(
            steps=cfg.train_steps,
            batch_size=cfg.train_batch,
            pack=True,
            seq_len=cfg.train_seq_len,
            progress=False,
            seed=seed,
        ),
    )
    return {
        "params": models.n_params(model),
        "tokens_per_s": res.tokens / res.wall_seconds,
        "flops_per_s": res.flops / res.wall_seconds,
    }


def decode_flops(model, prompt_tokens: int, prompt_len: int, rows: int, new_tokens: int) -> float:
    """FLOPs of sampling ``new_tokens`` for ``rows`` rows after a prefill of ``prompt_tokens`` tokens.

    2·N per token through the weights (N = parameters, the tied embedding counted once as the
    output layer) plus 4·L·H·D per token and key for attention (scores and weighted sum).
    """
    c = model.config
    n = models.n_params(model)
    hd = c.num_attention_heads * (getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)
    per_key = 4.0 * c.num_hidden_layers * hd
    prefill = prompt_tokens * (2.0 * n + per_key * (prompt_len + 1) / 2)
    ctx = sum(prompt_len + t + 1 for t in range(new_tokens))  # keys seen by each row's new tokens
    return prefill + rows * (2.0 * n * new_tokens + per_key * ctx)


def _no_eos(model, eos_id):
    bias = torch.zeros(model.config.vocab_size)
    bias[eos_id] = -1e9
    return model.lm_head.register_forward_hook(lambda m, i, out: out + bias.to(out.dtype))


def _prompts(tok, n: int) -> list[str]:
    return [format_prompt(tok, f"{100 + 7 * i}+{999 - 5 * i}") for i in range(n)]


def bench_decoding(preset: str, cfg: BenchConfig, seed: int) -> dict:
    """Our sampler's tokens/s and FLOP/s on ``preset`` at the GRPO shape (eos suppressed), one repeat."""
    tok = build_tokenizer()
    model = models.build(preset, tok, seed=0)
    handle = _no_eos(model, tok.eos_token_id)
    prompts = _prompts(tok, cfg.prompts)
    t = time.perf_counter()
    g = generate(
        model,
        tok,
        prompts,
        max_new_tokens=cfg.new_tokens,
        temperature=cfg.temperature,
        num_return_sequences=cfg.group,
        seed=seed,
    )
    dt = time.perf_counter() - t
    handle.remove()
    n_real = int(g.prompt_mask[:: cfg.group].sum())
    flops = decode_flops(model, n_real, g.prompt_ids.shape[1], len(g), cfg.new_tokens)
    return {"tokens_per_s": sum(g.n_tokens) / dt, "flops_per_s": flops / dt}


def bench_sampler(cfg: BenchConfig, seed: int) -> dict:
    """Our sampler vs HF ``generate``, side by side: same model, prompts, G, T and token count."""
    tok = build_tokenizer()
    model = models.build(cfg.sampler_preset, tok, seed=0)
    prompts = _prompts(tok, cfg.prompts)
    enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    handle = _no_eos(model, tok.eos_token_id)
    t = time.perf_counter()
    g = generate(
        model,
        tok,
        prompts,
        max_new_tokens=cfg.new_tokens,
        temperature=cfg.temperature,
        num_return_sequences=cfg.group,
        seed=seed,
    )
    ours = sum(g.n_tokens) / (time.perf_counter() - t)
    torch.manual_seed(seed)
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=cfg.new_tokens,
            min_new_tokens=cfg.new_tokens,
            do_sample=True,
            temperature=cfg.temperature,
            top_k=0,
            top_p=1.0,
            num_return_sequences=cfg.group,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    hf = (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0] / (time.perf_counter() - t)
    handle.remove()
    return {"ours_tokens_per_s": ours, "hf_tokens_per_s": hf, "speedup": ours / hf}


def greedy_matches_hf(cfg: BenchConfig) -> bool:
    """Whether our greedy decoding gives HF's greedy tokens on the benchmark's prompts."""
    tok = build_tokenizer()
    model = models.build(cfg.sampler_preset, tok, seed=0)
    prompts = _prompts(tok, cfg.prompts)
    enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    g = generate(model, tok, prompts, max_new_tokens=cfg.new_tokens, temperature=0)
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=cfg.new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    hf = out[:, enc["input_ids"].shape[1] :]
    return bool(torch.equal(hf[:, : g.completion_ids.shape[1]], g.completion_ids))


def bench_grpo(cfg: BenchConfig, seed: int) -> dict:
    """Our GRPO vs TRL's on the sampler model, G × prompts rows, ``new_tokens`` per completion.

    Same work on both sides: our skip of the backward pass for groups whose rewards are all
    equal (exact, and real in training) is switched off here, because on the benchmark's
    untrained model and toy reward most groups are such groups and the ratio would mostly
    measure the skip rather than the implementation.
    """
    from . import grpo
    from .grpo import GRPOConfig
    from .grpo_trl import benchmark_grpo

    tok = build_tokenizer()
    model = models.build(cfg.sampler_preset, tok, seed=0)
    gcfg = GRPOConfig(
        group_size=cfg.group,
        batch_size=cfg.group * cfg.prompts,
        max_completion_length=cfg.new_tokens,
        temperature=cfg.temperature,
        log_kl=False,
        log_every=0,
    )
    skip, grpo.SKIP_ZERO_ADVANTAGE_GROUPS = grpo.SKIP_ZERO_ADVANTAGE_GROUPS, False
    try:
        return benchmark_grpo(model, tok, cfg=gcfg, steps=cfg.grpo_steps, seed=seed, warmup=1)
    finally:
        grpo.SKIP_ZERO_ADVANTAGE_GROUPS = skip


def run(cfg: BenchConfig, *, out_dir=None) -> dict:
    """All benchmarks; writes ``bench.json`` under ``out_dir`` (default ``.artifacts``); returns its metrics."""
    set_threads(cfg.threads)
    t0 = time.time()
    peak_samples = matmul_flops_samples(cfg.matmul)  # measured now, beside the runs it divides
    peak = sorted(peak_samples)[len(peak_samples) // 2]
    train_mfu, decode_mfu, train_tps, decode_tps, params = {}, {}, {}, {}, {}
    for p in cfg.presets:
        tr = [bench_training(p, cfg, seed=r) for r in range(cfg.repeats)]
        de = [bench_decoding(p, cfg, seed=r) for r in range(cfg.repeats)]
        params[p] = tr[0]["params"]
        train_tps[p] = over_seeds([r["tokens_per_s"] for r in tr])
        train_mfu[p] = over_seeds([r["flops_per_s"] / peak for r in tr])
        decode_tps[p] = over_seeds([r["tokens_per_s"] for r in de])
        decode_mfu[p] = over_seeds([r["flops_per_s"] / peak for r in de])
    metrics = {
        "machine_matmul_flops_per_s": over_seeds(peak_samples),
        "train_mfu": train_mfu,
        "decode_mfu": decode_mfu,
        "train_tokens_per_s": train_tps,
        "decode_tokens_per_s": decode_tps,
    }
    s = [bench_sampler(cfg, seed=r) for r in range(cfg.repeats)]
    metrics["sampler_tokens_per_s_ours"] = over_seeds([r["ours_tokens_per_s"] for r in s])
    metrics["sampler_tokens_per_s_hf"] = over_seeds([r["hf_tokens_per_s"] for r in s])
    metrics["sampler_speedup_vs_hf"] = over_seeds([r["speedup"] for r in s], unit="ratio")
    metrics["sampler_greedy_matches_hf"] = float(greedy_matches_hf(cfg))
    extra = {"params": params, "sampler": s}
    if cfg.grpo:
        g = [bench_grpo(cfg, seed=r) for r in range(cfg.repeats)]
        metrics["grpo_steps_per_s_ours"] = over_seeds([r["minir1"]["steps_per_s"] for r in g])
        metrics["grpo_steps_per_s_trl"] = over_seeds([r["trl"]["steps_per_s"] for r in g])
        metrics["grpo_speedup_vs_trl"] = over_seeds([r["speedup_steps"] for r in g], unit="ratio")
        metrics["grpo_tokens_speedup_vs_trl"] = over_seeds([r["speedup_tokens"] for r in g], unit="ratio")
        extra["grpo"] = g
    out_dir = out_dir if out_dir is not None else repo_root() / ".artifacts"
    write_record(
        "bench",
        profile=cfg.results_profile,
        seeds=list(range(cfg.repeats)),
        config=asdict(cfg),
        metrics=metrics,
        claims=[],
        wall_seconds=time.time() - t0,
        flops=0.0,
        extra=extra,
        out_dir=out_dir,
    )
    return metrics


def roofline_rows(metrics: dict) -> list[dict]:
    """The roofline table: one row per preset, training and decoding as a fraction of the matmul peak."""
    return [
        {"preset": p, "train": str(metrics["train_mfu"][p]), "decode": str(metrics["decode_mfu"][p])}
        for p in metrics["train_mfu"]
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", help="smoke, cpu or gpu")
    ap.add_argument("--repeats", type=int, default=None, help="side-by-side repeats (default: the profile's)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default 1)")
    ap.add_argument("--no-grpo", action="store_true", help="skip the GRPO vs TRL benchmark")
    ap.add_argument("--out-dir", default=None, help="folder for bench.json (default .artifacts)")
    args = ap.parse_args(argv)
    try:
        cfg = config(args.profile)
    except ValueError as e:
        ap.exit(2, f"error: {e}\n")
    if args.repeats is not None:
        cfg.repeats = args.repeats
    if args.threads is not None:
        cfg.threads = args.threads
    cfg.grpo = cfg.grpo and not args.no_grpo
    metrics = run(cfg, out_dir=args.out_dir)
    for row in roofline_rows(metrics):
        print(f"{row['preset']:6s} train {row['train']:28s} decode {row['decode']}")
    for k, v in metrics.items():
        if k not in ("train_mfu", "decode_mfu", "train_tokens_per_s", "decode_tokens_per_s"):
            print(f"{k:34s} {v}")


if __name__ == "__main__":
    main()
