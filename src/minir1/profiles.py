"""Execution profiles: named presets that every chapter understands.

``smoke`` is for CI (seconds per notebook), ``cpu`` is what the published book shows
(minutes per chapter on two CPU cores), ``gpu`` uses larger models or a real local
Hugging Face checkpoint.  Chapters receive the profile as a papermill parameter and
call :func:`check_profile` before doing anything else, so a typo stops the run early
and nothing is written.
"""
from __future__ import annotations

from typing import TypeVar

PROFILES: tuple[str, ...] = ("smoke", "cpu", "gpu")
PUBLISHED_PROFILES: tuple[str, ...] = ("cpu", "gpu")  # what book/chapters/ may hold

T = TypeVar("T")


def check_profile(profile: str) -> str:
    """Return ``profile`` if valid, else raise ``ValueError`` naming the allowed values.

    >>> check_profile("cpu")
    'cpu'
    """
    if profile not in PROFILES:
        allowed = ", ".join(repr(p) for p in PROFILES)
        raise ValueError(f"profile must be one of {allowed}; got {profile!r}")
    return profile


def pick(profile: str, *, smoke: T, cpu: T, gpu: T | None = None) -> T:
    """Choose the value for ``profile``; ``gpu`` falls back to ``cpu`` when not given.

    >>> pick("smoke", smoke=1, cpu=10)
    1
    """
    check_profile(profile)
    if profile == "smoke":
        return smoke
    if profile == "gpu" and gpu is not None:
        return gpu
    return cpu
