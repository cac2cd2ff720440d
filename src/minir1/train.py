"""One training loop for pretraining and supervised fine-tuning (SFT).

AdamW, linear warm-up then cosine decay to ``min_lr_frac`` of the peak, gradient
clipping, prompt tokens masked out of the loss, bf16 autocast on GPU (and on the CPU with
``bf16=True``), a tqdm bar and one fixed-format log line every ``log_every`` steps.
Deterministic under ``seed`` on CPU.

Examples are ``(prompt, completion)`` string pairs.  The loss covers the completion and
the ``<eos>`` we append; the prompt is context only (``labels = -100``).  A plain
document is ``("", text)``: it gets a ``<bos>`` and is learned whole.  With
``pack=True`` documents are concatenated and cut into ``seq_len`` windows (standard
pretraining, no padding waste); packing ignores prompts, so it is for documents only.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from .utils import progress_bars


@dataclass
class TrainConfig:
    steps: int = 600  # optimizer steps
    batch_size: int = 64  # sequences per step
    lr: float = 2e-3  # peak lr; char-level nanoGPT uses 1e-3 for 10M params, tiny models take more
    min_lr_frac: float = 0.1  # cosine floor as a fraction of lr (nanoGPT: 0.1)
    warmup_steps: int = 30  # linear warm-up steps
    weight_decay: float = 0.1  # AdamW decoupled weight decay (nanoGPT: 0.1)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas (nanoGPT / Llama: 0.9, 0.95)
    grad_clip: float = 1.0  # global grad-norm clip (Llama: 1.0)
    seq_len: int = 128  # window length when pack=True
    pack: bool = False  # pack documents into seq_len windows (pretraining)
    seed: int = 0  # batch order
    log_every: int = 100  # steps between log lines
    desc: str = "train"  # tqdm label
    progress: bool = True  # show a tqdm bar
    bf16: bool = False  # bf16 autocast on any device (CUDA autocasts anyway, as it always did)

    def __post_init__(self):
        for name in ("steps", "batch_size", "seq_len", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0; got {self.warmup_steps!r}")


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # {step, loss, lr, tokens_per_s}
    tokens: int = 0  # non-pad tokens processed
    flops: float = 0.0  # 6 * params * tokens
    wall_seconds: float = 0.0
    config: dict = field(default_factory=dict)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Warm-up then cosine learning rate at ``step`` (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def encode_example(tokenizer, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """Token ids and labels for one pair; prompt positions get label -100."""
    p = tokenizer.encode(prompt, add_special_tokens=False) if prompt else [tokenizer.bos_token_id]
    c = tokenizer.encode(completion, add_special_tokens=False) + [tokenizer.eos_token_id]
    return p + c, [-100] * len(p) + c


def _packed_windows(tokenizer, examples, seq_len: int) -> torch.Tensor:
    stream: list[int] = []
    for prompt, completion in examples:
        stream += encode_example(tokenizer, "", prompt + completion)[0]
    n = len(stream) // seq_len
    if n == 0:
        raise ValueError(f"corpus of {len(stream)} tokens is shorter than seq_len={seq_len}")
    return torch.tensor(stream[: n * seq_len]).view(n, seq_len)  # (n, T)


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-pad ids/labels into (B, T) tensors with an attention mask."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, mask, labels


def _batches(n: int, cfg: TrainConfig, gen: torch.Generator):
    """Yield index tensors of size batch_size, reshuffling every epoch."""
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(cfg.steps):
        if pos + cfg.batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        yield (
            perm[pos : pos + cfg.batch_size]
            if n >= cfg.batch_size
            else torch.randint(n, (cfg.batch_size,), generator=gen)
        )
        pos += cfg.batch_size


def _autocast(dev: torch.device, bf16: bool):
    """bf16 autocast on CUDA (always) or, when ``bf16``, on ``dev`` (the CPU too); else a no-op."""
    if dev.type == "cuda" or not bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    return torch.autocast(dev.type, dtype=torch.bfloat16)


def train(model, tokenizer, examples: list[tuple[str, str]], cfg: TrainConfig) -> TrainResult:
    """Train ``model`` in place on ``examples``; return the loss history and the cost."""
    if not examples:
        raise ValueError("examples must be a non-empty list of (prompt, completion) pairs")
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.pack:
        windows = _packed_windows(tokenizer, examples, cfg.seq_len)
        data = [(w.tolist(), w.tolist()) for w in windows]
    else:
        data = [encode_example(tokenizer, p, c) for p, c in examples]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=cfg.betas,
    )
    n_params = sum(p.numel() for p in model.parameters())
    res, t0, tok_window, t_window = TrainResult(config=asdict(cfg)), time.time(), 0, time.time()
    model.train()
    bar = tqdm(
        _batches(len(data), cfg, gen),
        total=cfg.steps,
        desc=cfg.desc,
        disable=not (cfg.progress and progress_bars()),
        mininterval=2.0,
    )
    for step, idx in enumerate(bar):
        ids, mask, labels = (t.to(dev) for t in collate([data[i] for i in idx.tolist()], tokenizer.pad_token_id))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        with _autocast(dev, cfg.bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        n_tok = int(mask.sum())
        res.tokens += n_tok
        tok_window += n_tok
        if (step + 1) % cfg.log_every == 0 or step == cfg.steps - 1:
            tps = tok_window / max(time.time() - t_window, 1e-9)
            rec = {"step": step + 1, "loss": loss.detach().item(), "lr": lr_at(step, cfg), "tokens_per_s": tps}
            res.history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            tok_window, t_window = 0, time.time()
    model.eval()
    res.wall_seconds = time.time() - t0
    res.flops = 6.0 * n_params * res.tokens
    return res


@torch.no_grad()
def eval_loss(model, tokenizer, examples: list[tuple[str, str]], batch_size: int = 128) -> float:
    """Mean per-token loss of ``model`` on the completions of ``examples`` (held-out loss)."""
    dev = next(model.parameters()).device
    data = [encode_example(tokenizer, p, c) for p, c in examples]
    total, count = 0.0, 0
    model.eval()
    for s in range(0, len(data), batch_size):
        ids, mask, labels = (t.to(dev) for t in collate(data[s : s + batch_size], tokenizer.pad_token_id))
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, T-1, V)
        tgt = labels[:, 1:]
        lp = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=-100, reduction="sum")
        total += float(lp)
        count += int((tgt != -100).sum())
    return total / max(count, 1)
