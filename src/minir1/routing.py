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
- :func:`make_deterministic` replaces the eager experts loop by one that pads each expert's
  token batch to a multiple of :data:`PAD_ROWS` rows, so results do not depend on the number
  of CPU threads (see its docstring for the cause).
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


class _AddAuxiliaryLoss(torch.autograd.Function):
    """Identity on ``x`` whose backward also sends gradient 1 into ``loss`` (the trick of
    DeepSeek-MoE's reference code): an auxiliary loss joins the training loss without the
    training loop knowing about it."""

    @staticmethod
    def forward(ctx, x, loss):
        ctx.dtype, ctx.device = loss.dtype, loss.device
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad, torch.ones((), dtype=ctx.dtype, device=ctx.device)


def sequence_balance_loss(
    router_logits: torch.Tensor, topk_indices: torch.Tensor, batch: int, alpha: float
) -> torch.Tensor:
    """V3's complementary sequence-wise balance loss (V3 report §2.1.2, eqs. 17–20).

    ``router_logits`` (B·T, E), ``topk_indices`` (B·T, K).  Per sequence, ``f_i`` is the
    share of the sequence's tokens sent to expert ``i`` scaled by E/K (1 when balanced) and
    ``P_i`` the mean normalised affinity ``s_i / Σ_j s_j``; the loss is ``α Σ_i f_i P_i``,
    averaged over the sequences.
    """
    n, E = router_logits.shape
    K = topk_indices.shape[-1]
    s = router_logits.float().sigmoid().view(batch, n // batch, E)  # (B, T, E)
    p = (s / s.sum(-1, keepdim=True)).mean(1)  # (B, E)
    counts = torch.zeros(batch, E, device=s.device)
    counts.scatter_add_(1, topk_indices.view(batch, -1), torch.ones(batch, (n // batch) * K, device=s.device))
    f = counts * E / (K * (n // batch))  # (B, E)
    return alpha * (f.detach() * p).sum(-1).mean()


PAD_ROWS = 16  # expert batches are padded to a multiple of this many rows (see make_deterministic)


def _padded_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    pad = -x.shape[0] % PAD_ROWS
    if pad:
        x = torch.cat([x, x.new_zeros(pad, x.shape[1])])
    return torch.nn.functional.linear(x, w)


def _deterministic_experts_forward(self, hidden_states, top_k_index, top_k_weights):
    """``DeepseekV3Experts.forward`` (eager, transformers 5.x) with padded expert batches."""
    out = torch.zeros_like(hidden_states)
    with torch.no_grad():
        mask = torch.nn.functional.one_hot(top_k_index, num_classes=self.num_experts).permute(2, 1, 0)
        hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
    for e in hit:
        e = e[0]
        pos, idx = torch.where(mask[e])
        n = idx.shape[0]
        gate, up = _padded_linear(hidden_states[idx], self.gate_up_proj[e])[:n].chunk(2, dim=-1)
        h = _padded_linear(self.act_fn(gate) * up, self.down_proj[e])[:n]
        out.index_add_(0, idx, (h * top_k_weights[idx, pos, None]).to(out.dtype))
    return out


def make_deterministic(model) -> int:
    """Make a DeepseekV3 model's routed experts give the same bits on 1 or 2 CPU threads.

    Cause (measured, torch 2.13 CPU, MKL): an fp32 GEMM with 5–11 rows (except 8) returns
    different low-order bits with 1 and with 2 threads; with 1–4, 8 or ≥ 12 rows, and with
    fixed large batches as in dense models, the bits agree.  The eager experts loop feeds
    each expert exactly the tokens routed to it, so small experts hit those sizes and the MoE
    (only the MoE) drifts by ~1e-8 per step.  Padding each expert's rows with zeros to a
    multiple of :data:`PAD_ROWS` removes the dependence (zero rows add exact zeros to the
    weight gradients).  Returns the number of expert modules patched.
    """
    import types

    n = 0
    for m in model.modules():
        if _is_experts(m) and hasattr(m, "num_experts"):
            m.forward = types.MethodType(_deterministic_experts_forward, m)
            n += 1
    return n


class RouterMonitor:
    """Counts the tokens each routed expert receives in every MoE layer and, with
    ``gamma > 0``, applies V3's auxiliary-loss-free balancing while the model trains.

    The update runs after each training forward pass (``router.training``): the bias of
    an expert that received more than the mean load falls by γ, the bias of one that
    received less rises by γ (V3 §2.1.2).  The bias only changes which experts are chosen;
    the gating weights still come from the unbiased scores, as in V3 and in HF's router.
    """

    def __init__(self, model, gamma: float = 0.0, alpha: float = 0.0):
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0; got {gamma!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {alpha!r}")
        self.gamma, self.alpha = float(gamma), float(alpha)
        self.aux_losses: list[float] = []  # sequence-wise balance loss of each training forward
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
            if router.training and self.alpha > 0 and torch.is_grad_enabled():
                x = inputs[0]
                batch = x.shape[0] if x.dim() == 3 else 1
                aux = sequence_balance_loss(outputs[0], idx, batch, self.alpha)
                self.aux_losses.append(float(aux.detach()))
                return outputs[0], _AddAuxiliaryLoss.apply(outputs[1], aux), outputs[2]

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
            model(input_ids=windows[s : s + batch_size].to(dev))
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

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if next(m.parameters(recurse=False), None) is not None
    ]
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
