"""Shared fixtures. Tests read the real benchmark tables in place: from
$ARCHGEN_DATA, else from ../shared/benchmarks beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "benchmarks"

if not os.environ.get("ARCHGEN_DATA") and DEFAULT_DATA.is_dir():
    os.environ["ARCHGEN_DATA"] = str(DEFAULT_DATA)


@pytest.fixture(scope="session", autouse=True)
def _measurement_cache_in_tmp(tmp_path_factory):
    """Tests never write into the user's ~/.cache."""
    os.environ["ARCHGEN_CACHE"] = str(tmp_path_factory.mktemp("cache") / "measurements.sqlite")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("ARCHGEN_DATA")
    if not root or not Path(root).is_dir():
        pytest.fail("benchmark data not found: set ARCHGEN_DATA to the shared benchmarks folder")
    return Path(root)


@pytest.fixture(scope="session")
def nb201_table(data_root):
    from archgen.data import load_table

    return load_table("nb201", data_root)


@pytest.fixture(scope="session")
def nb201():
    from archgen.spaces import get_space

    return get_space("nb201")


BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="session")
def small_digits():
    """400 real digits (40 per class): enough to train on in seconds."""
    import numpy as np

    from archgen.training import ImageDataset, load_images

    d = load_images("digits")
    keep = np.concatenate([np.flatnonzero(d.labels == c)[:40] for c in range(10)])
    return ImageDataset(d.images[keep], d.labels[keep], d.classes, "digits[:400]")


@pytest.fixture(scope="module")
def one_thread():
    """Small networks: one intra-op thread is as fast and leaves the other core free."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
