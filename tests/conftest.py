"""Shared fixtures: the repository paths, and the tests/ and examples/ folders importable so that
``--model test_module.Class`` and ``--model align_uniform.AlignUniform`` resolve."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO / "tests", REPO / "examples"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> float:
    """k-NN top-1 of the learning tests' tiny CNN at random initialisation (seed 0): computed once per
    session and shared by every tests/test_learning*.py module."""
    from learning_configs import random_init_knn

    return random_init_knn("simclr", tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="session")
def learning_runs(tmp_path_factory) -> Path:
    """One folder for the session's learning-test runs, so that a run several tests or modules
    need is trained once (test_learning.py's runs, the SCAN test's SimCLR checkpoint)."""
    return tmp_path_factory.mktemp("learning_runs")
