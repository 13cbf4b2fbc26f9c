"""Two processes never write one run or sweep directory (issue #27): the second ends in one line that
names the holder and leaves the holder's files as they were; a killed sweep's cell stops with it, and
a relaunch beside a live orphan names the orphan instead of training next to it."""
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ssl_bench.cli import main
from ssl_bench.errors import RunDirectoryError
from ssl_bench.locking import hold, holder
from helpers import QUIET, QUIET_OVERRIDES, write_spec


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def foreign_holder(tmp_path):
    """Start a process (its own session: not our child's group) that holds a directory's lock."""
    procs = []

    def start(directory: Path) -> subprocess.Popen:
        code = textwrap.dedent(f"""
            import sys, time
            from ssl_bench.locking import hold
            with hold({str(directory)!r}, "test"):
                print("held", flush=True)
                time.sleep(120)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_lock_is_reentrant_in_one_process_and_released_on_exit(tmp_path):
    with hold(tmp_path / "run", "run directory"):
        with hold(tmp_path / "run", "run directory"):  # a sweep cell, then pretrain inside it
            assert holder(tmp_path / "run")["pid"] == os.getpid()
    with hold(tmp_path / "run", "run directory"):  # released: taken again
        pass


def test_a_held_directory_names_its_holder(tmp_path, foreign_holder):
    proc = foreign_holder(tmp_path / "run")
    with pytest.raises(RunDirectoryError, match=rf"run directory .* is in use by pid {proc.pid} on "):
        with hold(tmp_path / "run", "run directory"):
            pass


def test_killed_holder_releases_the_lock(tmp_path, foreign_holder):
    proc = foreign_holder(tmp_path / "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with hold(tmp_path / "run", "run directory"):  # the kernel dropped the dead process's lock
        assert holder(tmp_path / "run")["pid"] == os.getpid()


def test_two_concurrent_pretrains_on_one_directory(repo, tmp_path, capsys):
    """A real second `ssl-bench pretrain` while the first trains: one line naming the first, exit 2,
    nothing written by it (before: a crash on metrics.csv's fieldnames and duplicated, column-shifted
    rows); the first then stops on SIGTERM with a clean metrics.csv."""
    args = ["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--run.dir", str(tmp_path),
            "--run.name", "r", "--trainer.max_epochs", "200", *QUIET]
    first = subprocess.Popen([sys.executable, "-m", "ssl_bench.cli", *args], cwd=repo,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "r"
    deadline = time.time() + 120
    while not (run / "metrics.csv").is_file() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert (holder(run) or {}).get("pid") == first.pid
    config_before = digests(run)["config.yaml"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"run directory {run} is in use by pid {first.pid}" in err, err
    assert digests(run)["config.yaml"] == config_before
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 143, first.stderr.read()
    rows = (run / "metrics.csv").read_text().splitlines()
    width = len(rows[0].split(","))
    assert all(len(r.split(",")) == width for r in rows)  # no column-shifted rows
    assert len(rows) == len(set(rows))  # no row twice


def _spec(tmp_path: Path, **fields) -> Path:
    return write_spec(tmp_path, "lock", methods=["simclr"], seeds=[0], **fields)


def test_second_sweep_on_one_directory_is_refused(repo, tmp_path, foreign_holder, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    sweep_dir = tmp_path / "sweep"
    proc = foreign_holder(sweep_dir)  # stands in for a first sweep that is still running
    assert main(["sweep", str(_spec(tmp_path)), "--dir", str(sweep_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"sweep directory {sweep_dir} is in use by pid {proc.pid}" in err and len(err.splitlines()) == 1
    assert not (sweep_dir / "_sweep").exists() and not (sweep_dir / "simclr-digits-s0").exists()


def test_relaunch_beside_a_live_orphan_cell_names_it(repo, tmp_path, foreign_holder, capsys, monkeypatch):
    """A cell left running by a killed sweep keeps its run directory: the relaunched sweep records the
    cell as failed with the orphan's pid and writes nothing into its directory."""
    monkeypatch.chdir(repo)
    sweep_dir = tmp_path / "sweep"
    orphan = foreign_holder(sweep_dir / "simclr-digits-s0")
    assert main(["sweep", str(_spec(tmp_path)), "--dir", str(sweep_dir)]) == 1
    out = capsys.readouterr().out
    assert "simclr-digits-s0: FAILED: sweep cell directory" in out and f"in use by pid {orphan.pid}" in out
    assert sorted(p.name for p in (sweep_dir / "simclr-digits-s0").iterdir()) == [".lock"]
    assert "failed: simclr-digits-s0" in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killed_sweep_takes_its_cell_down(repo, tmp_path):
    """`kill -9` of the sweep alone (not its process group): the cell gets SIGTERM from the kernel
    (PR_SET_PDEATHSIG), stops at a step boundary with a checkpoint, and releases its directory."""
    spec = _spec(tmp_path, overrides={"trainer.max_epochs": 50, **QUIET_OVERRIDES, "run.ckpt_every_n_steps": 2})
    sweep_dir = tmp_path / "sweep"
    sweep = subprocess.Popen([sys.executable, "-m", "ssl_bench.cli", "sweep", str(spec), "--dir", str(sweep_dir)],
                             cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run = sweep_dir / "simclr-digits-s0"
    deadline = time.time() + 120
    while not (run / "checkpoints/last.ckpt").is_file() and time.time() < deadline:
        time.sleep(0.05)
    cell_pid = holder(run)["pid"]
    assert cell_pid != sweep.pid
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    deadline = time.time() + 60
    while Path(f"/proc/{cell_pid}").exists() and time.time() < deadline:
        try:  # reap it if it became our zombie; it is the init process's child otherwise
            os.waitpid(cell_pid, os.WNOHANG)
        except ChildProcessError:
            pass
        status = Path(f"/proc/{cell_pid}/status")
        if status.exists() and "zombie" in status.read_text():
            break
        time.sleep(0.1)
    alive = Path(f"/proc/{cell_pid}/status").exists() and "zombie" not in Path(f"/proc/{cell_pid}/status").read_text()
    assert not alive, "the cell kept training after its sweep was killed"
    with hold(run, "run directory"):  # released
        pass
    assert not (run / "summary.json").exists()  # stopped early, resumable
