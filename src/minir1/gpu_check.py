"""The prepared device check (``make gpu-check``): every chapter's gpu configuration, a few steps each.

``python -m minir1.gpu_check`` measures, on whatever GPU it finds:

1. training throughput of the gpu profile's base (its preset, batch, sequence length, bf16):
   tokens/s, MFU against the GPU's dense bf16 peak (:func:`minir1.gpu_estimate.bf16_peak`),
   peak memory, and the seconds of one decoding step (what the estimate's launch floors assume);
2. every chapter through its experiment module: ``run(dry_run(config("gpu")), [0])`` twice, each
   in a fresh artifact folder, with wall time, peak memory and whether the two same-seed runs
   gave bit-identical metrics (timings left out);
3. each chapter's estimated gpu minutes (``estimate_gpu(config("gpu"))``).

It writes ``.artifacts/gpu-check.json`` (never the book).  It needs only torch, transformers and
numpy: no papermill, jupyter or pytest, no network.  ``--tiny`` runs the smoke profile's shapes
(the CPU tests use it); ``--estimate CHAPTER`` prints one chapter's estimate as JSON and exits
(``--line``: one line of text; the chapter runner calls it in a subprocess, so publishing never
imports training code).
Chapters (and the lab base's config) are imported by name, one at a time, as the runner executes
their notebooks: the library never imports the experiment tier statically.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from . import gpu_estimate, models, profiles
from .corpus import build_corpus
from .results import to_json_metrics
from .tokenizer import build_tokenizer
from .train import train
from .utils import atomic_write_json, device_name, repo_root

CHAPTERS: tuple[str, ...] = ("cost", "lab", "rl", "distillation", "censorship", "engineering", "thesis")
TIMING_WORDS = ("seconds", "per_s", "mfu", "peak", "wall", "time", "tflop", "latency", "speed", "_ms", "throughput")


def _chapter(name: str):
    if name not in CHAPTERS:
        raise ValueError(f"chapter must be one of {', '.join(CHAPTERS)}; got {name!r}")
    return importlib.import_module(f"minir1.experiments.{name}")  # by name, as the runner runs notebooks


def estimate(name: str) -> dict:
    """Chapter ``name``'s gpu-profile time estimate (:mod:`minir1.gpu_estimate`)."""
    mod = _chapter(name)
    return mod.estimate_gpu(mod.PROFILES["gpu"])


def _reset_memory(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory(dev: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None


def throughput(dev: str, *, tiny: bool = False, steps: int = 0) -> dict:
    """Training tokens/s, MFU and peak memory of the gpu base's shapes; one decoding step's seconds."""
    cfg = _chapter("lab").config("smoke" if tiny else "gpu")  # the lab base's config (a LabConfig)
    steps = steps or (4 if tiny else 20)
    tcfg = replace(cfg.train, steps=steps, warmup_steps=1, log_every=max(1, steps // 2), progress=False, bf16=True)
    if tiny:
        tcfg = replace(tcfg, batch_size=4, seq_len=64)
    tok = build_tokenizer()
    docs = [("", d) for d in build_corpus(replace(cfg.corpus, n_docs=4 * tcfg.batch_size * tcfg.seq_len // 30))]
    model = models.build(cfg.preset, tok, seed=0).to(dev)
    _reset_memory(dev)
    res = train(model, tok, docs, tcfg)
    n = models.n_params(model)
    tps = res.history[-1]["tokens_per_s"]  # the second half: warm-up and allocation left out
    peak = gpu_estimate.bf16_peak(device_name()) if dev == "cuda" else None
    # One decoding step: a generation call of the eval batch, timed per new token.
    batch, new = (4, 4) if tiny else (256, 32)
    ids = torch.full((batch, 16), tok.bos_token_id, device=dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new, do_sample=True)
    if dev == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / new
    layers = models.PRESETS[cfg.preset].n_layer
    return {
        "preset": cfg.preset,
        "params": n,
        "batch_size": tcfg.batch_size,
        "seq_len": tcfg.seq_len,
        "bf16": tcfg.bf16,
        "steps": steps,
        "tokens_per_s": tps,
        "peak_bf16_flops_per_s": peak,
        "mfu": gpu_estimate.mfu(6.0 * n * tps, 1.0, peak) if peak else None,
        "peak_memory_gib": _peak_memory(dev),
        "decode_batch": batch,
        "decode_step_seconds": step_s,
        "estimator_decode_step_seconds": layers * gpu_estimate.DECODE_LAYER_SECONDS + gpu_estimate.DECODE_STEP_SECONDS,
    }


def _untimed(metrics: dict) -> dict:
    """The metrics without timings (keys naming seconds, rates, MFU, peaks)."""
    return {k: v for k, v in metrics.items() if not any(w in k.lower() for w in TIMING_WORDS)}


def _one_run(mod, cfg, folder: Path) -> tuple[dict, float]:
    old = os.environ.get("MINIR1_ARTIFACTS")
    os.environ["MINIR1_ARTIFACTS"] = str(folder)
    try:
        t0 = time.perf_counter()
        result = mod.run(cfg, [0])
        return json.loads(json.dumps(to_json_metrics(result.metrics), default=str)), time.perf_counter() - t0
    finally:
        if old is None:
            os.environ.pop("MINIR1_ARTIFACTS", None)
        else:
            os.environ["MINIR1_ARTIFACTS"] = old


def check_chapter(name: str, dev: str, *, tiny: bool = False) -> dict:
    """Chapter ``name`` at its gpu shapes (``tiny``: smoke shapes), dry-run sized, twice with seed 0."""
    mod = _chapter(name)
    cfg = mod.dry_run(mod.config("smoke" if tiny else "gpu"))
    runs = []
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as tmp:
        for i in range(2):
            _reset_memory(dev)
            metrics, seconds = _one_run(mod, cfg, Path(tmp) / str(i))
            runs.append({"metrics": _untimed(metrics), "seconds": seconds, "peak_memory_gib": _peak_memory(dev)})
    a, b = runs[0]["metrics"], runs[1]["metrics"]
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    est = mod.estimate_gpu(mod.PROFILES["gpu"])
    return {
        "seconds": [r["seconds"] for r in runs],
        "peak_memory_gib": max((r["peak_memory_gib"] or 0.0 for r in runs), default=0.0) if dev == "cuda" else None,
        "n_metrics": len(a),
        "bit_identical": not differ,
        "differing_metrics": differ,
        "estimate_minutes": est["minutes"],
        "estimate_flops": est["flops"],
        "max_params": est["max_params"],
    }


def run_check(
    chapters: tuple[str, ...] = CHAPTERS, *, tiny: bool = False, out: Path | None = None, budget_s: float = 420.0
) -> dict:
    """The whole check; writes ``out`` (default ``.artifacts/gpu-check.json``) and returns the record."""
    t0 = time.perf_counter()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    profiles.check_device("gpu", device=dev)
    record: dict = {
        "device": device_name(),
        "device_type": dev,
        "tiny": tiny,
        "torch": torch.__version__,
        "estimator": gpu_estimate.estimate("-", [])["assumptions"],
        "throughput": throughput(dev, tiny=tiny),
        "chapters": {},
        "skipped": [],
    }
    for name in chapters:
        if time.perf_counter() - t0 > budget_s:  # stay inside the machine's time: say what was left
            record["skipped"].append(name)
            continue
        print(f"gpu-check: {name} ...", flush=True)
        record["chapters"][name] = check_chapter(name, dev, tiny=tiny)
    record["bit_identical"] = all(c["bit_identical"] for c in record["chapters"].values())
    record["wall_seconds"] = time.perf_counter() - t0
    atomic_write_json(out or repo_root() / ".artifacts" / "gpu-check.json", record)
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minir1.gpu_check", description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="smoke shapes (CPU tests)")
    ap.add_argument("--chapters", default=",".join(CHAPTERS), help="comma-separated chapters (default: all)")
    ap.add_argument("--out", default=None, help="record path (default .artifacts/gpu-check.json)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip chapters once this many seconds passed")
    ap.add_argument("--estimate", metavar="CHAPTER", help="print CHAPTER's gpu estimate as JSON and exit")
    ap.add_argument("--line", action="store_true", help="with --estimate: one line of text instead of JSON")
    args = ap.parse_args(argv)
    if args.estimate:
        est = estimate(args.estimate)
        print(gpu_estimate.format_estimate(est) if args.line else json.dumps(est))
        return 0
    chapters = tuple(c for c in args.chapters.split(",") if c)
    rec = run_check(chapters, tiny=args.tiny, out=Path(args.out) if args.out else None, budget_s=args.budget_s)
    tp = rec["throughput"]
    print(f"gpu-check on {rec['device']}: {tp['tokens_per_s']:.3g} tokens/s at {tp['params'] / 1e6:.1f}M", end="")
    print(f", MFU {tp['mfu']:.1%}" if tp["mfu"] else "", end="")
    print(f"; bit-identical: {rec['bit_identical']}; skipped: {rec['skipped'] or 'none'}")
    for name, c in rec["chapters"].items():
        est, same = c["estimate_minutes"], c["bit_identical"]
        print(f"  {name}: dry run {c['seconds'][0]:.1f}s, estimate {est:.0f} min, same-seed identical: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
