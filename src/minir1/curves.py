"""Loss curves: trailing means and the compute multiplier at equal loss.

The compute multiplier of a model A over a model B is how many times A's compute B needs
to reach A's final loss: B's loss-against-FLOPs curve (or against seconds) is read at A's
loss, interpolating linearly in log FLOPs.  When B never gets there the answer is a lower
bound, and :class:`Multiplier` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


def trailing_curve(x: Sequence[float], y: Sequence[float], window: int) -> tuple[list[float], list[float]]:
    """Means of ``x`` and ``y`` over every full trailing window of ``window`` points.

    >>> trailing_curve([1, 2, 3, 4], [4, 3, 2, 1], 2)
    ([1.5, 2.5, 3.5], [3.5, 2.5, 1.5])
    """
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length; got {len(x)} and {len(y)}")
    w = min(window, len(x))
    xs = [sum(x[i - w + 1 : i + 1]) / w for i in range(w - 1, len(x))]
    ys = [sum(y[i - w + 1 : i + 1]) / w for i in range(w - 1, len(y))]
    return xs, ys


@dataclass(frozen=True)
class Multiplier:
    """How many times the reference compute a model needs to reach a target loss."""

    value: float
    kind: str  # "interpolated", "lower bound" (never reached) or "upper bound" (reached at once)


def compute_multiplier(target_x: float, target_loss: float, xs: Sequence[float], losses: Sequence[float]) -> Multiplier:
    """``x`` at which the curve ``(xs, losses)`` first reaches ``target_loss``, over ``target_x``.

    The curve's running minimum is interpolated linearly in log ``x`` (log FLOPs or log
    seconds).  If the curve never gets down to the target, the multiplier is at least
    ``xs[-1] / target_x`` (kind ``"lower bound"``); if its first point is already below,
    at most ``xs[0] / target_x`` (``"upper bound"``).

    >>> m = compute_multiplier(100.0, 1.0, [100.0, 1000.0], [2.0, 0.0])
    >>> round(m.value, 3), m.kind
    (3.162, 'interpolated')
    """
    if target_x <= 0 or not all(x > 0 for x in xs):
        raise ValueError("target_x and xs must be > 0 (they are FLOPs or seconds)")
    if not xs or len(xs) != len(losses):
        raise ValueError(f"xs and losses must be non-empty and equally long; got {len(xs)}, {len(losses)}")
    env = [min(losses[: i + 1]) for i in range(len(losses))]
    if env[0] <= target_loss:
        return Multiplier(xs[0] / target_x, "upper bound")
    for i in range(1, len(env)):
        if env[i] <= target_loss:
            t = (env[i - 1] - target_loss) / (env[i - 1] - env[i])
            log_x = math.log(xs[i - 1]) + t * (math.log(xs[i]) - math.log(xs[i - 1]))
            return Multiplier(math.exp(log_x) / target_x, "interpolated")
    return Multiplier(xs[-1] / target_x, "lower bound")
