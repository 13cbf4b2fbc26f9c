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
