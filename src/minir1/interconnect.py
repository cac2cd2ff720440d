"""What DeepSeek-V3's expert parallelism asks of the interconnect, per token and MoE layer.

V3 spreads its 256 routed experts over 64 GPUs in 8 nodes (EP 64).  In every MoE layer each
token's hidden vector is *dispatched* to the GPUs holding its experts and the experts'
outputs are *combined* back; the backward pass moves gradients the same way.  Node-limited
routing sends a token to at most M nodes over InfiniBand (IB), and V3's kernels forward it
over NVLink inside each node to the GPUs of its top-k experts (V3 report §3.2.2).

This module counts those bytes from a model config and the published transfer formats, and
turns bytes and FLOPs into times at a given bandwidth and achieved FLOP rate, so the
chapter can ask whether the schedule would be communication-bound without the overlap.

Simplifications, stated rather than hidden:

- Every one of the M nodes is taken as remote (an upper bound on IB traffic: the token's
  own node may be one of them).
- Forward dispatch uses ``dispatch_bytes`` per value (FP8 in V3), forward combine
  ``combine_bytes`` (BF16); both backward transfers are counted at ``grad_bytes`` (BF16), an
  upper bound since V3 also quantises some backward activations to FP8.
- Compute time divides FLOPs by an *achieved* rate per GPU (the chapter derives it from V3's
  published GPU-hours), not a peak, so no utilisation is assumed.
- IB and NVLink transfers run concurrently in V3's kernels, so the communication time of a
  layer is the slower of the two, not their sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .cost import _attention_params, _check_size, _swiglu_mlp, attention_flops_per_token


@dataclass(frozen=True)
class Transfer:
    """How one token's expert traffic is encoded (bytes per value) and routed."""

    dispatch_bytes: float = 1.0  # V3 §3.3: activations quantised to FP8 before dispatch
    combine_bytes: float = 2.0  # V3 §3.3: combine in BF16
    grad_bytes: float = 2.0  # backward transfers at BF16 (upper bound)
    max_nodes: int = 4  # V3 §3.2.2: each token reaches at most 4 nodes

    def __post_init__(self):
        for name in ("dispatch_bytes", "combine_bytes", "grad_bytes"):
            _check_size(name, getattr(self, name), positive=True)
        if isinstance(self.max_nodes, bool) or not isinstance(self.max_nodes, int) or self.max_nodes < 1:
            raise ValueError(f"max_nodes must be an int >= 1; got {self.max_nodes!r}")


def bytes_per_token_layer(config, t: Transfer = Transfer(), *, backward: bool = True) -> dict[str, float]:
    """Bytes one token moves in one MoE layer: ``ib`` (one copy per remote node) and
    ``nvlink`` (one copy per routed expert's GPU), forward and, if ``backward``, backward.

    >>> from minir1.cost import load_model_config
    >>> b = bytes_per_token_layer(load_model_config("deepseek-v3"), backward=False)
    >>> b["ib"], b["nvlink"]   # 4 nodes x 7168 x (1 + 2) bytes; 8 experts x 7168 x 3
    (86016.0, 172032.0)
    """
    h, k = config.hidden_size, config.num_experts_per_tok
    per_value = t.dispatch_bytes + t.combine_bytes + (2 * t.grad_bytes if backward else 0.0)
    return {"ib": float(t.max_nodes * h * per_value), "nvlink": float(k * h * per_value)}


def flops_per_token_layer(config, seq_len: int, *, backward: bool = True) -> dict[str, float]:
    """FLOPs of one token in one MoE layer: ``experts`` (routed top-k plus shared experts),
    ``attention`` (projections plus scores at ``seq_len``, causal) and their sum ``layer``.
    Training (``backward``) is three times the forward pass."""
    h, f = config.hidden_size, config.moe_intermediate_size
    n_exp = config.num_experts_per_tok + (config.n_shared_experts or 0)
    mult = 3.0 if backward else 1.0
    experts = mult * 2.0 * n_exp * _swiglu_mlp(h, f)
    scores = attention_flops_per_token(config, seq_len, causal=True) / config.num_hidden_layers
    attention = mult * 2.0 * _attention_params(config) + scores * (1.0 if backward else 1.0 / 3.0)
    return {"experts": experts, "attention": attention, "layer": experts + attention}


def seconds(amount: float, rate: float) -> float:
    """``amount`` (bytes or FLOPs) at ``rate`` per second."""
    return _check_size("amount", amount) / _check_size("rate", rate, positive=True)


def comm_compute(
    config,
    seq_len: int,
    *,
    achieved_flops: float,
    ib_bytes_per_s: float,
    nvlink_bytes_per_s: float,
    t: Transfer = Transfer(),
) -> dict[str, float]:
    """Per token and MoE layer (training): compute and communication times in seconds and
    their ratios.  ``comm`` is the slower of the IB and NVLink transfers (they overlap with
    each other); ``comm_over_*`` > 1 means that part of the step waits on the network unless
    communication is hidden behind computation (V3's DualPipe)."""
    b, f = bytes_per_token_layer(config, t), flops_per_token_layer(config, seq_len)
    out = {
        "ib_bytes": b["ib"],
        "nvlink_bytes": b["nvlink"],
        "expert_flops": f["experts"],
        "layer_flops": f["layer"],
        "t_ib": seconds(b["ib"], ib_bytes_per_s),
        "t_nvlink": seconds(b["nvlink"], nvlink_bytes_per_s),
        "t_experts": seconds(f["experts"], achieved_flops),
        "t_layer": seconds(f["layer"], achieved_flops),
    }
    out["t_comm"] = max(out["t_ib"], out["t_nvlink"])
    out["comm_over_experts"] = out["t_comm"] / out["t_experts"]
    out["comm_over_layer"] = out["t_comm"] / out["t_layer"]
    out["slowdown_without_overlap"] = (out["t_layer"] + out["t_comm"]) / out["t_layer"]
    return out


def achieved_flops_per_gpu(flops_per_token: float, tokens: float, gpu_hours: float) -> float:
    """FLOP/s each GPU actually delivered in a published run: FLOPs / GPU-seconds."""
    total = _check_size("flops_per_token", flops_per_token, positive=True) * _check_size(
        "tokens", tokens, positive=True
    )
    secs = 3600.0 * _check_size("gpu_hours", gpu_hours, positive=True)
    out = total / secs
    if not math.isfinite(out):
        raise ValueError("achieved FLOP/s is not finite")
    return out


__all__ = [
    "Transfer",
    "bytes_per_token_layer",
    "flops_per_token_layer",
    "seconds",
    "comm_compute",
    "achieved_flops_per_gpu",
]
