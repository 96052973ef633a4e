import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: the full MNIST idx files of this project's development machines and CI (absent on a reader's machine)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own artefact cache and never touches the network."""
    monkeypatch.setenv("ADVDETECT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ADVDETECT_OFFLINE", "1")
    monkeypatch.delenv("ADVDETECT_PROFILE", raising=False)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def mnist5k():
    from advdetect import data

    return data.load("mnist5k")
