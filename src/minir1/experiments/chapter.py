"""What an experiment's ``run(cfg, seeds)`` returns: one small record per chapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChapterResult:
    """Everything a chapter writes to its results file, computed by ``run(cfg, seeds)``.

    ``metrics``: numbers, :class:`minir1.stats.Metric` objects or series of them;
    ``evals``: ``{eval_id: record}`` from :func:`minir1.evaluation.eval_record`;
    ``extra``: curves and samples for figures; ``flops``: compute spent; ``config``: the
    complete composed config (a dataclass); ``claims``: the verdicts, when the experiment
    computes them itself; ``wall_seconds``: time spent in ``run``; ``detail``: raw objects the
    notebook may plot (never written to the results file).
    """

    metrics: dict[str, Any]
    config: Any
    evals: dict[str, dict] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    flops: float = 0.0
    claims: list[dict] = field(default_factory=list)
    wall_seconds: float = 0.0
    detail: Any = field(default=None, repr=False)
