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
from dataclasses import dataclass, replace
from typing import Any, Mapping

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


def chips_metrics(hw: Mapping[str, float], pub: Mapping[str, Any], v3, seq_len: int = 4096) -> dict:
    """H800 vs H100 (compute, NVLink) from ``hw`` (``data/published_hardware.csv``), and V3's
    expert traffic per token and MoE layer against its compute on each chip, at the FLOP rate V3
    achieved per GPU (``pub``: :func:`minir1.cost.load_published_costs`; ``v3``: its config).
    V3's kernels reach 160 of the H800's 400 GB/s of NVLink; an H100 is assumed to reach the same
    share of its 900.  ``h800_binding_link_ratio``: the H800's communication time over the
    H100's, inverted (1 when InfiniBand, the same on both, binds)."""
    achieved = achieved_flops_per_gpu(
        pub["v3_train_gflops_per_token_4k"].value * 1e9, pub["v3_tokens"].value, pub["v3_pretraining_gpu_hours"].value
    )
    t = Transfer(
        dispatch_bytes=hw["v3_dispatch_bytes_per_value"],
        combine_bytes=hw["v3_combine_bytes_per_value"],
        max_nodes=int(hw["v3_max_nodes_per_token"]),
    )
    eff = hw["v3_nvlink_effective_gb_per_s"] / hw["h800_nvlink_gb_per_s"]
    nv = {"h800": hw["h800_nvlink_gb_per_s"] * eff * 1e9, "h100": hw["h100_nvlink_gb_per_s"] * eff * 1e9}
    ib = hw["v3_ib_gb_per_s"] * 1e9

    def cc(bw, tr=t):
        return comm_compute(v3, seq_len, achieved_flops=achieved, nvlink_bytes_per_s=bw,
                                         ib_bytes_per_s=ib, t=tr)  # fmt: skip

    c = {chip: cc(bw) for chip, bw in nv.items()}
    unlimited = cc(nv["h800"], replace(t, max_nodes=v3.num_experts_per_tok))
    us = 1e6
    return {
        "h800_compute_ratio": hw["h800_bf16_dense_flops"] / hw["h100_bf16_dense_flops"],
        "h800_fp8_ratio": hw["h800_fp8_dense_flops"] / hw["h100_fp8_dense_flops"],
        "h800_nvlink_ratio": hw["h800_nvlink_gb_per_s"] / hw["h100_nvlink_gb_per_s"],
        "h800_binding_link_ratio": c["h100"]["t_comm"] / c["h800"]["t_comm"],
        "v3_achieved_flops_per_gpu": achieved,
        "ep_ib_bytes_per_token_layer": c["h800"]["ib_bytes"],
        "ep_nvlink_bytes_per_token_layer": c["h800"]["nvlink_bytes"],
        "ep_layer_flops_per_token": c["h800"]["layer_flops"],
        "ep_t_layer_us": c["h800"]["t_layer"] * us,
        "ep_t_experts_us": c["h800"]["t_experts"] * us,
        "ep_t_ib_us": c["h800"]["t_ib"] * us,
        "ep_t_nvlink_us": {k: c[k]["t_nvlink"] * us for k in c},
        "ep_comm_over_layer": {k: c[k]["comm_over_layer"] for k in c},
        "ep_comm_over_experts": {k: c[k]["comm_over_experts"] for k in c},
        "ep_slowdown_without_overlap": {k: c[k]["slowdown_without_overlap"] for k in c},
        "ep_comm_over_experts_no_node_limit": unlimited["comm_over_experts"],
        "v3_comm_to_compute_reported": hw["v3_comm_to_compute_reported"],
    }


__all__ = [
    "chips_metrics",
    "Transfer",
    "bytes_per_token_layer",
    "flops_per_token_layer",
    "seconds",
    "comm_compute",
    "achieved_flops_per_gpu",
]
