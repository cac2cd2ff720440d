"""The distillation chapter's config (its own module, so the chapter's companions can import it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import models
from ..train import TrainConfig
from .recipes.lab_grpo import LabGRPOConfig


@dataclass(frozen=True)
class DistillConfig:
    """The chapter's settings, composed with the teacher recipe's (``teacher``), which holds the lab's."""

    teacher: LabGRPOConfig = field(default_factory=LabGRPOConfig)  # the teacher: GRPO on the lab base
    students: tuple[str, ...] = ("nano", "pico")  # presets smaller than the teacher's (R1: 1.5B-70B from 671B)
    teacher_seed: int = 0  # which of the RL chapter's GRPO runs is the teacher
    n_prompts: int = 400  # train-split prompts sent to the teacher (R1: ~600K reasoning samples kept)
    n_val: int = 100  # further train-split problems held out for choosing SFT steps
    samples_per_prompt: int = 4  # teacher samples per prompt for rejection sampling (R1: several)
    temperature: float = 1.0  # teacher sampling temperature (the RL chapter's training temperature)
    verify: bool = True  # keep only verified traces (R1); False keeps every sample (smoke only)
    sft: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=120, batch_size=32, lr=3e-3, warmup_steps=10, log_every=40, desc="SFT", progress=False
        )
    )
    # The rule for SFT steps, written before the run: train (a) with seed 0 for each candidate, score
    # answer-level pass@1 on the validation split (the eval sampling, one seed), and take the FEWEST steps
    # whose validation pass@1 is within `val_tolerance` of the best candidate's.  The "best" student is the
    # one with the highest validation pass@1 at its chosen steps (ties: the smaller); the "cheap" student is
    # the smallest within `val_tolerance` of the best.  The held-out set plays no part in either choice.
    sft_candidates: tuple[int, ...] = (60, 120, 240)
    val_tolerance: float = 0.02
    n_seeds: int = 5  # training seeds of every arm a verdict reads (distillation, GRPO, big + GRPO); issue 24: >= 5
    control_seeds: int = 2  # seeds of the controls no verdict reads (answers only, logit KD, the curve)
    n_samples: int = 8  # held-out samples per problem at R1's sampling (the lab's 16, halved for the budget)
    flops_tolerance: float = 0.05  # equal-FLOPs arms agree within 5% per seed (GRPO stops on spent FLOPs)
    kd_temperature: float = 1.0  # softmax temperature of logit KD (Hinton et al. 2015 use T > 1 with hard labels)
    fractions: tuple[float, ...] = (0.1, 1.0)  # shares of the trace set for the sample-efficiency curve
    curve_student: str = "nano"  # the student size of the sample-efficiency curve
    big_rl: bool = True  # also give the teacher's base GRPO at the best student's distillation FLOPs
    dry_run: bool = False  # two steps everywhere, gpu shapes (tests)

    def __post_init__(self):
        if not self.students:
            raise ValueError("students must name at least one preset")
        for p in self.students:
            models._check_preset(p)
        if self.curve_student not in self.students:
            raise ValueError(f"curve_student must be one of students {self.students}; got {self.curve_student!r}")
        if not all(0 < f <= 1 for f in self.fractions) or 1.0 not in self.fractions:
            raise ValueError(f"fractions must lie in (0, 1] and include 1.0; got {self.fractions}")
        if not self.sft_candidates or min(self.sft_candidates) < 1:
            raise ValueError(f"sft_candidates must be step counts >= 1; got {self.sft_candidates}")
        if not 1 <= self.control_seeds <= self.n_seeds:
            raise ValueError(f"control_seeds must lie in [1, n_seeds={self.n_seeds}]; got {self.control_seeds!r}")
        for name in ("n_prompts", "n_val", "samples_per_prompt", "n_seeds", "n_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DistillConfig.{name} must be >= 1; got {getattr(self, name)!r}")
