"""Benchmarks (not timed tests): ``python -m minir1.bench`` or ``make bench``.

Writes ``book/results/bench.json`` (same contract as a chapter's results) with

* training tokens/s, achieved FLOP/s and MFU for each model preset, against this
  machine's measured matmul FLOP/s (:func:`minir1.cost.machine_peak`);
* our sampler's tokens/s against Hugging Face ``generate`` on the same model, batch and
  lengths (greedy, eos suppressed so that both produce exactly the same number of tokens);
* GRPO steps/s and sampled tokens/s, ours against TRL's ``GRPOTrainer``
  (:func:`minir1.grpo_trl.benchmark_grpo`).

Each timing is repeated ``repeats`` times; metrics carry the per-repeat values and a CI.
"""
from __future__ import annotations

import argparse
import random
import time

import torch

from . import models
from .profiles import check_profile
from .results import metric, write_results
from .tokenizer import build_tokenizer, format_prompt
from .train import TrainConfig, train


def bench_training(preset: str, repeats: int = 3, steps: int = 8, batch_size: int = 32,
                   seq_len: int = 128) -> dict:
    """Training tokens/s and FLOP/s (6·N·D) of ``preset`` on packed random arithmetic text."""
    tok = build_tokenizer()
    rng = random.Random(0)
    docs = [("", f"{rng.randint(100, 999)}+{rng.randint(100, 999)}") for _ in range(4000)]
    tps, fps = [], []
    for r in range(repeats):
        model = models.build(preset, tok, seed=r)
        res = train(model, tok, docs, TrainConfig(steps=steps, batch_size=batch_size, pack=True,
                                                  seq_len=seq_len, progress=False, seed=r))
        tps.append(res.tokens / res.wall_seconds)
        fps.append(res.flops / res.wall_seconds)
    return {"params": models.n_params(model), "tokens_per_s": tps, "flops_per_s": fps}


def _no_eos(model, eos_id):
    bias = torch.zeros(model.config.vocab_size)
    bias[eos_id] = -1e9
    return model.lm_head.register_forward_hook(lambda m, i, out: out + bias.to(out.dtype))


def bench_sampler(preset: str = "micro", batch: int = 64, new_tokens: int = 64, repeats: int = 3) -> dict:
    """Our sampler vs HF ``generate`` (greedy, same prompts, same number of new tokens)."""
    tok = build_tokenizer()
    model = models.build(preset, tok, seed=0)
    handle = _no_eos(model, tok.eos_token_id)
    prompts = [format_prompt(tok, f"{100 + 7 * i}+{999 - 5 * i}") for i in range(batch)]
    enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    from .sampling import generate

    ours, hf = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        g = generate(model, tok, prompts, max_new_tokens=new_tokens, temperature=0)
        ours.append(sum(g.n_tokens) / (time.perf_counter() - t))
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        hf.append((out.shape[1] - enc["input_ids"].shape[1]) * batch / (time.perf_counter() - t))
    handle.remove()
    return {"ours_tokens_per_s": ours, "hf_tokens_per_s": hf, "batch": batch, "new_tokens": new_tokens}


def run(profile: str = "cpu", repeats: int = 3, grpo: bool = True) -> dict:
    """All benchmarks; returns the metrics written to ``bench.json``."""
    from .cost import MatmulBench, machine_peak

    check_profile(profile)
    t0 = time.time()
    bench = MatmulBench(n=512, repeats=5) if profile == "smoke" else MatmulBench()
    peak = machine_peak(bench, force=True)  # measured now, beside the runs it divides
    presets = ("pico", "nano") if profile == "smoke" else ("pico", "nano", "micro", "mini")
    metrics, extra, flops = {"machine_matmul_flops_per_s": peak}, {}, 0.0
    for p in presets:
        b = bench_training(p, repeats=repeats, steps=3 if profile == "smoke" else 8)
        metrics[f"train_tokens_per_s_{p}"] = metric(b["tokens_per_s"])
        metrics[f"train_mfu_{p}"] = metric([f / peak for f in b["flops_per_s"]])
        extra[f"params_{p}"] = b["params"]
    s = bench_sampler(repeats=repeats, new_tokens=16 if profile == "smoke" else 64)
    metrics["sampler_tokens_per_s_ours"] = metric(s["ours_tokens_per_s"])
    metrics["sampler_tokens_per_s_hf"] = metric(s["hf_tokens_per_s"])
    metrics["sampler_speedup_vs_hf"] = metric([a / b for a, b in zip(s["ours_tokens_per_s"], s["hf_tokens_per_s"])])
    if grpo:
        from .grpo_trl import benchmark_grpo

        g = benchmark_grpo(steps=2 if profile == "smoke" else 4)
        metrics["grpo_steps_per_s_ours"] = g["minir1"]["steps_per_s"]
        metrics["grpo_steps_per_s_trl"] = g["trl"]["steps_per_s"]
        metrics["grpo_speedup_vs_trl"] = g["speedup_steps"]
        metrics["grpo_tokens_speedup_vs_trl"] = g["speedup_tokens"]
        extra["grpo"] = g
    write_results("bench", profile=profile, seeds=list(range(repeats)), config={"presets": presets,
                  "sampler": {k: s[k] for k in ("batch", "new_tokens")}}, metrics=metrics, claims=[],
                  wall_seconds=time.time() - t0, flops=flops, extra=extra)
    return metrics


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", help="smoke, cpu or gpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-grpo", action="store_true", help="skip the GRPO vs TRL benchmark")
    args = ap.parse_args(argv)
    try:
        check_profile(args.profile)
    except ValueError as e:
        ap.exit(2, f"error: {e}\n")
    for k, v in run(args.profile, args.repeats, grpo=not args.no_grpo).items():
        print(f"{k:34s} {v['mean'] if isinstance(v, dict) else v:.4g}")


if __name__ == "__main__":
    main()
