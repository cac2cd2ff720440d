"""One way to put an interval on a number: the book's statistics.

Every uncertainty in the book comes from this module, by one rule (the "How we measure" page):

* **Rates** (accuracy, pass@k, refusal rate) measured on problems for several seeds: a
  bootstrap over problems and, when the seeds are separately *trained* models, over seeds
  too (the pigeonhole bootstrap for a crossed design, Owen 2007); when the seeds only re-draw
  samples from one model, the problems are the independent units and only they are
  resampled.  The percentile 95% interval of the resampled means (:func:`rate`) always lies
  inside [0, 1].
* **Comparisons** of A and B on the same problems: a *paired* bootstrap, the same resampled
  problems and seeds for both, of the difference (:func:`paired_diff`) or the ratio
  (:func:`paired_ratio`; the denominator is resampled too, never treated as exact).
* **Per-seed quantities** with no problems behind them (a final loss, a compute multiplier):
  the percentile bootstrap over seeds (:func:`over_seeds`, :func:`paired_seeds`).  With
  three seeds this interval is wide and coarse, and we say so rather than use a t-interval
  that can leave the metric's range.
* **pass@k** by the unbiased estimator of Chen et al. (2021) per problem, from n ≥ k samples,
  then :func:`rate` (:func:`pass_at_k`).
* **Arithmetic** on published figures has no sampling error: :func:`exact`.
* **Seed-level t interval** (:func:`seed_t_interval`, df = n − 1) and, in
  :mod:`minir1.stats_hier`, the hierarchical bootstrap over bases, seeds and problems (clustered
  where problems cluster), the rule that a reported interval is never narrower than the
  seed-level t interval (``conservative``), and two one-sided tests for equivalence (``tost``).

A :class:`Metric` carries ``mean, lo, hi, per_seed, n, method, unit`` and formats itself.

>>> m = rate([[1, 0, 1, 1], [1, 1, 0, 1]])
>>> m.mean, 0 <= m.lo <= m.mean <= m.hi <= 1, m.method
(0.75, True, 'bootstrap')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

N_BOOT = 2000  # bootstrap resamples (Efron & Tibshirani: 1,000-2,000 for percentile intervals)
LEVEL = 0.95  # interval level everywhere in the book
SEED = 0  # resampling seed: same data, same interval
METHODS = (
    "bootstrap",
    "paired-bootstrap",
    "seeds",
    "paired-seeds",
    "exact",
    # minir1.stats_hier (issue 24): a seed-level t interval, the hierarchical bootstrap over
    # bases, seeds and problems (and its paired version), and their hull (``conservative``).
    "seed-t",
    "hierarchical-bootstrap",
    "paired-hierarchical-bootstrap",
    "conservative",
)
UNITS = ("rate", "diff", "ratio", "")


@dataclass(frozen=True)
class Metric:
    """A number with its 95% interval and how it was obtained."""

    mean: float
    lo: float
    hi: float
    per_seed: tuple[float, ...] = field(default_factory=tuple)
    n: int = 1  # units resampled: problems x seeds, or seeds
    method: str = "exact"
    unit: str = ""  # "rate" (a share in [0, 1]), "diff" (a paired difference of rates), "ratio", ""

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {self.method!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}; got {self.unit!r}")
        vals = (self.mean, self.lo, self.hi, *self.per_seed)
        if not all(math.isfinite(float(v)) for v in vals):
            raise ValueError(f"Metric values must be finite; got mean={self.mean}, lo={self.lo}, hi={self.hi}")
        if not self.lo <= self.hi:
            raise ValueError(f"Metric interval must have lo <= hi; got [{self.lo}, {self.hi}]")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_seed"] = [round(float(v), 10) for v in self.per_seed]
        for k in ("mean", "lo", "hi"):
            d[k] = round(float(d[k]), 10)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Metric":
        """From a results-file metric (a dict, or a plain number: an exact value)."""
        if isinstance(d, (int, float)) and not isinstance(d, bool):
            return exact(float(d))
        if not isinstance(d, Mapping) or "mean" not in d:
            raise ValueError(f"not a metric: {d!r}")
        return cls(
            mean=float(d["mean"]),
            lo=float(d["lo"]),
            hi=float(d["hi"]),
            per_seed=tuple(float(v) for v in d.get("per_seed", ())),
            n=int(d.get("n", 1)),
            method=d.get("method", "exact"),
            unit=d.get("unit", ""),
        )

    # ------------------------------------------------------------------ text
    def fmt(self, digits: int | None = None) -> str:
        """``84.6% [81.7, 87.6]``, ``+80.0 pp [78.4, 81.5]``, ``1.04× [0.98, 1.10]``."""
        return fmt(self, digits=digits)

    def __str__(self) -> str:
        return self.fmt()

    @property
    def has_interval(self) -> bool:
        return self.hi > self.lo


def _num(x: float, digits: int) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{max(digits, 1)}g}"
    return f"{x:.{digits}f}" if abs(x) < 100 else f"{x:,.0f}"


def fmt(m: Metric | Mapping | float, digits: int | None = None) -> str:
    """Format a metric (or its results-file dict, or a number) by its unit."""
    if not isinstance(m, Metric):
        m = Metric.from_dict(m)
    if m.unit == "rate":
        d = 1 if digits is None else digits
        core, lo, hi = f"{100 * m.mean:.{d}f}%", f"{100 * m.lo:.{d}f}", f"{100 * m.hi:.{d}f}"
    elif m.unit == "diff":
        d = 1 if digits is None else digits
        core, lo, hi = f"{100 * m.mean:+.{d}f} pp", f"{100 * m.lo:+.{d}f}", f"{100 * m.hi:+.{d}f}"
    elif m.unit == "ratio":
        d = 2 if digits is None else digits
        core, lo, hi = f"{m.mean:.{d}f}×", f"{m.lo:.{d}f}", f"{m.hi:.{d}f}"
    else:
        d = 3 if digits is None else digits
        core, lo, hi = _num(m.mean, d), _num(m.lo, d), _num(m.hi, d)
    return f"{core} [{lo}, {hi}]" if m.has_interval else core


# ----------------------------------------------------------------------------- resampling
def _as_2d(scores, name: str) -> np.ndarray:
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty (P,) or (S, P) array (seeds x problems); got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite")
    return x


SEED_KINDS = ("training", "sampling")


def _weights(n_boot: int, s: int, p: int, seed: int, seeds: str = "training") -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap multiplicities: (B, S) for seeds and (B, P) for problems.

    ``seeds="training"``: each seed is a separately trained model, a random factor of its own,
    so problems *and* seeds are resampled (the "pigeonhole" bootstrap for crossed designs,
    Owen 2007; mildly conservative).  ``seeds="sampling"``: the seeds only re-draw samples from
    one model, so a problem's samples over all seeds are exchangeable replicates and the
    problems are the only independent units: resampling them is the plain cluster bootstrap.
    """
    if seeds not in SEED_KINDS:
        raise ValueError(f"seeds must be one of {SEED_KINDS}; got {seeds!r}")
    rng = np.random.default_rng(seed)
    wp = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(float)
    ws = (
        rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot).astype(float)
        if s > 1 and seeds == "training"
        else np.ones((n_boot, s))
    )
    return ws, wp


def _boot_means(x: np.ndarray, ws: np.ndarray, wp: np.ndarray) -> np.ndarray:
    return np.einsum("bs,sp,bp->b", ws, x, wp) / x.size


def _interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(samples, [q, 100 - q])
    return float(lo), float(hi)


def rate(
    scores,
    *,
    seeds: str = "training",
    n_boot: int = N_BOOT,
    seed: int = SEED,
    bounds: tuple[float, float] = (0.0, 1.0),
    unit: str = "rate",
) -> Metric:
    """Mean of per-seed, per-problem scores (S, P) with a bootstrap interval over problems
    and, for training seeds, seeds (see :func:`_weights`).

    ``bounds`` is the metric's range; scores outside it are an error (a rate is in [0, 1]).
    """
    x = _as_2d(scores, "scores")
    if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
        raise ValueError(f"scores must lie in {list(bounds)}; got min {x.min()}, max {x.max()}")
    ws, wp = _weights(n_boot, *x.shape, seed, seeds)
    lo, hi = _interval(_boot_means(x, ws, wp))
    mean = float(x.mean())
    return Metric(
        mean=mean,
        lo=min(lo, mean),
        hi=max(hi, mean),
        per_seed=tuple(x.mean(axis=1)),
        n=int(x.size),
        method="bootstrap",
        unit=unit,
    )


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must be on the same problems; got {a.shape[1]} and {b.shape[1]} problems")
    if a.shape[0] != b.shape[0]:
        # One side measured once (e.g. a fixed teacher sampled with one seed): repeat it.
        if 1 in (a.shape[0], b.shape[0]):
            s = max(a.shape[0], b.shape[0])
            a, b = np.broadcast_to(a, (s, a.shape[1])), np.broadcast_to(b, (s, b.shape[1]))
        else:
            raise ValueError(f"a and b must have the same number of seeds (or one); got {a.shape[0]} and {b.shape[0]}")
    return np.asarray(a), np.asarray(b)


def paired_diff(a, b, *, seeds: str = "training", n_boot: int = N_BOOT, seed: int = SEED) -> Metric:
    """mean(a) − mean(b), a and b (S, P) on the same problems, paired bootstrap interval."""
    a, b = _paired(a, b)
    ws, wp = _weights(n_boot, *a.shape, seed, seeds)
    d = _boot_means(a - b, ws, wp)
    lo, hi = _interval(d)
    mean = float(a.mean() - b.mean())
    return Metric(
        mean=mean,
        lo=min(lo, mean),
        hi=max(hi, mean),
        per_seed=tuple(a.mean(1) - b.mean(1)),
        n=int(a.size),
        method="paired-bootstrap",
        unit="diff",
    )


def paired_ratio(a, b, *, seeds: str = "training", n_boot: int = N_BOOT, seed: int = SEED) -> Metric:
    """mean(a) / mean(b) on the same problems; numerator and denominator resampled together."""
    a, b = _paired(a, b)
    if b.mean() <= 0:
        raise ValueError("paired_ratio: mean(b) must be > 0")
    ws, wp = _weights(n_boot, *a.shape, seed, seeds)
    num, den = _boot_means(a, ws, wp), _boot_means(b, ws, wp)
    ok = den > 0
    lo, hi = _interval(num[ok] / den[ok])
    mean = float(a.mean() / b.mean())
    per_seed = tuple(float(x / y) if y > 0 else float("nan") for x, y in zip(a.mean(1), b.mean(1)))
    per_seed = tuple(v for v in per_seed if math.isfinite(v))
    return Metric(
        mean=mean,
        lo=min(lo, mean),
        hi=max(hi, mean),
        per_seed=per_seed,
        n=int(a.size),
        method="paired-bootstrap",
        unit="ratio",
    )


def over_seeds(values: Sequence[float], *, n_boot: int = N_BOOT, seed: int = SEED, unit: str = "") -> Metric:
    """Mean of one value per seed with the percentile bootstrap over seeds."""
    v = np.asarray([float(x) for x in values], dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"values must be a non-empty list of finite numbers; got {list(values)!r}")
    mean = float(v.mean())
    if v.size == 1:
        return Metric(mean=mean, lo=mean, hi=mean, per_seed=(mean,), n=1, method="seeds", unit=unit)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(v.size, np.full(v.size, 1.0 / v.size), size=n_boot)
    lo, hi = _interval(w @ v / v.size)
    return Metric(
        mean=mean, lo=min(lo, mean), hi=max(hi, mean), per_seed=tuple(v), n=int(v.size), method="seeds", unit=unit
    )


def paired_seeds(
    a: Sequence[float], b: Sequence[float], *, n_boot: int = N_BOOT, seed: int = SEED, unit: str = ""
) -> Metric:
    """mean(a − b) over seeds (seed s of a paired with seed s of b), bootstrap over seeds."""
    if len(a) != len(b):
        raise ValueError(f"a and b must have one value per seed each; got {len(a)} and {len(b)}")
    m = over_seeds([float(x) - float(y) for x, y in zip(a, b)], n_boot=n_boot, seed=seed, unit=unit)
    return Metric(m.mean, m.lo, m.hi, m.per_seed, m.n, "paired-seeds", unit)


def as_metric(x: "Metric | Mapping[str, Any] | float") -> Metric:
    """Any metric a chapter or a results file holds (a :class:`Metric`, its JSON dict, or a plain number) as a Metric.

    The one coercion every reader of results uses (chapters' verdict rules, plots, tables).
    """
    return x if isinstance(x, Metric) else Metric.from_dict(x)


def exact(x: float, unit: str = "") -> Metric:
    """A number with no sampling uncertainty (arithmetic on published figures)."""
    x = float(x)
    return Metric(mean=x, lo=x, hi=x, per_seed=(), n=1, method="exact", unit=unit)


# ----------------------------------------------------------------------------- seed-level t
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with integer ``df`` degrees of freedom (no SciPy).

    The CDF is the closed form of Abramowitz & Stegun 26.7.3-4 for integer ``df``; the
    quantile is found by bisection to machine precision.

    >>> round(t_quantile(0.975, 2), 3), round(t_quantile(0.975, 4), 3), round(t_quantile(0.5, 7), 3)
    (4.303, 2.776, 0.0)
    """
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df must be an int >= 1; got {df!r}")
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1); got {p!r}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, int(df)) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, int(df)) < p else (lo, mid)
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _t_cdf(t: float, df: int) -> float:
    """P(T <= t) for t >= 0 (A&S 26.7.3 for odd ``df``, 26.7.4 for even)."""
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:  # odd: (2/π)(θ + sinθ (cosθ + 2/3 cos³θ + ...)), the sum up to cos^(df-2)
        term, total = c, c if df > 1 else 0.0
        for k in range(3, df - 1, 2):
            term *= (k - 1) / k * c * c
            total += term
        a = 2 / math.pi * (theta + s * total)
    else:  # even: sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ...), the sum up to cos^(df-2)
        term = total = 1.0
        for k in range(2, df - 1, 2):
            term *= (k - 1) / k * c * c
            total += term
        a = s * total
    return (1 + a) / 2


def seed_t_interval(per_seed: Sequence[float], level: float = LEVEL, *, unit: str = "") -> Metric:
    """Mean of one value per seed with the Student t interval over seeds (df = n − 1).

    mean ± t(1 − (1 − level)/2, n − 1) · sd / √n, with the sample sd (ddof = 1).  It treats the
    seeds as a normal sample: with three seeds (df = 2) the factor is 4.30, the honest width of
    what three seeds can say.  The interval may leave a rate's [0, 1]; it is not clipped.
    Needs at least two seeds.

    >>> m = seed_t_interval([0.094, 0.330, 0.108])
    >>> round(m.lo, 3), round(m.hi, 3), m.method
    (-0.152, 0.506, 'seed-t')
    """
    v = np.asarray([float(x) for x in per_seed], dtype=float)
    if v.size < 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"per_seed must hold at least two finite numbers; got {list(per_seed)!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    mean = float(v.mean())
    half = t_quantile(1 - (1 - level) / 2, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return Metric(
        mean=mean, lo=mean - half, hi=mean + half, per_seed=tuple(v), n=int(v.size), method="seed-t", unit=unit
    )


# ----------------------------------------------------------------------------- pass@k
def pass_at_k_estimate(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct of ``n`` samples (Chen et al. 2021):
    1 − C(n−c, k) / C(n, k), computed as 1 − ∏_{i=n−c+1}^{n} (1 − k/i).

    >>> pass_at_k_estimate(2, 1, 1), pass_at_k_estimate(5, 0, 3), pass_at_k_estimate(5, 3, 3)
    (0.5, 0.0, 1.0)
    """
    for name, v, lo in (("n", n, 1), ("c", c, 0), ("k", k, 1)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {v!r}")
    if c > n:
        raise ValueError(f"c (correct samples) must be <= n={n}; got {c}")
    if k > n:
        raise ValueError(f"k must be <= n={n} (samples drawn); got {k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_scores(counts, n: int, k: int) -> np.ndarray:
    """(S, P) per-problem unbiased pass@k from correct counts (S, P) of n samples each."""
    c = np.asarray(counts, dtype=int)
    c2 = c if c.ndim == 2 else c[None, :]
    return np.array([[pass_at_k_estimate(int(n), int(x), int(k)) for x in row] for row in c2])


def pass_at_k(counts, n: int, ks: Sequence[int], **kw) -> dict[int, Metric]:  # kw: seeds=, n_boot=
    """pass@k for each k ≤ n, with :func:`rate` intervals over problems and seeds."""
    return {int(k): rate(pass_at_k_scores(counts, n, k), **kw) for k in ks if k <= n}


def crossover_k(curve_a: Mapping[int, Metric], curve_b: Mapping[int, Metric]) -> int | None:
    """The smallest k at which curve b's mean reaches curve a's (None if it never does)."""
    for k in sorted(set(curve_a) & set(curve_b)):
        if curve_b[k].mean >= curve_a[k].mean:
            return int(k)
    return None


__all__ = [
    "Metric",
    "fmt",
    "rate",
    "paired_diff",
    "paired_ratio",
    "over_seeds",
    "paired_seeds",
    "exact",
    "seed_t_interval",
    "t_quantile",
    "pass_at_k",
    "pass_at_k_estimate",
    "pass_at_k_scores",
    "crossover_k",
    "N_BOOT",
    "LEVEL",
]
