"""benchmarks/gpu_suite.py (issue #26) cannot rot between GPU runs: its dry run runs every part at tiny
sizes on the CPU, with wandb and submitit made unimportable and kornia's compiled kornia_rs too (the
device machine may lack them: the suite then stubs kornia_rs, which ssl_bench never uses), and writes
a JSON in which every part has a status, every measured number is finite, and the GPU-only checks say
"skipped: no GPU" instead of passing; and the markdown tables. Without kornia itself, which ssl_bench
imports at import time, the suite writes a JSON that says so instead of a traceback."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

OPTIONAL = ("wandb", "submitit")
PARTS = ("1", "2", "3", "4", "5")


def run_suite(tmp: Path, blocked: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
    """``python benchmarks/gpu_suite.py ARGS`` with ``blocked`` modules unimportable (a sitecustomize
    on PYTHONPATH puts None in sys.modules for them)."""
    blocker = tmp / "block"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked))
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    return subprocess.run([sys.executable, "benchmarks/gpu_suite.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _no_nan(token: str) -> float:
    raise AssertionError(f"non-finite number {token} in the JSON")


def _positive(row: dict, *keys: str) -> None:
    for key in keys:
        value = row.get(key)
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value, row)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_suite")
    out = tmp / "out"
    proc = run_suite(tmp, OPTIONAL + ("kornia_rs",), "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "gpu_suite.json").read_text(), parse_constant=_no_nan)
    return doc, (out / "gpu_suite.md").read_text(), proc.stdout


def test_every_part_has_a_status(dry_run):
    doc, _, stdout = dry_run
    assert doc["dry_run"] is True and set(doc["parts"]) == set(PARTS)
    statuses = {k: p["status"] for k, p in doc["parts"].items()}
    # nothing errored or failed; parts with a GPU-only item are partial, never "ok" by skipping it
    assert statuses == {"1": "ok", "2": "ok", "3": "partial", "4": "ok", "5": "partial"}, statuses
    for part in doc["parts"].values():
        for item in list(part.get("results", [])) + list(part.get("checks", {}).values()):
            assert item["status"] in ("ok", "skipped"), item
    for name in OPTIONAL:
        assert doc["device"][name].startswith("absent"), doc["device"]
    assert "kornia_rs stubbed" in doc["device"]["kornia"], doc["device"]["kornia"]
    print(f"dry run: {doc['elapsed_s']} s in the suite; parts " +
          ", ".join(f"{k} {p['elapsed_s']:.1f} s" for k, p in doc["parts"].items()))


def test_gpu_only_checks_say_skipped_no_gpu(dry_run):
    doc, _, _ = dry_run
    parts = doc["parts"]
    files_gpu = next(r for r in parts["3"]["results"] if r["pipeline"] == "files_gpu")
    assert files_gpu["status"] == "skipped" and "no GPU" in files_gpu["reason"]
    checks = parts["5"]["checks"]
    for name in ("host_syncs/simclr", "host_syncs/byol", "eval_devices/online", "eval_devices/offline"):
        assert checks[name]["status"] == "skipped" and "no GPU" in checks[name]["reason"], checks[name]
    assert checks["harness_control"]["status"] == "ok"  # the sync recorder saw the deliberate warning
    assert checks["harness_control"]["recorded_syncs"] == 1
    for sub in checks["eval_devices/offline"]["checks"].values():  # the harness ran and recorded devices
        assert sub["status"] == "skipped: no GPU"
    assert checks["eval_devices/offline"]["checks"]["knn"]["inputs"]
    for row in parts["1"]["results"]:
        assert row["peak_memory_gib"] == "skipped: no GPU" and row["mfu"] is None
    for row in parts["4"]["results"]:
        assert row["host_syncs"] == "skipped: no GPU"


def test_measured_numbers_are_finite(dry_run):
    doc, _, _ = dry_run
    parts = doc["parts"]
    rows = parts["1"]["results"]
    assert {(r["method"], r["config"]) for r in rows} == {
        (m, c) for m in ("simclr", "byol") for c in ("fp32", "bf16", "bf16_cl", "bf16_cl_compile")}
    for row in rows:
        _positive(row, "epoch_s", "images_per_s", "step_ms", "flops_per_image", "window_s")
        assert row["backbone_compiled"] == row["config"].endswith("compile")
        assert row["backbone_channels_last"] == ("_cl" in row["config"])
    for row in parts["2"]["results"]:
        _positive(row, "batched_over_per_image")
        _positive(row["per_image"], "images_per_s", "worker_busy")
    for row in parts["3"]["results"]:
        if row["status"] == "ok":
            _positive(row, "images_per_s", "images_per_cpu_s", "over_per_image")
    _positive(parts["3"]["tree"], "images", "mean_file_kib")
    methods = parts["4"]["settings"]["registered_methods"]  # ssl_bench.methods.METHODS, as the suite saw it
    assert len(methods) >= 14 and {r["method"] for r in parts["4"]["results"]} == set(methods)
    for row in parts["4"]["results"]:
        _positive(row, "step_ms")
        assert row["loss_finite"] is True and row["problems"] == []
    assert doc["headline"]["methods_ok"] == len(methods)


def test_float32_parts_watched_under_autocast(dry_run):
    doc, _, _ = dry_run
    by_method = {r["method"]: r["float32_checks"] for r in doc["parts"]["4"]["results"]}
    assert by_method["simclr"]["backbone_layer_output_dtype"] == ["bfloat16"]  # autocast was on
    assert by_method["swav"]["sinkhorn"]["outputs"] == ["float32@cpu"]
    assert "bfloat16@cpu" in by_method["swav"]["sinkhorn"]["inputs"]  # bf16 scores in, float32 codes out
    assert by_method["wmse"]["whiten"]["outputs"] == ["float32@cpu"]
    for fn in ("dino_loss", "batch_center", "ema_center"):
        assert by_method["dino"][fn]["outputs"] == ["float32@cpu"], fn


def test_markdown_tables(dry_run):
    _, md, _ = dry_run
    assert "DRY RUN" in md and "| part | what | status | time (s) |" in md
    for key in PARTS:
        assert f"\n| {key} | " in md
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5."):
        assert heading in md


def test_without_kornia_the_json_says_why(tmp_path):
    out = tmp_path / "out"
    proc = run_suite(tmp_path, ("kornia",), "--dry-run", "--parts", "4", "--out", str(out))
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((out / "gpu_suite.json").read_text())
    assert "kornia" in doc["import_error"] and "ssl_bench/methods/cmc.py" in doc["import_error"]
    assert {p["status"] for p in doc["parts"].values()} == {"error"}
    assert "could not be imported" in (out / "gpu_suite.md").read_text()
