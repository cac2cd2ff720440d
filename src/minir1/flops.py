"""One FLOPs ledger per arm: every FLOP an arm spends, counted in one place (issue 24).

An "equal-FLOPs" comparison is only as fair as its count.  Counting training on completion
tokens alone let one arm spend 1.5× another's; this module counts what each step really runs,
with the usual dense-transformer approximations (Kaplan et al. 2020): a forward pass costs
2·N FLOPs per token through N parameters, a forward and backward pass 6·N.  The attention
term that grows with context length (2·n_layer·n_ctx·d_model per token) is left out, as it is
by the book's other counts; it is small while the context is short against 12·d_model.

* :func:`forward`, :func:`forward_backward` — 2·N·T and 6·N·T.
* :func:`train_tokens` — SFT / distillation: forward and backward over prompt **and** completion
  tokens (a loss masked to the completion still runs the prompt through the network).
* :func:`sampling` — rollouts: the prompt's prefill once per sample, then 2·N per generated
  token with a KV cache (without one, each new token re-runs its whole prefix).
* :func:`grpo_step` — GRPO: sampling the group, policy forward+backward over every sampled
  sequence, the reference forward when a KL term is computed, the old-policy forward when
  more than one optimisation pass reuses a batch.
* :func:`teacher_traces` — a teacher's sampling, charged to the arm that uses its traces.
* :class:`Ledger` — an arm's items, summed; :func:`within` — do two totals agree within 5%?

Token counts are ints or sequences of per-sequence lengths (summed).

>>> led = Ledger("sft").add("train", train_tokens(1e6, prompt=100, completion=400))
>>> led.total, within(led.total, 3.1e9), within(led.total, 3.3e9)
(3000000000.0, True, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

Tokens = int | Sequence[int]


def _n(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def _tokens(tokens: Tokens, name: str = "tokens") -> float:
    if isinstance(tokens, (list, tuple)):
        return float(sum(_n(t, name) for t in tokens))
    return _n(tokens, name)


def forward(n_params: float, tokens: Tokens) -> float:
    """2·N·T: one forward pass over ``tokens`` tokens."""
    return 2.0 * _n(n_params, "n_params") * _tokens(tokens)


def forward_backward(n_params: float, tokens: Tokens) -> float:
    """6·N·T: a forward and a backward pass (the backward costs twice the forward)."""
    return 6.0 * _n(n_params, "n_params") * _tokens(tokens)


def train_tokens(n_params: float, *, prompt: Tokens, completion: Tokens) -> float:
    """Supervised training (SFT, distillation, RFT's fine-tune): 6·N·(prompt + completion).

    >>> train_tokens(10, prompt=[3, 2], completion=5)
    600.0
    """
    return forward_backward(n_params, _tokens(prompt, "prompt") + _tokens(completion, "completion"))


def sampling(n_params: float, *, prompt: Tokens, completion: Tokens, samples: int = 1, kv_cache: bool = True) -> float:
    """Generating ``samples`` completions per prompt (rollouts, rejection sampling, traces).

    ``prompt``/``completion``: the tokens of one sample's prompt and completion (or per-sample
    lists, summed).  With a KV cache: each sample prefills its prompt (2·N·prompt) and pays 2·N
    per generated token.  Without one, the c-th generated token re-runs prompt + c − 1 tokens:
    2·N·(c·prompt + c(c − 1)/2) for c generated tokens (one sequence; for lists, per pair).

    >>> sampling(10, prompt=4, completion=6, samples=2), sampling(10, prompt=4, completion=3, kv_cache=False)
    (400.0, 300.0)
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an int >= 1; got {samples!r}")
    if kv_cache:
        return samples * forward(n_params, _tokens(prompt, "prompt") + _tokens(completion, "completion"))
    ps = list(prompt) if isinstance(prompt, (list, tuple)) else [prompt]
    cs = list(completion) if isinstance(completion, (list, tuple)) else [completion]
    if len(ps) != len(cs):
        raise ValueError(f"prompt and completion lists must pair up; got {len(ps)} and {len(cs)}")
    rerun = sum(_n(c, "completion") * _n(p, "prompt") + c * (c - 1) / 2 for p, c in zip(ps, cs))
    return samples * forward(n_params, rerun)


def grpo_step(
    n_params: float,
    *,
    prompt: Tokens,
    completion: Tokens,
    group: int,
    reference: bool = True,
    passes: int = 1,
) -> float:
    """One GRPO batch: sample ``group`` completions per prompt, then train on all of them.

    ``prompt``/``completion``: one sample's tokens (or per-sample lists over the batch's
    prompts).  Sampling (2·N per token, KV cache), the policy's forward and backward over
    prompt + completion on each of ``passes`` optimisation passes (6·N), the reference model's
    forward (2·N) when a KL term is computed or logged, and the old policy's forward (2·N) to
    get the ratio's denominator when ``passes`` > 1.

    >>> grpo_step(10, prompt=4, completion=6, group=2)  # 2·(2 + 6 + 2)·10·10
    2000.0
    """
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ValueError(f"passes must be an int >= 1; got {passes!r}")
    seq = group * (_tokens(prompt, "prompt") + _tokens(completion, "completion"))
    total = sampling(n_params, prompt=prompt, completion=completion, samples=group)
    total += passes * forward_backward(n_params, seq)
    total += forward(n_params, seq) if reference else 0.0
    total += forward(n_params, seq) if passes > 1 else 0.0
    return total


def teacher_traces(n_teacher: float, *, prompt: Tokens, completion: Tokens, samples: int = 1) -> float:
    """A teacher generating traces (all samples drawn, rejected ones too): charged to the arm
    that learns from them when the comparison says so."""
    return sampling(n_teacher, prompt=prompt, completion=completion, samples=samples)


def within(a: float, b: float, tol: float = 0.05) -> bool:
    """Do two FLOP totals agree within ``tol``: |a − b| <= tol · max(a, b)?

    >>> within(1.00e12, 1.04e12), within(8.1e11, 5.25e11), within(0, 0)
    (True, False, True)
    """
    a, b, tol = _n(a, "a"), _n(b, "b"), _n(tol, "tol")
    return abs(a - b) <= tol * max(a, b)


@dataclass(frozen=True)
class Ledger:
    """An arm's spent FLOPs, item by item (``add`` returns a new ledger)."""

    arm: str
    items: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    def add(self, item: str, flops: float) -> "Ledger":
        if not isinstance(item, str) or not item:
            raise ValueError(f"item must be a non-empty name; got {item!r}")
        return Ledger(self.arm, (*self.items, (item, _n(flops, "flops"))))

    @property
    def total(self) -> float:
        return float(sum(f for _, f in self.items))

    def by_item(self) -> dict[str, float]:
        """FLOPs per item name (repeated names summed)."""
        out: dict[str, float] = {}
        for name, f in self.items:
            out[name] = out.get(name, 0.0) + f
        return out

    def to_dict(self) -> dict:
        """The results-file form: ``{"arm", "total", "items": {name: flops}}``."""
        return {"arm": self.arm, "total": self.total, "items": self.by_item()}


def unmatched(ledgers: Iterable[Ledger], tol: float = 0.05) -> list[tuple[str, str, float]]:
    """Pairs of arms whose totals do not agree :func:`within` ``tol``: (arm, arm, ratio larger/smaller)."""
    ls = list(ledgers)
    out = []
    for i, a in enumerate(ls):
        for b in ls[i + 1 :]:
            if not within(a.total, b.total, tol):
                lo, hi = sorted((a.total, b.total))
                out.append((a.arm, b.arm, hi / lo if lo > 0 else float("inf")))
    return out


__all__ = [
    "forward",
    "forward_backward",
    "train_tokens",
    "sampling",
    "grpo_step",
    "teacher_traces",
    "within",
    "Ledger",
    "unmatched",
]
