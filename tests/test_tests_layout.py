"""The tests are laid out like the package (issue #22) and import only helpers, never each other.

Read from the source with ``ast`` (every ``import`` statement, also those inside functions), like
tests/test_import_layers.py:

- no module under tests/ imports a test module (``test_*.py``) or conftest.py: what several modules
  share lives in tests/helpers.py (or the helper modules beside it, e.g. ddp_harness.py);
- no file under benchmarks/ imports a module of tests/ or puts tests/ on ``sys.path``: what a
  benchmark shares with a test lives under benchmarks/ (learning_configs.py, scan_paws_runs.py);
- test files sit in a folder named after what they test (``tests/<topic>/test_*.py``), except the
  repository-wide ones at the top, and every test basename is unique (pytest's default import
  mode puts each test file's own folder on ``sys.path`` and imports it by basename).
"""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from helpers import REPO, TESTS

BENCHMARKS = REPO / "benchmarks"
TOP_LEVEL = {"test_import_layers.py", "test_readme.py", "test_tests_layout.py"}  # about the whole repository


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imported_names(path: Path) -> set[str]:
    """The first component of every module ``path`` imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


TEST_MODULES = {p.stem for p in python_files(TESTS) if p.name.startswith("test_")}
TESTS_MODULES = {p.stem for p in python_files(TESTS)}  # helpers, conftest, ddp_harness and the test modules


def names_of_test_modules(names: set[str]) -> set[str]:
    """The names of test modules (any ``test_*``, also one renamed since) and conftest in ``names``."""
    return {n for n in names if n.startswith("test_") or n == "conftest"}


def test_no_test_module_imports_another_test_module():
    found = {f"{p.relative_to(REPO)} imports {name}" for p in python_files(TESTS)
             for name in names_of_test_modules(imported_names(p))}
    assert not found, "import from tests/helpers.py instead: " + "; ".join(sorted(found))


def test_no_benchmark_imports_from_tests():
    found = {f"{p.relative_to(REPO)} imports {name}" for p in python_files(BENCHMARKS)
             for name in imported_names(p) & (TESTS_MODULES | {"tests"}) | names_of_test_modules(imported_names(p))}
    found |= {f"{p.relative_to(REPO)} names the folder tests" for p in python_files(BENCHMARKS)
              if "tests" in string_constants(p)}  # e.g. sys.path.insert(0, str(ROOT / "tests"))
    assert not found, "move what a benchmark shares with a test under benchmarks/: " + "; ".join(sorted(found))


def test_test_files_sit_in_topic_folders_with_unique_basenames():
    files = [p for p in python_files(TESTS) if p.name.startswith("test_")]
    loose = sorted(p.name for p in files if p.parent == TESTS and p.name not in TOP_LEVEL)
    topics = sorted({p.parent.name for p in files if p.parent != TESTS})
    assert not loose, f"move {loose} into the folder of what they test: tests/{{{','.join(topics)}}}/"
    twice = [name for name, n in Counter(p.name for p in files).items() if n > 1]
    assert not twice, f"test basenames must be unique (pytest imports them by basename): {twice}"


def test_the_checks_catch_what_they_look_for(tmp_path):
    """A benchmark as it was before (tests/ on sys.path, a test module imported inside a function)
    is caught by both readers; the module sets are the real ones."""
    bad = tmp_path / "bench.py"
    bad.write_text('import sys\nsys.path[:0] = [str(ROOT), str(ROOT / "tests")]\n\n\n'
                   'def run():\n    from test_scan_paws_learning import SCAN_SETTINGS\n    import helpers.x\n')
    assert imported_names(bad) & (TESTS_MODULES | {"tests"}) == {"test_scan_paws_learning", "helpers"}
    assert names_of_test_modules(imported_names(bad) | {"conftest", "test_cli"}) == {"test_scan_paws_learning", "conftest",
                                                                               "test_cli"}
    assert "tests" in string_constants(bad)
    assert {"test_readme", "test_import_layers"} <= TEST_MODULES and {"helpers", "conftest"} <= TESTS_MODULES - TEST_MODULES
