"""Plot helpers for the book.

Every function takes an ``ax`` and data read from a results file (never notebook
globals) and returns the ``ax``.  :func:`setup_book` sets one style for all chapters.
The training and RL code never imports this package.

Layout: :mod:`.common` holds the style, colours, error bars and the tables several chapters
show; each chapter with figures has its own module (:mod:`.cost`, :mod:`.lab`, :mod:`.rl`,
:mod:`.distillation`, :mod:`.censorship`, :mod:`.engineering`, :mod:`.thesis`), which imports
:mod:`.common` and never another chapter's module.  Every public name is re-exported here, so
``from minir1.publish import plots; plots.cost_bars(...)`` works.
"""

from __future__ import annotations

from .censorship import (
    dose_response,
    finetune_curve,
    finetune_task_curve,
    published_refusals_table,
    refusal_detector_bars,
    removal_bars,
)
from .common import BOOK_STYLE, PALETTE, band, bench_table, ci_bars, setup_book, unlabelled_axes
from .cost import cost_bars, mfu_bars
from .distillation import (
    distill_bars,
    distill_compute_table,
    distill_curve,
    distill_frontier,
    distill_table,
    distill_validation,
)
from .engineering import (
    eng_decode,
    eng_expert_load,
    eng_kv_bars,
    eng_kv_table,
    eng_loss_curves,
    eng_model_table,
    eng_multiplier_by_scale,
    eng_summary_table,
)
from .lab import capability_table, loss_curve, pass_at_k_bars
from .rl import (
    REWARD_LABELS,
    passk_curves,
    rl_behaviour_curves,
    rl_behaviour_vs_accuracy,
    rl_curves,
    rl_easy_table,
    rl_hard_table,
    rl_length_curves,
    rl_passk_hard,
    rl_reward_curves,
    rl_table,
)
from .thesis import (
    thesis_chips_table,
    thesis_cost_table,
    thesis_intervals,
    thesis_match_table,
    thesis_rows_table,
    thesis_simulation,
    thesis_variants_table,
)

__all__ = [
    # style and shared helpers
    "BOOK_STYLE",
    "PALETTE",
    "band",
    "bench_table",
    "ci_bars",
    "setup_book",
    "unlabelled_axes",
    # cost
    "cost_bars",
    "mfu_bars",
    # lab
    "capability_table",
    "loss_curve",
    "pass_at_k_bars",
    # rl
    "REWARD_LABELS",
    "passk_curves",
    "rl_behaviour_curves",
    "rl_behaviour_vs_accuracy",
    "rl_curves",
    "rl_easy_table",
    "rl_hard_table",
    "rl_length_curves",
    "rl_passk_hard",
    "rl_reward_curves",
    "rl_table",
    # distillation
    "distill_bars",
    "distill_compute_table",
    "distill_curve",
    "distill_frontier",
    "distill_table",
    "distill_validation",
    # censorship
    "dose_response",
    "finetune_curve",
    "finetune_task_curve",
    "published_refusals_table",
    "refusal_detector_bars",
    "removal_bars",
    # engineering
    "eng_decode",
    "eng_expert_load",
    "eng_kv_bars",
    "eng_kv_table",
    "eng_loss_curves",
    "eng_model_table",
    "eng_multiplier_by_scale",
    "eng_summary_table",
    # thesis
    "thesis_chips_table",
    "thesis_cost_table",
    "thesis_intervals",
    "thesis_match_table",
    "thesis_rows_table",
    "thesis_simulation",
    "thesis_variants_table",
]
