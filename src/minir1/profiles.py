"""Execution profiles: named presets that every chapter understands.

``smoke`` is for CI (seconds per notebook), ``cpu`` is what the published book shows
(minutes per chapter on two CPU cores), ``gpu`` uses larger models or a real local
Hugging Face checkpoint.  Chapters receive the profile as a papermill parameter and
call :func:`check_profile` before doing anything else, so a typo stops the run early
and nothing is written.
"""

from __future__ import annotations

import numbers
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


# ----------------------------------------------------------------------------- chapter parameters
class ParameterError(ValueError):
    """A chapter parameter holds a value the chapter cannot use (e.g. as typed with ``papermill -p``)."""


_SEEDS_ALLOWED = (
    'distinct non-negative integers: a list ([0, 1, 2]), a string of them ("0,1,2", "0 1 2" or '
    '"[0, 1, 2]") or a single integer (3). With papermill: -p seeds "0,1,2" or -y "seeds: [0, 1, 2]"'
)


def _bad(name: str, value, allowed: str) -> ParameterError:
    return ParameterError(f"parameter {name}: got {value!r} ({type(value).__name__}); allowed: {allowed}")


def _seed(item, value) -> int:
    """One seed from an int or a string of digits; anything else (bools, floats) is an error."""
    if isinstance(item, str) and item.strip().isdigit():
        return int(item.strip())
    if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < 0:
        raise _bad("seeds", value, _SEEDS_ALLOWED)
    return int(item)


def parse_seeds(value) -> list[int]:
    """The seeds a person typed, as a list of ints; :class:`ParameterError` naming the forms otherwise.

    ``papermill -p`` passes strings (``-p seeds "0,1"``) and a lone number as an int.

    >>> parse_seeds([0, 1, 2]), parse_seeds("0,1,2"), parse_seeds("[0, 1, 2]"), parse_seeds(3), parse_seeds("3")
    ([0, 1, 2], [0, 1, 2], [0, 1, 2], [3], [3])
    """
    if isinstance(value, str):
        text = value.strip()
        if text[:1] + text[-1:] in ("[]", "()"):
            text = text[1:-1]
        items = text.replace(",", " ").split()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    seeds = [_seed(item, value) for item in items]
    if not seeds or len(set(seeds)) != len(seeds):
        raise _bad("seeds", value, _SEEDS_ALLOWED)
    return seeds


def _choice(name: str, value, allowed: tuple[str, ...], example: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else ("" if value is None and "" in allowed else value)
    if text not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise _bad(name, value, f"one of {shown} (e.g. papermill -p {name} {example})")
    return text


def _model_path(value) -> str:
    """A local checkpoint directory, or "" (none); a path that is not a directory stops here."""
    import os

    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if not isinstance(value, (str, os.PathLike)) or not os.path.isdir(os.path.expanduser(str(value).strip())):
        raise _bad(
            "model_path", value, '"" (none) or an existing local checkpoint directory (papermill -p model_path DIR)'
        )
    return str(value).strip()


def chapter_parameters(**given):
    """The parameters of a chapter notebook, checked and normalised, in the order given.

    One line after a notebook's ``parameters`` cell::

        profile, seeds, device = chapter_parameters(profile=profile, seeds=seeds, device=device)

    ``profile``, ``device``, ``model_path`` and ``checkpoint`` are strings (``device=None``,
    ``model_path=None`` and ``checkpoint=None`` mean ""); ``seeds`` goes through :func:`parse_seeds`.  The defaults
    come back unchanged.  Anything else raises :class:`ParameterError` naming the parameter,
    the value given and what is allowed, before the chapter computes anything.

    >>> chapter_parameters(profile="cpu", seeds="0,1", device="")
    ('cpu', [0, 1], '')
    """
    parsers = {
        "profile": lambda v: _choice("profile", v, PROFILES, "cpu"),
        "seeds": parse_seeds,
        "device": lambda v: _choice("device", v, ("", "cpu", "cuda"), "cpu"),
        "model_path": _model_path,
        "checkpoint": _model_path,  # the RL chapter's optional local Hugging Face checkpoint folder
    }
    unknown = sorted(set(given) - set(parsers))
    if unknown:
        raise TypeError(f"chapter_parameters() knows {sorted(parsers)}; got {unknown}")
    out = tuple(parsers[name](value) for name, value in given.items())
    return out[0] if len(out) == 1 else out
