"""The benchmark suites' files (benchmarks/*.yaml): a cpu-tiny cell is its method's learning-test run."""
from __future__ import annotations

from learning_configs import learning_config
from ssl_bench.build import full_config
from ssl_bench.sweep.spec import load_spec


def test_cpu_tiny_cells_are_the_learning_tests_runs(repo, tmp_path):
    """Every trained cell of the cpu-tiny suite resolves (every default filled in) to the config its
    learning test runs, so the suite's table and the tests' numbers are one measurement. While the
    suite kept its own copy of the settings, it drifted: iBOT's and DINOv2's weight-decay ramp,
    InfoMin's queue and recipe, PAWS's support batch, and 14 epochs where six tests run 10."""
    spec = load_spec(repo / "benchmarks/cpu-tiny.yaml", sweep_dir=tmp_path / "sweep", check_configs=False)
    trained = [cell for cell in spec.cells if not cell.is_baseline]
    assert len(trained) >= 22
    for cell in trained:
        suite = full_config(cell.config)
        test = full_config(learning_config(cell.method, tmp_path / "test"))
        for section in ("model", "data", "trainer"):
            assert suite[section] == test[section], (cell.method, section)
