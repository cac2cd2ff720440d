"""Shared fixtures: a private artifact cache, one thread, the tokenizer."""

import pytest
import torch

from minir1.tokenizer import build_tokenizer


@pytest.fixture()
def tmp_artifacts(tmp_path, monkeypatch):
    """Trained models and cached evaluations go to a temp folder, never to .artifacts/."""
    monkeypatch.setenv("MINIR1_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


@pytest.fixture()
def one_thread():
    """Tiny models run faster on one thread, and much faster when the two cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tok():
    return build_tokenizer()
