"""MoE routing, measured: which experts a token uses, how evenly, and what routing costs.

Instruments ``transformers``' ``DeepseekV3ForCausalLM`` with forward hooks, never by
changing its code:

- :class:`RouterMonitor` counts the tokens each routed expert receives and can apply
  DeepSeek-V3's auxiliary-loss-free balancing (V3 report §2.1.2) during training, which
  ``transformers`` does not do: its ``e_score_correction_bias`` is a zero buffer that nothing
  updates, and its forward pass returns no auxiliary loss.
- :func:`touched_params` counts the parameters one forward pass multiplies, to check the
  "active" count of :func:`minir1.cost.count_params` against what a token really uses.
- :func:`time_train_steps` times training steps of several models interleaved.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Mapping, Sequence

import torch


def _is_router(module) -> bool:
    return type(module).__name__ == "DeepseekV3TopkRouter"


def _is_experts(module) -> bool:
    return isinstance(getattr(module, "gate_up_proj", None), torch.nn.Parameter)


class RouterMonitor:
    """Counts the tokens each routed expert receives in every MoE layer and, with
    ``gamma > 0``, applies V3's auxiliary-loss-free balancing while the model trains.

    The update runs after each training forward pass (``router.training``): the bias of
    an expert that received more than the mean load falls by γ, the bias of one that
    received less rises by γ (V3 §2.1.2).  The bias only changes which experts are chosen;
    the gating weights still come from the unbiased scores, as in V3 and in HF's router.
    """

    def __init__(self, model, gamma: float = 0.0):
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0; got {gamma!r}")
        self.gamma = float(gamma)
        self.routers = [m for m in model.modules() if _is_router(m)]
        self.counts = [torch.zeros(r.num_experts, dtype=torch.float64) for r in self.routers]
        self.last_indices: list[torch.Tensor | None] = [None] * len(self.routers)
        self.handles = [r.register_forward_hook(self._hook(i)) for i, r in enumerate(self.routers)]

    def _hook(self, i: int):
        def hook(router, inputs, outputs):
            idx = outputs[2].detach()  # (N, top_k): the experts each token is sent to
            self.last_indices[i] = idx
            load = torch.bincount(idx.reshape(-1).cpu(), minlength=router.num_experts).double()  # (E,)
            self.counts[i] += load
            if router.training and self.gamma > 0:
                with torch.no_grad():
                    step = torch.sign(load.mean() - load).to(router.e_score_correction_bias)
                    router.e_score_correction_bias += self.gamma * step
        return hook

    def reset(self) -> None:
        for c in self.counts:
            c.zero_()

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def fractions(self) -> list[list[float]]:
        """Per MoE layer, the share of routed (token, expert) assignments each expert got."""
        return [(c / c.sum().clamp(min=1)).tolist() for c in self.counts]


def load_balance(fractions: Sequence[Sequence[float]]) -> dict[str, float]:
    """Balance of expert loads over MoE layers: mean coefficient of variation (0 = even) and
    the largest max/mean load of any layer (1 = even; E / top_k when every token goes to
    the same experts).

    >>> load_balance([[0.25, 0.25, 0.25, 0.25]])
    {'cv': 0.0, 'max_over_mean': 1.0}
    """
    if not fractions:
        raise ValueError("fractions must hold at least one MoE layer")
    cvs, peaks = [], []
    for f in fractions:
        mean = sum(f) / len(f)
        cvs.append(statistics.pstdev(f) / mean if mean > 0 else 0.0)
        peaks.append(max(f) / mean if mean > 0 else 0.0)
    return {"cv": sum(cvs) / len(cvs), "max_over_mean": max(peaks)}


@torch.no_grad()
def expert_loads(model, windows: torch.Tensor, batch_size: int = 32) -> list[list[float]]:
    """Share of tokens per routed expert of each MoE layer on packed ``windows`` (n, T)."""
    mon = RouterMonitor(model, gamma=0.0)
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        for s in range(0, windows.shape[0], batch_size):
            model(input_ids=windows[s:s + batch_size].to(dev))
        return mon.fractions()
    finally:
        mon.detach()
        model.train(was)


def touched_params(model, input_ids: torch.Tensor) -> int:
    """Parameters one forward pass over ``input_ids`` multiplies, each tensor counted once.

    Every module that runs contributes all its own weights (the embedding counts whole,
    the convention of "active" parameters), except the routed experts, which contribute
    only the experts some token was sent to.  For one token this is what
    :func:`minir1.cost.count_params` calls ``active``.
    """
    seen: dict[Any, int] = {}

    def hook(mod, args, out):
        if _is_experts(mod):
            for e in args[1].unique().tolist():  # args = (hidden, top_k_index, top_k_weights)
                seen[(id(mod), e)] = mod.gate_up_proj[e].numel() + mod.down_proj[e].numel()
        else:
            for p in mod.parameters(recurse=False):
                seen[id(p)] = p.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if next(m.parameters(recurse=False), None) is not None]
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
    finally:
        for h in handles:
            h.remove()
    return sum(seen.values())


def _sync(x: torch.Tensor) -> None:
    """Wait for the GPU, so that a timer measures the work and not its launch."""
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def time_train_steps(models: Mapping[str, Any], batch: torch.Tensor, repeats: int = 5) -> dict[str, list[float]]:
    """Seconds per token of one forward + backward pass over ``batch`` (B, T) for each model,
    interleaved over ``repeats`` (after one warm-up): the wall-clock price of routing."""
    out: dict[str, list[float]] = {n: [] for n in models}
    for r in range(repeats + 1):
        for name, m in models.items():
            m.train()
            x = batch.to(next(m.parameters()).device)  # (B, T)
            _sync(x)
            t0 = time.perf_counter()
            m(input_ids=x, labels=x).loss.backward()
            _sync(x)
            dt = time.perf_counter() - t0
            m.zero_grad(set_to_none=True)
            if r > 0:
                out[name].append(dt / batch.numel())
    for m in models.values():
        m.eval()
    return out
