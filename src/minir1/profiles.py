"""Execution profiles: named presets that every chapter understands.

``smoke`` is for CI (seconds per notebook), ``cpu`` is what the published book shows
(minutes per chapter on two CPU cores), ``gpu`` uses larger models or a real local
Hugging Face checkpoint.  Chapters receive the profile as a papermill parameter and
call :func:`check_profile` before doing anything else, so a typo stops the run early
and nothing is written.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from .utils import device as _device
from .utils import set_device

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


class DeviceError(RuntimeError):
    """A profile's promise about the hardware does not hold on this machine."""


def check_device(profile: str, device: str = "") -> str:
    """The device a run of ``profile`` computes on; stop early when the profile's promise fails.

    ``device=""`` means the profile's own choice: ``"cuda"`` when a GPU is visible, else
    ``"cpu"``, except that the ``gpu`` profile on a machine without CUDA raises
    :class:`DeviceError` naming the profile, the device found and how to run anyway
    (``device="cpu"`` given explicitly).  An explicit ``"cuda"`` without CUDA also raises.
    The resolved device is remembered (:func:`current_device`) and results record it.

    >>> check_device("smoke", device="cpu")
    'cpu'
    """
    check_profile(profile)
    if device not in ("", "cpu", "cuda"):
        raise ValueError(f"device must be one of '', 'cpu', 'cuda'; got {device!r}")
    has_cuda = torch.cuda.is_available()
    found = torch.cuda.get_device_name(0) if has_cuda else f"cpu ({torch.get_num_threads()} threads), no CUDA"
    if not has_cuda and (device == "cuda" or (profile == "gpu" and not device)):
        raise DeviceError(
            f"profile {profile!r} needs a CUDA GPU, but this machine has {found}. To run its model "
            f"shapes on the CPU anyway (slow; results record device 'cpu' and are never published as "
            f'a gpu result), pass device="cpu" explicitly, e.g. `papermill -p profile {profile} '
            f"-p device cpu ...`."
        )
    resolved = device or ("cuda" if has_cuda else "cpu")
    set_device(resolved)  # remembered in minir1.utils: every model of this run goes there
    return resolved


def current_device() -> str:
    """The device :func:`check_device` resolved in this process (else the default one).

    The one setting is :func:`minir1.utils.device`'s (set through :func:`minir1.utils.set_device`).
    """
    return _device()


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
