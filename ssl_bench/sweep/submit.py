"""Cells as a job array through submitit: SLURM on a cluster, submitit's local executor on a laptop.

``launch.submitit`` in the spec is passed to ``submitit.AutoExecutor.update_parameters`` (e.g.
``timeout_min``, ``gpus_per_node``, ``cpus_per_task``, ``slurm_partition``,
``slurm_array_parallelism``, ``slurm_additional_parameters``), except ``cluster`` (``slurm``,
``local``, or unset for submitit's auto-detection), which picks the executor. Each job runs one
cell (``cell.run_cell``) and writes into the shared sweep directory; job logs go to
``<sweep>/_sweep/submitit/``. Nothing is scheduled here: SLURM (or the local executor) does it.
"""
from __future__ import annotations

import uuid
from typing import Any

from ..errors import ConfigError
from .cell import FAILED, OK, read_record, run_cell, write_record
from .progress import Progress
from .spec import Cell, Spec


def _job(sweep_dir: str, cell: str, attempt: str) -> dict[str, Any]:
    import os

    os.environ.setdefault("WANDB_SILENT", "true")
    return run_cell(sweep_dir, cell, attempt)


def run_submitit(spec: Spec, todo: list[tuple[Cell, str]]) -> None:
    try:
        import submitit
    except ImportError:
        raise ConfigError("launch.backend submitit needs the submitit package (pip install submitit)") from None
    params = dict(spec.launch.get("submitit") or {})
    cluster = params.pop("cluster", None)
    executor = submitit.AutoExecutor(folder=str(spec.dir / "_sweep" / "submitit"), cluster=cluster)
    params.setdefault("name", f"ssl-bench-{spec.name}")
    try:
        executor.update_parameters(**params)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"launch.submitit: {' '.join(str(err).split())}") from None
    attempts = [uuid.uuid4().hex[:12] for _ in todo]
    names = [cell.name for cell, _ in todo]
    jobs = executor.map_array(_job, [str(spec.dir)] * len(todo), names, attempts)
    print(f"submitted {len(jobs)} cells as job array {jobs[0].job_id.split('_')[0]} ({executor.cluster})", flush=True)
    progress = Progress(len(todo))
    for index, ((cell, _), job, attempt) in enumerate(zip(todo, jobs, attempts), 1):
        try:
            record = job.result()
        except Exception as err:  # the job died (time limit, node failure, out of memory)
            record = {**(read_record(spec.dir, cell.name) or {}), "cell": cell.name, "attempt": attempt,
                      "status": FAILED, "error": f"job {job.job_id}: {' '.join(str(err).split())[:300]}"}
        record.update(job_id=job.job_id, run_dir=str(spec.dir / cell.name))
        if record.get("status") not in (OK, FAILED):
            record["status"] = FAILED
        write_record(spec.dir, cell.name, record)
        progress.end(cell, record, index, running=1)
