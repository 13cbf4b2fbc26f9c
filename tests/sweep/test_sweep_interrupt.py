"""Ctrl-C in a sweep (issue #27): one line, exit 130, the running cell stops at a step with its
checkpoint and its record says `interrupted` (before: 10 lines of atexit noise and a record left
`running`); the relaunch that resumes it: tests/sweep/test_sweep.py."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml


@pytest.mark.parametrize("who", ["process group", "sweep alone"])
def test_ctrl_c_in_a_sweep(repo, tmp_path, who):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "int", "datasets": ["digits"], "methods": ["simclr"], "seeds": [0], "baseline": False,
        "config": "configs/{dataset}/{method}.yaml",
        "overrides": {"trainer.max_epochs": 40, "trainer.enable_progress_bar": False, "run.ckpt_every_n_steps": 2}}))
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "ssl_bench.cli", "sweep", str(spec), "--dir", str(sweep_dir)],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,  # its own group: Ctrl-C of a terminal reaches the whole group
                            # a shell's background job (CI started with `&`) inherits SIGINT ignored, and
                            # Python then installs no KeyboardInterrupt handler: restore the default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = sweep_dir / "simclr-digits-s0/checkpoints/last.ckpt"
    deadline = time.time() + 120
    while not ckpt.is_file() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT) if who == "process group" else proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("ssl-bench: sweep int interrupted (simclr-digits-s0)") and "Traceback" not in out, out
    record = json.loads((sweep_dir / "_sweep/cells/simclr-digits-s0.json").read_text())
    assert record["status"] == "interrupted"
    log = (sweep_dir / "_sweep/logs/simclr-digits-s0.log").read_text()
    assert "Traceback" not in log and "Exception ignored" not in log, log[-2000:]
    assert ckpt.is_file() and not (sweep_dir / "simclr-digits-s0/summary.json").exists()
