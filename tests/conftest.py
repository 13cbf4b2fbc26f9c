"""Shared fixtures: the repository paths, and the tests/, examples/ and benchmarks/ folders importable
so that ``from helpers import QUIET``, ``--model align_uniform.AlignUniform`` and the learning tests'
``from learning_configs import MARGIN`` resolve (a test module's own folder is put on ``sys.path`` by
pytest, so ``--model test_module.Class`` resolves in the test's process). Shared values and functions:
tests/helpers.py."""
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from helpers import REPO  # pytest put tests/ (this file's folder) on sys.path before importing it

for folder in (REPO / "tests", REPO / "examples", REPO / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _share_the_cores() -> None:
    """Under pytest-xdist (``-n``), give each test process its share of the cores as torch threads,
    and the same to the processes it starts (CLI runs, DDP ranks), instead of every process using all
    of them: on 2 cores, two one-thread processes finish the suite much sooner than one with two."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


_share_the_cores()


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> float:
    """k-NN top-1 of the learning tests' tiny CNN at random initialisation (seed 0): computed once per
    session and shared by every tests/learning/test_learning*.py module."""
    from learning_configs import random_init_knn

    return random_init_knn("simclr", tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="session")
def learning_runs(tmp_path_factory) -> Path:
    """One folder for the session's learning-test runs, so that a run several tests or modules
    need is trained once (the learning tests' runs, the SCAN test's SimCLR checkpoint)."""
    return tmp_path_factory.mktemp("learning_runs")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of slow (learning) tests first, those with the most slow tests (the longest) first,
    each file's tests in their own order: pytest-xdist hands out files in this order
    (``--no-loadscope-reorder``), so the few long files start early and the many short ones fill the
    gaps, instead of a long file starting last on one core."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])
