"""Shared fixtures. Tests read the benchmark tables in place: from $ARCHGEN_DATA
if set, else from the copy packaged with archgen (archgen/benchmarks, gzip'd)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _measurement_cache_in_tmp(tmp_path_factory):
    """Tests never write into the user's ~/.cache."""
    os.environ["ARCHGEN_CACHE"] = str(tmp_path_factory.mktemp("cache") / "measurements.sqlite")


# Calibrations are stored by default (archgen.calibrations, at $ARCHGEN_CALIBRATIONS) and
# restored by every later ArchGen: one left by another test would be restored into this
# test's objects (a device expected to be unknown, known). So each test, and the shared
# objects of each module and of the session (an ArchGen of a module-scoped fixture is made
# before the test's own fixtures run), get an empty store of their own. The measurement
# cache stays where the session put it.
def _empty_calibration_store(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHGEN_CALIBRATIONS", str(tmp_path_factory.mktemp("calibrations")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _calibration_store_of_session(tmp_path_factory):
    yield from _empty_calibration_store(tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def _calibration_store_of_module(tmp_path_factory):
    yield from _empty_calibration_store(tmp_path_factory)


@pytest.fixture(autouse=True)
def _calibration_store_of_test(tmp_path_factory):
    """Each test starts with an empty calibration store of its own."""
    yield from _empty_calibration_store(tmp_path_factory)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The benchmark folder in use: $ARCHGEN_DATA if set, else the packaged copy."""
    from archgen.data import data_root
    from archgen.errors import DataError

    try:
        return data_root()
    except DataError as exc:  # e.g. ARCHGEN_DATA names a folder that does not exist
        pytest.fail(str(exc))


def require_table(space: str, root=None):
    """The table of ``space`` from ``root`` (default: the folder in use), or skip
    the test, with the reason, where that folder lacks it."""
    from archgen.data import LAYOUT, data_root, find_file

    folder = data_root(root) / LAYOUT[space].folder
    missing = [name for name in LAYOUT[space].files if find_file(folder, name) is None]
    if missing:
        pytest.skip(f"the benchmark folder {folder} lacks {', '.join(missing)} (table {space!r})")
    from archgen.data import load_table

    return load_table(space, root)


def require_file(root, relative: str) -> Path:
    """``root/relative`` (or its ``.gz``), or skip the test where the folder lacks it.
    Open it with :func:`archgen.data.open_text`."""
    from archgen.data import find_file

    path = find_file((Path(root) / relative).parent, Path(relative).name)
    if path is None:
        pytest.skip(f"the benchmark folder {root} lacks {relative}")
    return path


@pytest.fixture(scope="session")
def nb201_table(data_root):
    return require_table("nb201", data_root)


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
