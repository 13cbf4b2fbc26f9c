"""Training-step overhead of ssl-bench vs a bare PyTorch loop, and GPU epoch time / MFU (issue #3 b, c).

(b) default, CPU: for SimCLR and BYOL with ``tiny_cnn`` and ResNet-18 (CIFAR stem), the method is
built as ``ssl-bench pretrain`` builds it (configs/cifar10/<method>.yaml with the backbone and batch
size swapped, ``pretrain.build_method``, ``build_loggers`` (CSV), ``build_trainer`` (ModelCheckpoint),
the probe, k-NN and collapse-monitor callbacks from ``configure_callbacks``) and trained by
``trainer.fit`` on a fixed list of pre-made 2-view CIFAR-sized CPU batches; the bare PyTorch loop
(``bare_loop.py``) trains an identically seeded copy on the same batches in the same process. Both are
timed over the same steady-state window, steps ``warmup .. warmup+steps-1`` of one epoch, each step a
whole loop iteration (hooks, logging, progress bar included; a stamp at ``on_train_batch_start``, one
extra untimed step closes the window). No validation (``limit_val_batches=0``).

Default ``--mode lockstep``: one bare step runs on the same batch inside every ``on_train_batch_start``
of the fit and is timed separately, so both sides see the same machine load step by step (on a shared
2-core machine separate runs differ by 2x from load alone). ``--mode separate``: separate runs per
repeat, alternating which goes first (ABBA). Per configuration: ratio = median over repeats of
(ssl-bench mean step time / bare mean step time of the same repeat) (target <= 1.05), and the overhead
in ms per step.

(c) ``--device cuda``: epoch time of SimCLR and BYOL, ResNet-18 CIFAR stem, CIFAR-10 at batch 512
through the real data path (``SSLDataModule(dataset="cifar10", pipeline="batched")``), bf16-mixed,
channels_last, and model-FLOPs utilisation: FLOPs of one forward+backward per image (torch's
``FlopCounterMode`` on one step) x images/s / (``--peak-tflops`` x 1e12; 989 = H100 SXM dense bf16).

    python benchmarks/train_throughput.py                      # (b), writes benchmarks/out/train_throughput.json
    python benchmarks/train_throughput.py --device cuda        # (c)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_loop import BareLoop, Batch, bare_loss, make_batches, one_epoch_schedule, run_bare_loop  # noqa: E402

from ssl_bench.config import load_config  # noqa: E402
from ssl_bench.methods import BaseMethod  # noqa: E402
from ssl_bench.build import (build_datamodule, build_loggers, build_method, build_trainer,  # noqa: E402
                             schedule_model)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "out" / "train_throughput.json"
BACKBONES: dict[str, dict[str, Any]] = {
    "tiny_cnn": {"backbone": "tiny_cnn", "backbone_kwargs": {}},
    "resnet18": {"backbone": "resnet18", "backbone_kwargs": {"cifar_stem": True}},
}


@dataclass
class OverheadCase:
    """One configuration of part (b). Periodic work is counted in proportion when ``steps`` is a
    multiple of its period: the collapse monitor's metrics every 50 steps, logger writes every 10
    (``log_every_n_steps``). The ResNet-18 cases time 10 steps: one logger write, no monitor event
    (its cost, ~0.1 s per 50 steps on a 2-core CPU, is far below 1% of a ResNet-18 step there)."""
    method: str
    backbone: str
    batch_size: int
    warmup: int
    steps: int
    repeats: int
    model_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"linear_probe": False}, to diagnose

    @property
    def name(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.model_overrides.items())
        return f"{self.method}/{self.backbone}" + (f"[{extra}]" if extra else "")

    def build(self) -> BaseMethod:
        return build_cli_method(self.method, self.backbone, **self.model_overrides)


DEFAULT_CASES = (  # sized for a 2-core CPU: a whole run takes about 40 minutes there
    OverheadCase("simclr", "tiny_cnn", 128, 5, 50, 3),
    OverheadCase("byol", "tiny_cnn", 128, 5, 50, 3),
    OverheadCase("simclr", "resnet18", 32, 2, 10, 3),
    OverheadCase("byol", "resnet18", 32, 2, 10, 3),
)


# ---------------------------------------------------------------------------------- Lightning side
class StepStamps(pl.Callback):
    """``clock()`` at every ``on_train_batch_start`` (after a device sync when ``sync`` is given)."""

    def __init__(self, sync: bool = False) -> None:
        self.sync, self.stamps = sync, []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.sync:
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (``on_train_epoch_start`` -> ``on_train_epoch_end``, the GPU
    synchronised when ``sync``): excludes validation and the checkpoint write."""

    def __init__(self, sync: bool = True) -> None:
        self.sync, self.seconds, self._t0 = sync, [], 0.0

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = self._now()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(self._now() - self._t0)


class PremadeBatches(pl.LightningDataModule):
    """A data module serving a fixed list of ``(views, labels)`` batches in order, no workers."""

    def __init__(self, batches: list[Batch]) -> None:
        super().__init__()
        self.batches, self.batch_size = batches, int(batches[0][1].shape[0])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None, shuffle=False, num_workers=0)  # type: ignore[arg-type]


def method_config(method: str, backbone: str, **model_overrides: Any) -> dict[str, dict[str, Any]]:
    """configs/cifar10/<method>.yaml with the backbone (and any model key) replaced."""
    cfg = load_config(REPO / "configs" / "cifar10" / f"{method}.yaml")
    cfg["model"].update(BACKBONES[backbone], **model_overrides)
    return cfg


def build_cli_method(method: str, backbone: str, seed: int = 0, **model_overrides: Any) -> BaseMethod:
    """The method exactly as ``ssl-bench pretrain`` constructs it (seeded)."""
    pl.seed_everything(seed, verbose=False)
    return build_method(method_config(method, backbone, **model_overrides)["model"], num_classes=10)


class LockstepBare(pl.Callback):
    """Runs one bare-loop step on the same batch at every ``on_train_batch_start`` of the ssl-bench fit,
    and stamps around it: ssl-bench step i is ``starts[i+1] - resumes[i]`` (a whole Lightning loop
    iteration without the bare step), bare step i is ``resumes[i] - starts[i]``. Interleaving step by
    step exposes both sides to the same machine load (other processes, frequency changes)."""

    def __init__(self, bare: BareLoop) -> None:
        self.bare = bare
        self.starts: list[float] = []
        self.resumes: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.starts.append(time.perf_counter())
        with torch.enable_grad():
            self.bare.step(batch[0])
        self.resumes.append(time.perf_counter())

    def step_times(self, first: int, count: int) -> tuple[list[float], list[float]]:
        """(bare, ssl-bench) seconds of steps ``first .. first+count-1``."""
        if len(self.starts) < first + count + 1:
            raise RuntimeError(f"got {len(self.starts)} steps, need {first + count + 1}")
        idx = range(first, first + count)
        return ([self.resumes[i] - self.starts[i] for i in idx],
                [self.starts[i + 1] - self.resumes[i] for i in idx])


def fit_as_cli(case: OverheadCase, batches: list[Batch], extra_callbacks: list[pl.Callback],
               progress_bar: bool = True) -> BaseMethod:
    """``trainer.fit`` of the method built as the CLI builds it (model, CSV logger, ModelCheckpoint,
    configure_callbacks) over ``batches`` for one epoch, without validation, in a temporary run dir."""
    cfg = method_config(case.method, case.backbone)
    model = case.build()
    with tempfile.TemporaryDirectory(prefix="ssl-bench-overhead-") as run_dir:
        trainer_cfg = {**cfg["trainer"], "max_epochs": 1, "limit_val_batches": 0, "enable_model_summary": False,
                       "enable_progress_bar": progress_bar, "callbacks": extra_callbacks}
        loggers = build_loggers(cfg["run"], Path(run_dir), "overhead", resuming=False)
        trainer = build_trainer(trainer_cfg, Path(run_dir), loggers)
        model.set_schedule(one_epoch_schedule(model, len(batches[0][1]), len(batches)))  # the bare loop's own
        trainer.fit(model, datamodule=PremadeBatches(batches))
    return model


def time_lockstep(case: OverheadCase, batches: list[Batch], progress_bar: bool = True, repeat: int = 0
                  ) -> tuple[list[float], list[float]]:
    """(bare, ssl-bench) per-step seconds of the timed window, the two interleaved step by step in one fit.
    ``batches`` must hold ``warmup + steps + 1`` batches (the last one closes the timed window)."""
    bare_model = case.build()
    lockstep = LockstepBare(BareLoop(bare_model, case.batch_size, len(batches)))
    fit_as_cli(case, batches, [lockstep], progress_bar)
    return lockstep.step_times(case.warmup, case.steps)


def time_separate(case: OverheadCase, batches: list[Batch], progress_bar: bool = True, repeat: int = 0
                  ) -> tuple[list[float], list[float]]:
    """(bare, ssl-bench) per-step seconds of the timed window from two separate runs; the bare run goes
    first on even ``repeat`` and second on odd ones (ABBA over repeats)."""
    def bare() -> list[float]:
        return _window(run_bare_loop(case.build(), batches), case)

    stamps = StepStamps()
    bare_s = bare() if repeat % 2 == 0 else None
    fit_as_cli(case, batches, [stamps], progress_bar)
    return bare_s if bare_s is not None else bare(), _window(stamps.stamps, case)


def _window(stamps: list[float], case: OverheadCase) -> list[float]:
    window = stamps[case.warmup: case.warmup + case.steps + 1]
    if len(window) != case.steps + 1:
        raise RuntimeError(f"{case.name}: got {len(stamps)} step stamps, need {case.warmup + case.steps + 1}")
    return [b - a for a, b in zip(window, window[1:])]


def measure_overhead(case: OverheadCase, mode: str = "lockstep", progress_bar: bool = True,
                     log=print) -> dict[str, Any]:
    """``case.repeats`` timed fits (``mode``: ``lockstep``, the bare step interleaved inside the fit,
    or ``separate`` runs); per repeat the mean step time of each side over the window, summarised by
    ``summarise``."""
    timer = {"lockstep": time_lockstep, "separate": time_separate}[mode]
    batches = make_batches(case.warmup + case.steps + 1, case.batch_size)
    bare, ours, bare_med, ours_med = [], [], [], []
    for r in range(case.repeats):
        b, o = timer(case, batches, progress_bar, r)
        bare.append(statistics.fmean(b))
        ours.append(statistics.fmean(o))
        bare_med.append(statistics.median(b))
        ours_med.append(statistics.median(o))
        log(f"  {case.name} repeat {r + 1}/{case.repeats}: bare {bare[-1] * 1e3:.1f} ms/step, "
            f"ssl-bench {ours[-1] * 1e3:.1f} ms/step, ratio {ours[-1] / bare[-1]:.3f}")
    return {**asdict(case), "name": case.name, "mode": mode, "progress_bar": progress_bar,
            "bare_step_median_in_window_s": bare_med, "ssl_bench_step_median_in_window_s": ours_med,
            **summarise(bare, ours, case.batch_size)}


def summarise(bare: list[float], ours: list[float], batch_size: int) -> dict[str, Any]:
    """From per-repeat mean step times: ``ratio`` = median over repeats of ssl-bench / bare (each repeat
    a pair timed under the same conditions), ``ratio_of_medians``, images/s of the median step times,
    and the median absolute overhead in ms per step."""
    bare_s, ours_s = statistics.median(bare), statistics.median(ours)
    ratios = [o / b for o, b in zip(ours, bare)]
    return {"bare_step_s": bare, "ssl_bench_step_s": ours, "repeat_ratios": ratios,
            "ratio": statistics.median(ratios), "ratio_of_medians": ours_s / bare_s,
            "bare_median_step_s": bare_s, "ssl_bench_median_step_s": ours_s,
            "bare_images_per_s": batch_size / bare_s, "ssl_bench_images_per_s": batch_size / ours_s,
            "overhead_ms_per_step": 1e3 * statistics.median(o - b for o, b in zip(ours, bare))}


# ---------------------------------------------------------------------------------- (c) GPU epoch
def step_flops_per_image(model: BaseMethod, batch_size: int, image_size: int = 32,
                         autocast_dtype: torch.dtype | None = torch.bfloat16) -> float:
    """FLOPs of one forward+backward of the method's loss per image (both views; torch's
    ``FlopCounterMode``: matmuls and convolutions, 2 FLOPs per multiply-add; the element-wise
    optimiser and EMA updates are not model FLOPs), with the training autocast."""
    from torch.utils.flop_counter import FlopCounterMode

    device = model.device
    views = [torch.randn(batch_size, 3, image_size, image_size, device=device) for _ in range(2)]
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            loss = bare_loss(model, views)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch_size


def epoch_benchmark(method: str, peak_tflops: float, device: str = "cuda", batch_size: int = 512,
                    epochs: int = 2, backbone: str = "resnet18", data: dict[str, Any] | None = None,
                    precision: str = "bf16-mixed", model_overrides: dict[str, Any] | None = None,
                    log=print) -> dict[str, Any]:
    """Training-epoch time, images/s and MFU of ``method`` trained by the CLI's Trainer through the
    real data path (``data``: SSLDataModule options, default CIFAR-10 with the batched GPU pipeline),
    channels_last. The last of ``epochs`` epochs is reported (the first pays for cuDNN autotuning and
    allocator warm-up). MFU = FLOPs/image x images/s / (peak_tflops x 1e12)."""
    cfg = method_config(method, backbone, **{"channels_last": True, **(model_overrides or {})})
    cfg["data"].update({"dataset": "cifar10", "pipeline": "batched", **(data or {}), "batch_size": batch_size})
    timer = EpochTimer(sync=device == "cuda")
    dm = build_datamodule(cfg["data"], seed=cfg["run"]["seed"])
    pl.seed_everything(0, verbose=False)
    model = build_method(cfg["model"], dm.num_classes)
    with tempfile.TemporaryDirectory(prefix="ssl-bench-epoch-") as run_dir:
        trainer_cfg = {**cfg["trainer"], "precision": precision, "accelerator": "gpu" if device == "cuda" else device,
                       "devices": 1, "max_epochs": epochs, "limit_val_batches": 0, "enable_model_summary": False,
                       "enable_progress_bar": False, "callbacks": [timer]}
        trainer = build_trainer(trainer_cfg, Path(run_dir), build_loggers(cfg["run"], Path(run_dir), method, False))
        schedule_model(model, dm, trainer)
        trainer.fit(model, datamodule=dm)
        images = trainer.num_training_batches * batch_size
    epoch_s = timer.seconds[-1]
    model.to(device)  # Lightning's teardown moved it to the CPU
    flops = step_flops_per_image(model, batch_size, dm.image_size,
                                 torch.bfloat16 if precision.startswith("bf16") else None)
    images_per_s = images / epoch_s
    out = {"method": method, "backbone": BACKBONES[backbone], "dataset": cfg["data"]["dataset"],
           "batch_size": batch_size, "precision": precision, "channels_last": True, "epoch_seconds": timer.seconds,
           "images_per_epoch": images, "images_per_s": images_per_s, "flops_per_image": flops,
           "peak_tflops": peak_tflops, "mfu": flops * images_per_s / (peak_tflops * 1e12),
           "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor()}
    log(f"  {method}: epoch {epoch_s:.2f} s, {images_per_s:,.0f} img/s, "
        f"{flops / 1e9:.3f} GFLOP/img fwd+bwd, MFU {100 * out['mfu']:.1f}% of {peak_tflops:g} TFLOP/s")
    return out


# ---------------------------------------------------------------------------------- CLI
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    return {"git": _git_commit(), "torch": torch.__version__, "pytorch_lightning": pl.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def _quiet() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*(Checkpoint directory|log_every_n_steps).*")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu: step overhead vs a bare loop (b); cuda: epoch time and MFU (c)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--methods", nargs="+", default=["simclr", "byol"], choices=("simclr", "byol"))
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    p.add_argument("--repeats", type=int, default=None, help="override every case's repeats")
    p.add_argument("--steps", type=int, default=None, help="override every case's timed steps")
    p.add_argument("--warmup", type=int, default=None, help="override every case's warm-up steps")
    p.add_argument("--batch-size", type=int, default=None, help="(b): override every case's batch size")
    p.add_argument("--mode", choices=("lockstep", "separate"), default="lockstep",
                   help="(b): lockstep interleaves one bare step before every ssl-bench step inside the same "
                        "fit (robust to machine load); separate times two separate runs per repeat")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for both sides (default: leave torch's default); a diagnostic "
                        "for machines where other processes make multi-threaded small ops stall")
    p.add_argument("--model-override", action="append", default=[], metavar="KEY=VALUE",
                   help="(b): a model config key for both sides, YAML value (e.g. linear_probe=false), to "
                        "attribute overhead; repeatable")
    p.add_argument("--no-progress-bar", action="store_true",
                   help="(b): disable Lightning's progress bar (the CLI shows it by default)")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="(c): peak dense bf16 TFLOP/s of the GPU")
    p.add_argument("--epochs", type=int, default=2, help="(c): epochs to run; the last one is reported")
    p.add_argument("--cuda-batch-size", type=int, default=512)
    p.add_argument("--data-root", default=None, help="(c): directory holding cifar10-jpeg.tar.gz")
    return p.parse_args(argv)


def overhead_cases(args: argparse.Namespace) -> list[OverheadCase]:
    cases = []
    for case in DEFAULT_CASES:
        if case.method in args.methods and case.backbone in args.backbones:
            changes: dict[str, Any] = {k: getattr(args, k) for k in ("repeats", "steps", "warmup", "batch_size")
                                       if getattr(args, k) is not None}
            changes["model_overrides"] = {k: yaml.safe_load(v) for k, _, v in
                                          (o.partition("=") for o in args.model_override)}
            cases.append(replace(case, **changes))
    return cases


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    _quiet()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"environment": environment()}
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: CUDA is not available on this machine")
        data = {"root": args.data_root} if args.data_root else {}
        result["cuda_epoch"] = [epoch_benchmark(m, args.peak_tflops, "cuda", args.cuda_batch_size, args.epochs,
                                                data=data) for m in args.methods]
    else:
        rows = []
        for case in overhead_cases(args):
            print(f"{case.name}: batch {case.batch_size}, warm-up {case.warmup}, {case.steps} timed steps, "
                  f"{case.repeats} repeats", flush=True)
            rows.append(measure_overhead(case, args.mode, progress_bar=not args.no_progress_bar))
            r = rows[-1]
            print(f"{case.name}: bare {r['bare_images_per_s']:,.0f} img/s, ssl-bench {r['ssl_bench_images_per_s']:,.0f} "
                  f"img/s, ratio {r['ratio']:.3f} (target <= 1.05)", flush=True)
        result["overhead"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
