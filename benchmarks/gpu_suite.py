"""GPU suite (issue #26): every open GPU question in one prepared command, within 8 minutes on one H100.

    python benchmarks/gpu_suite.py --out DIR                 # on a GPU (the device machine: gpu_suite.sh)
    python benchmarks/gpu_suite.py --out DIR --parts 1 4     # some parts only
    python benchmarks/gpu_suite.py --out DIR --dry-run       # every part at tiny sizes on the CPU (the test)

Writes ``DIR/gpu_suite.json`` (rewritten after every part, so a crash keeps what was measured) and
``DIR/gpu_suite.md`` (the tables). Parts:

1. SimCLR and BYOL, ResNet-18 (CIFAR stem), CIFAR-10, batch 512, the batched pipeline with the
   images on the GPU, trained by the CLI's Trainer (``build.build_trainer``, probe and collapse
   monitor on, no validation, no checkpoint): epoch time and images/s for ``fp32``
   (``trainer.precision 32``), ``bf16`` (``trainer.precision bf16-mixed``), ``bf16_cl`` (+
   ``model.channels_last true``) and ``bf16_cl_compile`` (+ ``model.compile_backbone true``). An
   "epoch" is one epoch's worth of steps (50,000 // 512 = 97) after a warm-up of 10 steps, timed
   between two stamps taken with the GPU synchronised (so it crosses one epoch boundary, as every
   epoch does). MFU = FLOPs per image (``FlopCounterMode`` on one forward+backward of the method's
   loss, both views; ``train_throughput.step_flops_per_image``) x images/s / the card's dense bf16
   peak (detected by name, ``--peak-tflops`` to override); peak memory from
   ``torch.cuda.max_memory_allocated``.
2. The same model steps fed by the per-image pipeline (``data.pipeline per_image``: torchvision
   transforms in 16 DataLoader workers, pinned memory), at bf16 + channels_last, against the
   batched pipeline measured in the same process (part 1's ``bf16_cl`` row when it ran here, else
   measured in this part): the ratio is the headline. With the workers' CPU share of the window.
   Pipelines with workers warm up for ``2 x workers + 2`` steps (``worker_warmup``), past the burst
   of batches the workers prefetched.
3. Image trees: a JPEG tree generated at run time (CIFAR-10 images upscaled to ImageNet-like sizes,
   with a little noise so that the files are photo-sized) into a temporary directory; images/s of
   ``per_image``, ``files_batched`` and ``files_gpu`` at 224 px (BYOL recipe, 2 views, batch 128,
   10,240 images: the warm-up and the window fit in one epoch), through the
   Trainer's real data path (workers, transfer, ``on_after_batch_transfer``) into a model that only
   reads the views, so the data side is what is measured; with the workers' CPU seconds
   (``folder_throughput``'s accounting: this process plus its worker processes).
4. Every registered method (``ssl_bench.methods.METHODS``, ``configs/cifar10/<method>.yaml``) for
   20 steps at bf16 on the GPU: loss finite, steady-state step time, host syncs per step, and that
   the float32 parts stay float32 under autocast (SwAV's Sinkhorn codes, W-MSE's whitening, DINO's
   centre and loss, every floating buffer such as the feature queues), with the output dtype of the
   backbone's convolutions and linear layers recorded to show that autocast was on.
5. What a CPU cannot check: host-device synchronisation in the training loop (``torch.cuda.
   set_sync_debug_mode("warn")`` with the Python stack of every synchronising call, and
   ``torch.profiler`` counts of ``cudaStreamSynchronize`` / ``cudaDeviceSynchronize`` /
   ``cudaEventSynchronize`` / ``cudaMemcpy`` / device-to-host copies, over 20 steps with the periodic
   logging, finite check and monitor moved out of the window), and on which device the online k-NN
   and linear probe (validation callbacks) and the offline ``ssl-bench eval`` k-NN and linear protocol
   compute.

Every part is independently runnable (``--parts``), runs against a global deadline (``--deadline-s``
or ``--deadline-at``; each later part keeps a reserve, a part or item that would overrun is skipped
and says so), and records its own error without stopping the others. A watchdog writes the JSON and
exits if a part hangs past the deadline; ``--resume`` continues a run whose process died, without
repeating finished parts or the one that was running. ``--dry-run`` runs every part at tiny sizes on
the CPU (scikit-learn's digits, ``tiny_cnn``, 2 steps, a 32-image tree, compile with the ``eager``
backend); the GPU-only checks then say "skipped: no GPU" (their harness still runs). The suite needs
no kornia, wandb or submitit.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import resource
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "benchmarks")):  # runs from a copy of the tree without pip install
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

KORNIA_USERS = "ssl_bench/methods/cmc.py (kornia.color.rgb_to_lab), ssl_bench/data/batched_ops.py (kornia.filters)"


def import_kornia() -> str:
    """kornia is not optional: ssl_bench imports it at import time (``KORNIA_USERS``; the batched
    augmentation of the batched and files pipelines blurs with it), so without it nothing of ssl_bench
    imports. kornia's ``__init__`` imports its compiled ``kornia_rs``, which it uses only to read and
    write image files (never called by ssl_bench); where that binary cannot load (a copy carried from
    another Python version), a stub stands in for it so that kornia's pure-torch functions import.
    Returns what happened, for the JSON."""
    import types

    try:
        import kornia
        return f"present {kornia.__version__} ({Path(kornia.__file__).parent})"
    except ImportError as err:
        first = err
    try:
        import kornia_rs  # noqa: F401
        return f"missing: {first}"  # kornia_rs loads, so kornia itself is what is missing or broken
    except ImportError as err:
        reason = f"{type(err).__name__}: {err}"
    for name in [m for m in sys.modules if m.split(".")[0] in ("kornia", "kornia_rs")]:
        del sys.modules[name]

    class Unavailable(types.ModuleType):
        def __getattr__(self, attr: str) -> Any:  # AttributeError: hasattr() and inspect must keep working
            raise AttributeError(f"kornia_rs.io.{attr}: the compiled kornia_rs could not be loaded here ({reason})")

    stub = types.ModuleType("kornia_rs")
    stub.__path__ = []  # type: ignore[attr-defined]
    stub.io = Unavailable("kornia_rs.io")  # type: ignore[attr-defined]
    sys.modules["kornia_rs"], sys.modules["kornia_rs.io"] = stub, stub.io  # type: ignore[attr-defined]
    try:
        import kornia
    except ImportError as err:
        return f"missing: {err}"
    return (f"present {kornia.__version__} ({Path(kornia.__file__).parent}), with kornia_rs stubbed: it did not "
            f"load ({reason}); kornia's file IO is unavailable, which ssl_bench does not use")


KORNIA = import_kornia()
try:  # the project; if it cannot be imported, main() writes a JSON that says why
    from folder_throughput import SIZES, _children_cpu  # noqa: E402
    from train_throughput import _quiet, environment, step_flops_per_image  # noqa: E402

    from ssl_bench.build import build_datamodule, build_loggers, build_method, build_trainer, schedule_model  # noqa: E402
    from ssl_bench.config import load_config  # noqa: E402
    from ssl_bench.data.datamodule import SSLDataModule  # noqa: E402
    from ssl_bench.methods import METHODS  # noqa: E402
    IMPORT_ERROR: BaseException | None = None
except ImportError as _err:
    IMPORT_ERROR = _err

NO_GPU = "skipped: no GPU"
JSON_NAME, MD_NAME = "gpu_suite.json", "gpu_suite.md"
# dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, matched against torch.cuda.get_device_name()
BF16_PEAKS = (("H200 NVL", 835.0), ("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0),
              ("GH200", 989.0), ("A100", 312.0), ("L40S", 362.0))
PART1_CONFIGS = {  # name -> (trainer.precision, model keys)
    "fp32": ("32-true", {}),
    "bf16": ("bf16-mixed", {}),
    "bf16_cl": ("bf16-mixed", {"channels_last": True}),
    "bf16_cl_compile": ("bf16-mixed", {"channels_last": True, "compile_backbone": True}),
}
QUIET_PERIODIC = {"check_finite_every_n_steps": 100_000, "monitor_every_n_steps": 100_000}  # model keys
SYNC_MESSAGE = "synchronizing CUDA operation"


# ============================================================================ settings and state
@dataclass
class Settings:
    """Sizes of one run: the GPU run's, or the dry run's tiny ones."""

    dry: bool
    cuda: bool
    family: str              # configs/<family>/<method>.yaml
    batch: int               # parts 1, 2, 5
    warmup: int              # steps before a timed window
    window: int | None       # timed steps (None: one epoch's worth)
    method_steps: int        # part 4
    method_warmup: int
    workers: int
    tree_images: int
    tree_batch: int
    tree_size: int           # training crop of the tree pipelines
    tree_scale: float        # generated image sizes = folder_throughput.SIZES x this
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data_overrides: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def make(args: argparse.Namespace, cuda: bool) -> "Settings":
        data = {"root": args.data_root} if args.data_root else {}
        if args.dry_run:
            return Settings(dry=True, cuda=cuda, family="digits", batch=32, warmup=1, window=2, method_steps=2,
                            method_warmup=1, workers=1, tree_images=32, tree_batch=4, tree_size=32, tree_scale=0.12,
                            model_overrides={"backbone": "tiny_cnn", "backbone_kwargs": {"width": 8}})
        return Settings(dry=False, cuda=cuda, family="cifar10", batch=args.batch_size, warmup=10, window=None,
                        method_steps=20, method_warmup=3, workers=args.workers, tree_images=args.tree_images,
                        tree_batch=128, tree_size=224, tree_scale=1.0, data_overrides=data)


class Deadline:
    """The global deadline, and the reserve that later parts keep."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.part_end = at

    def left(self, end: float | None = None) -> float:
        return (self.part_end if end is None else end) - time.time()

    def fits(self, seconds: float) -> bool:
        return self.left() >= seconds

    def skip_reason(self, seconds: float, what: str = "") -> str:
        return (f"skipped: not enough time left{' for ' + what if what else ''} (needs ~{seconds:.0f} s, "
                f"{max(self.left(), 0):.0f} s left in this part's share of the deadline)")


class Suite:
    """The run's state: settings, deadline, the JSON being built and where it is written."""

    def __init__(self, args: argparse.Namespace, settings: Settings, deadline: Deadline, out: Path,
                 doc: dict[str, Any]) -> None:
        self.args, self.s, self.deadline, self.out, self.doc = args, settings, deadline, out, doc
        self.lock = threading.RLock()
        self.measured_here: dict[str, Any] = {}  # results of this process (part 2 reuses part 1's)
        self._sources: dict[Any, Any] = {}

    @property
    def device(self) -> str:
        return "cuda" if self.s.cuda else "cpu"

    def write(self) -> None:
        with self.lock:
            self.doc["elapsed_s"] = round(time.time() - self.doc["started_unix"], 1)
            self.doc["headline"] = headline(self.doc)
            blob = json.dumps(finite(self.doc), indent=1, allow_nan=False)
            md = markdown(self.doc)
            self.out.mkdir(parents=True, exist_ok=True)
            for name, text in ((JSON_NAME, blob), (MD_NAME, md)):  # whole files: a reader never sees half
                tmp = self.out / f".{name}.tmp"
                tmp.write_text(text)
                os.replace(tmp, self.out / name)

    # ---------------------------------------------------------------- configs and data
    def config(self, method: str, batch: int | None = None, **model: Any) -> dict[str, dict[str, Any]]:
        """configs/<family>/<method>.yaml with the run's sizes (and ``model`` keys) applied."""
        cfg = load_config(REPO / "configs" / self.s.family / f"{method}.yaml")
        overrides = self.s.model_overrides
        if cfg["model"].get("backbone") == "vit":  # patch-token methods (MAE, I-JEPA) keep their ViT (digits: tiny)
            overrides = {k: v for k, v in overrides.items() if not k.startswith("backbone")}
        cfg["model"].update(overrides)
        cfg["model"].update(model)
        cfg["data"].update(self.s.data_overrides)
        if batch is not None:
            cfg["data"]["batch_size"] = batch
        return cfg

    def datamodule(self, data_cfg: dict[str, Any], seed: int = 0) -> SSLDataModule:
        """``build_datamodule``, with the decoded source shared between the suite's data modules
        (loading it again for every fit would cost a second or more each; the data are the same)."""
        dm = build_datamodule(data_cfg, seed=seed)
        h = dm.hparams
        key = (h.dataset, h.root, h.train_subset, h.val_subset, h.seed, h.image_size)
        if h.dataset != "folder":
            if key not in self._sources:
                self._sources[key] = dm.source
            dm._source = self._sources[key]
        return dm


def finite(obj: Any) -> Any:
    """The JSON tree with non-finite floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def error_record(err: BaseException) -> dict[str, Any]:
    tb = traceback.format_exception(type(err), err, err.__traceback__)
    return {"status": "error", "error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}",
            "traceback": "".join(tb)[-3000:]}


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ============================================================================ device facts
def device_info(peak_override: float | None) -> dict[str, Any]:
    info: dict[str, Any] = {"cuda": torch.cuda.is_available(), "torch": torch.__version__,
                            "cuda_version": torch.version.cuda, "cpu_count": os.cpu_count(),
                            "float32_matmul_precision": torch.get_float32_matmul_precision(),
                            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    for mod in ("torchvision", "timm", "torchmetrics"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as err:  # noqa: BLE001 - recorded, not needed
            info[mod] = f"missing ({type(err).__name__})"
    info["pytorch_lightning"] = pl.__version__
    info["kornia"] = f"{KORNIA}; required by ssl_bench: {KORNIA_USERS}"
    for mod in ("wandb", "submitit"):  # optional: the suite uses neither
        try:
            __import__(mod)
            info[mod] = "present (not used)"
        except Exception:  # noqa: BLE001
            info[mod] = "absent (not needed)"
    if info["cuda"]:
        props = torch.cuda.get_device_properties(0)
        info.update(name=torch.cuda.get_device_name(0), memory_gib=round(props.total_memory / 2**30, 1),
                    sm_count=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
                    cudnn=torch.backends.cudnn.version())
    else:
        info["name"] = platform.processor() or platform.machine()
    peak, source = peak_override, "--peak-tflops"
    if peak is None and info["cuda"]:
        peak = next((p for key, p in BF16_PEAKS if key.lower() in info["name"].lower()), None)
        source = "detected by name" if peak is not None else "unknown card: MFU not computed (pass --peak-tflops)"
    info["bf16_peak_tflops"], info["bf16_peak_source"] = peak, (source if peak is not None or info["cuda"] else
                                                              "no GPU: MFU not computed")
    return info


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ============================================================================ timing and recording
class StepWindow(pl.Callback):
    """Times steps ``start .. start+count-1`` of a fit: stamps at ``on_train_batch_start`` of steps
    ``start`` and ``start + count`` (the device synchronised at those two points only), with this
    process's and its worker processes' CPU seconds; optionally collects the losses of the window
    (on the device, read once after the fit) and calls ``on_start`` / ``on_end`` at the edges."""

    def __init__(self, start: int, count: int, on_start: Callable[[], None] | None = None,
                 on_end: Callable[[], None] | None = None, collect: bool = False) -> None:
        self.start, self.count, self.on_start, self.on_end, self.collect = start, count, on_start, on_end, collect
        self.calls, self.t0, self.t1 = 0, None, None
        self.cpu0 = self.cpu1 = (0.0, 0.0)
        self.losses: list[torch.Tensor] = []
        self.loss_dtypes: set[str] = set()

    @property
    def step(self) -> int:
        return self.calls - 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        step = self.calls
        self.calls += 1
        if step == self.start:
            sync()
            self.t0, self.cpu0 = time.perf_counter(), (_self_cpu(), _children_cpu())
            if self.on_start:
                self.on_start()
        elif step == self.start + self.count:
            if self.on_end:
                self.on_end()
            sync()
            self.t1, self.cpu1 = time.perf_counter(), (_self_cpu(), _children_cpu())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if self.collect and self.start <= self.step < self.start + self.count and isinstance(outputs, dict):
            loss = outputs.get("loss")
            if isinstance(loss, torch.Tensor):
                self.losses.append(loss.detach().float().reshape(()))
                self.loss_dtypes.add(str(loss.dtype).removeprefix("torch."))

    def result(self, images_per_step: int, workers: int = 0) -> dict[str, Any]:
        if self.t0 is None or self.t1 is None:
            raise RuntimeError(f"the fit ended after {self.calls} steps, before the timed window "
                               f"{self.start}..{self.start + self.count} closed")
        wall = self.t1 - self.t0
        main_cpu, workers_cpu = self.cpu1[0] - self.cpu0[0], self.cpu1[1] - self.cpu0[1]
        out = {"window_steps": self.count, "warmup_steps": self.start, "window_s": wall,
               "step_ms": 1e3 * wall / self.count, "images": images_per_step * self.count,
               "images_per_s": images_per_step * self.count / wall,
               "main_cpu_s": main_cpu, "workers_cpu_s": workers_cpu,
               "images_per_cpu_s": images_per_step * self.count / max(main_cpu + workers_cpu, 1e-9)}
        if workers:
            out["workers"] = workers
            out["worker_busy"] = workers_cpu / (wall * workers)   # 1.0: every worker busy all the time
            out["worker_cpu_share"] = workers_cpu / max(main_cpu + workers_cpu, 1e-9)
        if self.collect:
            values = torch.stack(self.losses).cpu() if self.losses else torch.zeros(0)
            out["loss_finite"] = bool(len(values) and torch.isfinite(values).all())
            out["loss_first"], out["loss_last"] = (float(values[0]), float(values[-1])) if len(values) else (None, None)
            out["loss_dtype"] = sorted(self.loss_dtypes)
        return out


def _where(frames: list[traceback.FrameSummary]) -> tuple[str, list[str]]:
    """The innermost frame (the call that synchronised) and up to 3 outer frames of ssl_bench,
    Lightning or the benchmarks, for context."""
    def short(f: traceback.FrameSummary) -> str:
        path = f.filename
        for marker in ("site-packages/", str(REPO) + "/"):
            if marker in path:
                path = path.split(marker, 1)[1]
        return f"{path}:{f.lineno} {f.name}"

    frames = [f for f in frames if "gpu_suite.py" not in f.filename and "/warnings.py" not in f.filename]
    if not frames:
        return "?", []
    inner = frames[-1]
    context = [short(f) for f in reversed(frames[:-1])
               if any(k in f.filename for k in ("ssl_bench", "pytorch_lightning", "lightning", "benchmarks"))][:3]
    return short(inner), context


class SyncRecorder:
    """Host-device synchronisations between ``start()`` and ``stop()``: with
    ``torch.cuda.set_sync_debug_mode("warn")`` every synchronising CUDA call (``.item()``, a
    device-to-host copy, ``nonzero``, a blocking host-to-device copy, ``cudaStreamSynchronize``...)
    issues a warning; the Python stack at that moment says where it came from. On a CPU the mode is
    a no-op and nothing is recorded."""

    def __init__(self, step_of: Callable[[], int]) -> None:
        self.step_of, self.events = step_of, []
        self.active = False
        self._cm: Any = None

    def __enter__(self) -> "SyncRecorder":
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.filterwarnings("always", message=f".*{SYNC_MESSAGE}.*")
        original = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
            if SYNC_MESSAGE in str(message):
                if self.active:
                    inner, context = _where(traceback.extract_stack()[:-1])
                    self.events.append({"step": self.step_of(), "where": inner, "context": context})
                return
            original(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self._cm.__exit__(*exc)

    def start(self) -> None:
        self.active = True
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode(0)
        self.active = False

    def summary(self, steps: int) -> dict[str, Any]:
        by_place: dict[str, dict[str, Any]] = {}
        for e in self.events:
            row = by_place.setdefault(e["where"], {"where": e["where"], "count": 0, "steps": set(),
                                                   "context": e["context"]})
            row["count"] += 1
            row["steps"].add(e["step"])
        places = sorted(by_place.values(), key=lambda r: -r["count"])
        for r in places:
            r["steps"] = sorted(r["steps"])[:10]
        return {"syncs": len(self.events), "syncs_per_step": len(self.events) / max(steps, 1),
                "steps_with_syncs": len({e["step"] for e in self.events}), "places": places[:12]}


@contextlib.contextmanager
def patched(module: Any, name: str, record: dict[str, Any]) -> Iterator[None]:
    """``module.name`` wrapped to record the dtypes and devices of its tensor arguments and result
    (metadata only: no synchronisation), restored afterwards."""
    original = getattr(module, name)

    def describe(x: Any) -> list[str]:
        if isinstance(x, torch.Tensor):
            return [f"{str(x.dtype).removeprefix('torch.')}@{x.device.type}"]
        if isinstance(x, (list, tuple)):
            return [d for v in x[:4] for d in describe(v)]
        return []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        record["calls"] = record.get("calls", 0) + 1
        record.setdefault("inputs", set()).update(d for a in (*args, *kwargs.values()) for d in describe(a))
        record.setdefault("outputs", set()).update(describe(out))
        return out

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def _plain_record(record: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, set) else v for k, v in record.items()}


def fit(suite: Suite, cfg: dict[str, dict[str, Any]], precision: str, window: StepWindow,
        trainer_extra: dict[str, Any] | None = None, callbacks: list[pl.Callback] | None = None,
        model: pl.LightningModule | None = None, dm: SSLDataModule | None = None) -> dict[str, Any]:
    """One fit as the CLI builds it (``build_datamodule``, ``build_method``, ``build_trainer`` with
    the CSV logger, ``schedule_model``) up to the end of ``window`` (no validation, no checkpoint,
    no progress bar); returns the window's result plus peak memory."""
    dm = dm or suite.datamodule(cfg["data"], seed=int(cfg["run"]["seed"]))
    pl.seed_everything(0, verbose=False)
    model = model or build_method(cfg["model"], dm.num_classes)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as run_dir:
        trainer_cfg = {**cfg["trainer"], "precision": precision, "accelerator": "gpu" if suite.s.cuda else "cpu",
                       "devices": 1, "max_steps": window.start + window.count + 1, "limit_val_batches": 0,
                       "enable_model_summary": False, "enable_progress_bar": False, "enable_checkpointing": False,
                       "callbacks": [window, *(callbacks or [])], **(trainer_extra or {})}
        loggers = build_loggers(cfg["run"], Path(run_dir), "gpu-suite", False) if hasattr(model, "set_schedule") else []
        trainer = build_trainer(trainer_cfg, Path(run_dir), loggers)
        if hasattr(model, "set_schedule"):
            schedule_model(model, dm, trainer)
        if suite.s.cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer.fit(model, datamodule=dm)
    out = window.result(int(dm.hparams.batch_size), int(dm.hparams.num_workers) if dm.pipeline.loader_workers else 0)
    out["batch_size"] = int(dm.hparams.batch_size)
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        out["backbone_compiled"] = getattr(backbone, "_compiled_call_impl", None) is not None
        out["backbone_channels_last"] = any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
                                            and not p.is_contiguous() for p in backbone.parameters())
    if suite.s.cuda:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    else:
        out["peak_memory_gib"] = NO_GPU
    return out


def worker_warmup(workers: int) -> int:
    """Warm-up steps of a pipeline with DataLoader workers: each worker makes whole batches and keeps
    ``prefetch_factor`` (2) of them ready, so the first ``2 x workers`` batches arrive in a burst that
    a window must not start inside."""
    return 2 * workers + 2


def steps_per_epoch(suite: Suite, cfg: dict[str, dict[str, Any]]) -> int:
    dm = suite.datamodule(cfg["data"])
    return max(1, dm.num_train_samples // int(dm.hparams.batch_size))


# ============================================================================ part 1
def part1(suite: Suite, part: dict[str, Any]) -> None:
    s, peak = suite.s, suite.doc["device"].get("bf16_peak_tflops")
    rows: list[dict[str, Any]] = part.setdefault("results", [])
    part["settings"] = {"batch_size": s.batch, "warmup_steps": s.warmup, "configs": {
        k: {"trainer.precision": p, **{f"model.{m}": v for m, v in keys.items()}} for k, (p, keys) in PART1_CONFIGS.items()}}
    flops: dict[str, float] = {}
    last: dict[str, float] = {}
    for config, (precision, keys) in PART1_CONFIGS.items():
        for method in ("simclr", "byol"):
            row: dict[str, Any] = {"method": method, "config": config, "precision": precision, **keys}
            rows.append(row)
            compile_ = keys.get("compile_backbone", False)
            # the last uncompiled item of this method, plus compilation (~1 min for ResNet-18 fwd+bwd)
            estimate = last.get(method, 20.0 if not s.dry else 2.0) + (90.0 if compile_ and not s.dry else 0.0)
            if not suite.deadline.fits(estimate):
                row.update(status="skipped", reason=suite.deadline.skip_reason(estimate, f"{method} {config}"))
                continue
            t0 = time.time()
            try:
                cfg = suite.config(method, batch=s.batch, **keys)
                spe = steps_per_epoch(suite, cfg)
                count = s.window or spe
                graphs = dynamo_graphs()
                with compile_backend_for_dry_run(s.dry and compile_):
                    res = fit(suite, cfg, precision, StepWindow(s.warmup, count))
                if compile_:  # 0 new graphs: Dynamo reused the graph compiled for the previous model of this shape
                    res["new_dynamo_graphs"] = dynamo_graphs() - graphs
                res["epoch_s"] = res["window_s"] * spe / count  # one epoch's steps (the window is one when not a dry run)
                res["steps_per_epoch"] = spe
                if method not in flops:
                    flops[method] = count_flops(suite, method)
                res["flops_per_image"] = flops[method]
                res["mfu"] = (flops[method] * res["images_per_s"] / (peak * 1e12)) if peak else None
                if s.dry and compile_:
                    res["note"] = "dry run: torch.compile with the eager backend (inductor takes minutes on a CPU)"
                row.update(status="ok", **res)
                suite.measured_here[f"{method}/{config}"] = row
            except Exception as err:  # noqa: BLE001 - recorded, the other items still run
                row.update(error_record(err))
            finally:
                row["elapsed_s"] = time.time() - t0
                if not compile_:
                    last[method] = row["elapsed_s"]
                release()
                suite.write()
    if any(r["status"] == "ok" and r["config"] == "bf16_cl" for r in rows):
        part["summary"] = {m: {r["config"]: r.get("images_per_s") for r in rows if r["method"] == m}
                           for m in ("simclr", "byol")}


def dynamo_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@contextlib.contextmanager
def compile_backend_for_dry_run(active: bool) -> Iterator[None]:
    """Dry run: ``nn.Module.compile`` with the ``eager`` backend (Dynamo traces, nothing is generated),
    so the ``model.compile_backbone`` path runs in seconds on a CPU."""
    if not active:
        yield
        return
    original = nn.Module.compile

    def eager_compile(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("backend", "eager")
        original(self, *args, **kwargs)

    nn.Module.compile = eager_compile  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.compile = original  # type: ignore[method-assign]


def count_flops(suite: Suite, method: str) -> float:
    """FLOPs of one forward+backward per image (both views) at the part's batch size, under bf16
    autocast, on a fresh uncompiled copy of the method (compile and memory layout do not change the
    count)."""
    cfg = suite.config(method, batch=suite.s.batch)
    dm = suite.datamodule(cfg["data"])
    pl.seed_everything(0, verbose=False)
    model = build_method(cfg["model"], dm.num_classes).to(suite.device)
    try:
        return step_flops_per_image(model, int(dm.hparams.batch_size), dm.image_size, torch.bfloat16)
    finally:
        del model
        release()


# ============================================================================ part 2
def part2(suite: Suite, part: dict[str, Any]) -> None:
    s = suite.s
    rows: list[dict[str, Any]] = part.setdefault("results", [])
    precision, keys = PART1_CONFIGS["bf16_cl"]
    part["settings"] = {"model": "bf16-mixed + channels_last", "per_image_workers": s.workers, "batch_size": s.batch,
                        "per_image": "SSLDataModule(pipeline='per_image'): torchvision.transforms.v2 per image and view "
                                     "in DataLoader workers, pinned memory",
                        "batched": "SSLDataModule(pipeline='batched'): images on the GPU, augmented per batch there"}
    for method in ("simclr", "byol"):
        row: dict[str, Any] = {"method": method}
        rows.append(row)
        t0 = time.time()
        try:
            cfg = suite.config(method, batch=s.batch, **keys)
            spe = steps_per_epoch(suite, cfg)
            count = s.window or spe
            reused = suite.measured_here.get(f"{method}/bf16_cl")
            if reused is not None:
                row["batched"] = {k: reused[k] for k in ("images_per_s", "epoch_s", "step_ms", "window_s")}
                row["batched_source"] = "part 1 (bf16_cl), this process"
            else:
                estimate = 15.0 if not s.dry else 2.0
                if not suite.deadline.fits(2 * estimate):
                    row.update(status="skipped", reason=suite.deadline.skip_reason(2 * estimate, method))
                    continue
                res = fit(suite, cfg, precision, StepWindow(s.warmup, count))
                row["batched"] = {k: res[k] for k in ("images_per_s", "step_ms", "window_s", "peak_memory_gib")}
                row["batched"]["epoch_s"] = res["window_s"] * spe / count
                row["batched_source"] = "measured in this part"
                release()
            estimate = 25.0 if not s.dry else 2.0
            if not suite.deadline.fits(estimate):
                row.update(status="skipped", reason=suite.deadline.skip_reason(estimate, f"{method} per_image"))
                continue
            cfg["data"].update(pipeline="per_image", num_workers=s.workers)
            res = fit(suite, cfg, precision, StepWindow(max(s.warmup, worker_warmup(s.workers)), count))
            res["epoch_s"] = res["window_s"] * spe / count
            row["per_image"] = res
            row["batched_over_per_image"] = row["batched"]["images_per_s"] / res["images_per_s"]
            row["status"] = "ok"
        except Exception as err:  # noqa: BLE001
            row.update(error_record(err))
        finally:
            row["elapsed_s"] = time.time() - t0
            release()
            suite.write()


# ============================================================================ part 3
class ViewSink(pl.LightningModule):
    """Reads every pixel of every view on the device and does nothing else, so a fit through it
    times the data side of training: workers, transfer and the data module's device transform."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        views = batch[0]
        return self.w * torch.stack([v.float().mean() for v in views]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _write_jpegs(job: tuple[str, np.ndarray, list[tuple[str, tuple[int, int], int, int]]]) -> int:
    """Worker of ``make_jpeg_tree``: upscale, add noise, encode; returns bytes written."""
    from PIL import Image

    root, images, items = job
    total = 0
    for (rel, (w, h), src, seed) in items:
        rng = np.random.default_rng(seed)
        img = np.asarray(Image.fromarray(images[src]).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        img = np.clip(img + rng.normal(0.0, 6.0, img.shape), 0, 255).astype(np.uint8)  # photo-like entropy
        path = Path(root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path, quality=int(rng.integers(85, 96)))
        total += path.stat().st_size
    return total


def make_jpeg_tree(root: Path, images: np.ndarray, labels: np.ndarray, n: int, scale: float,
                   processes: int) -> dict[str, Any]:
    """``root/train/class<k>/<i>.jpg``: ``n`` images taken from ``images`` (N, H, W, 3) uint8,
    resized to ``folder_throughput.SIZES`` (ImageNet-like, both orientations) x ``scale`` with
    Gaussian noise (sigma 6) and JPEG quality 85-95."""
    items = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        src = (i * 7919) % len(images)
        items.append((f"train/class{int(labels[src])}/{i:05d}.jpg", size, src, i))
    jobs = []
    for i in range(processes):  # each job carries only its own source images
        chunk = items[i::processes]
        jobs.append((str(root), images[[src for _, _, src, _ in chunk]],
                     [(rel, size, j, seed) for j, (rel, size, _, seed) in enumerate(chunk)]))
    t0 = time.time()
    if processes > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(processes, mp_context=mp.get_context("fork")) as pool:
            sizes = list(pool.map(_write_jpegs, jobs))
    else:
        sizes = [_write_jpegs(job) for job in jobs]
    return {"images": n, "mean_file_kib": sum(sizes) / n / 1024, "generate_s": time.time() - t0,
            "sizes": sorted({f"{w}x{h}" for _, (w, h), _, _ in items}), "source": "CIFAR-10 train images upscaled "
            "(digits in a dry run), Gaussian noise sigma 6, JPEG quality 85-95"}


def part3(suite: Suite, part: dict[str, Any]) -> None:
    s = suite.s
    rows: list[dict[str, Any]] = part.setdefault("results", [])
    steps = s.tree_images // s.tree_batch  # one epoch; the window stays inside it (no epoch boundary)
    warm = min(worker_warmup(s.workers), steps // 2)
    count = steps - warm - 1
    part["settings"] = {"images": s.tree_images, "batch_size": s.tree_batch, "crop": s.tree_size, "recipe": "byol (2 views)",
                        "workers": s.workers, "warmup_steps": warm, "window_steps": count,
                        "model": "ViewSink: reads every view on the device (the data side only)"}
    estimate = 30.0 if not s.dry else 2.0  # generating the tree and one pipeline
    if not suite.deadline.fits(estimate):
        for pipeline in ("per_image", "files_batched", "files_gpu"):
            rows.append({"pipeline": pipeline, "status": "skipped",
                         "reason": suite.deadline.skip_reason(estimate, "the tree and a pipeline")})
        return
    src_cfg = suite.config("simclr")
    dm = suite.datamodule(src_cfg["data"])
    images = dm.source.train.images.permute(0, 2, 3, 1).contiguous().numpy()
    labels = dm.source.train.labels.numpy()
    with tempfile.TemporaryDirectory(prefix="gpu-suite-tree-") as tmp:
        part["tree"] = make_jpeg_tree(Path(tmp), images, labels, s.tree_images, s.tree_scale,
                                      processes=1 if s.dry else min(16, os.cpu_count() or 1))
        suite.write()
        for pipeline in ("per_image", "files_batched", "files_gpu"):
            row: dict[str, Any] = {"pipeline": pipeline}
            rows.append(row)
            if pipeline == "files_gpu" and not s.cuda:
                row.update(status="skipped", reason=f"{NO_GPU} (files_gpu decodes with nvjpeg on the training GPU)")
                continue
            estimate = 20.0 if not s.dry else 2.0
            if not suite.deadline.fits(estimate):
                row.update(status="skipped", reason=suite.deadline.skip_reason(estimate, pipeline))
                continue
            t0 = time.time()
            try:
                tree_dm = SSLDataModule("folder", root=tmp, batch_size=s.tree_batch, num_workers=s.workers,
                                        pipeline=pipeline, augment={"name": "byol"}, image_size=s.tree_size)
                cfg = {"trainer": {}, "run": {}, "data": {}}
                res = fit(suite, cfg, "32-true", StepWindow(warm, count), model=ViewSink(), dm=tree_dm)
                row.update(status="ok", **res)
            except Exception as err:  # noqa: BLE001
                row.update(error_record(err))
            finally:
                row["elapsed_s"] = time.time() - t0
                release()
                suite.write()
    ref = next((r for r in rows if r["pipeline"] == "per_image" and r.get("status") == "ok"), None)
    for r in rows:
        if ref is not None and r.get("status") == "ok":
            r["over_per_image"] = r["images_per_s"] / ref["images_per_s"]
            r["over_per_image_per_cpu_s"] = r["images_per_cpu_s"] / ref["images_per_cpu_s"]


# ============================================================================ part 4
def fp32_probes(method: str) -> list[tuple[Any, str, str]]:
    """(module, function name, label) of the float32 parts to watch under autocast."""
    import ssl_bench.losses as L
    import ssl_bench.losses.wmse as W

    return {"swav": [(L, "sinkhorn", "sinkhorn"), (L, "swav_loss", "swav_loss")],
            "wmse": [(W, "whiten", "whiten")],
            "dino": [(L, "dino_loss", "dino_loss"), (L, "batch_center", "batch_center"),
                     (L, "ema_center", "ema_center")]}.get(method, [])


def float_buffers(model: nn.Module) -> dict[str, str]:
    return {name: str(b.dtype).removeprefix("torch.") for name, b in model.named_buffers() if b.is_floating_point()}


def part4(suite: Suite, part: dict[str, Any]) -> None:
    s = suite.s
    rows: list[dict[str, Any]] = part.setdefault("results", [])
    part["settings"] = {"precision": "bf16-mixed", "configs": f"configs/{s.family}/<method>.yaml",
                        "registered_methods": sorted(METHODS),
                        "warmup_steps": s.method_warmup, "window_steps": s.method_steps,
                        "model_overrides": {**QUIET_PERIODIC, "swav": {"queue_start_epoch": 0}},
                        "trainer_overrides": {"log_every_n_steps": 100_000},
                        "note": "periodic logging, the finite check and the collapse monitor are moved out of "
                                "the window, so syncs_per_step counts what every step does; SwAV's queue starts "
                                "at once, so its queue path runs within the window (full after 15 steps)"}
    first = [m for m in ("swav", "wmse", "dino") if m in METHODS]  # the float32 checks first, if time runs out
    for method in first + sorted(set(METHODS) - set(first)):
        row: dict[str, Any] = {"method": method}
        rows.append(row)
        estimate = 10.0 if not s.dry else 1.0
        if not suite.deadline.fits(estimate):
            row.update(status="skipped", reason=suite.deadline.skip_reason(estimate, method))
            continue
        t0 = time.time()
        try:
            extra = {"queue_start_epoch": 0} if method == "swav" else {}
            cfg = suite.config(method, **QUIET_PERIODIC, **extra)
            dm = suite.datamodule(cfg["data"], seed=int(cfg["run"]["seed"]))
            pl.seed_everything(0, verbose=False)
            model = build_method(cfg["model"], dm.num_classes)
            before = float_buffers(model)
            backbone_out: set[str] = set()
            hooks = [m.register_forward_hook(lambda m, i, o: backbone_out.add(str(o.dtype).removeprefix("torch.")))
                     for m in model.backbone.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
            records: dict[str, dict[str, Any]] = {label: {} for _, _, label in fp32_probes(method)}
            window = StepWindow(s.method_warmup, s.method_steps, collect=True)
            recorder = SyncRecorder(lambda: window.step)
            window.on_start, window.on_end = recorder.start, recorder.stop
            with contextlib.ExitStack() as stack:
                stack.enter_context(recorder)
                for module, name, label in fp32_probes(method):
                    stack.enter_context(patched(module, name, records[label]))
                res = fit(suite, cfg, "bf16-mixed", window, trainer_extra={"log_every_n_steps": 100_000},
                          model=model, dm=dm)
            for h in hooks:
                h.remove()
            after = float_buffers(model)
            changed = {k: f"{before[k]} -> {v}" for k, v in after.items() if k in before and before[k] != v}
            checks = {"backbone_layer_output_dtype": sorted(backbone_out), "float_buffers_changed_dtype": changed,
                      "float32_buffers": sum(v == "float32" for v in after.values()),
                      **{label: _plain_record(r) for label, r in records.items()}}
            problems = [f"buffer {k} {v}" for k, v in changed.items()]
            for label, r in records.items():
                outs = [d for d in r.get("outputs", ()) if not d.startswith(("int", "bool"))]
                if not r.get("calls"):
                    problems.append(f"{label} was not called")
                elif any(not d.startswith("float32") for d in outs):
                    problems.append(f"{label} returned {sorted(outs)} under autocast")
            if method == "dino" and after.get("center") != "float32":
                problems.append(f"DINO centre is {after.get('center')}")
            if s.cuda:
                res["host_syncs"] = recorder.summary(s.method_steps)
            else:
                res["host_syncs"] = NO_GPU
            if not res["loss_finite"]:
                problems.append("non-finite loss in the window")
            row.update(**res, float32_checks=checks, problems=problems, status="ok" if not problems else "failed")
            if method == "swav" and model.queues:
                row["swav_queue_full_at_end"] = bool(model.queues[0].is_full)
            del model
        except Exception as err:  # noqa: BLE001
            row.update(error_record(err))
        finally:
            row["elapsed_s"] = time.time() - t0
            release()
            suite.write()


# ============================================================================ part 5
class EvalDevices(pl.Callback):
    """Devices of the features that the validation step hands to the k-NN and probe callbacks."""

    def __init__(self) -> None:
        self.feats: set[str] = set()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        if isinstance(outputs, dict) and isinstance(outputs.get("feats"), torch.Tensor):
            self.feats.add(outputs["feats"].device.type)


def _device_verdict(devices: set[str] | list[str], cuda: bool) -> str:
    if not cuda:
        return NO_GPU
    if not devices:
        return "failed: not called"
    return "ok" if set(devices) == {"cuda"} else f"failed: on {', '.join(sorted(devices))}"


def _devices(record: dict[str, Any]) -> set[str]:
    return {d.split("@", 1)[1] for d in record.get("inputs", ()) if "@" in d}


def part5(suite: Suite, part: dict[str, Any]) -> None:
    s = suite.s
    checks: dict[str, Any] = part.setdefault("checks", {})
    part["settings"] = {"methods": ["simclr", "byol"], "model": "bf16-mixed + channels_last", "batch_size": s.batch,
                        "warmup_steps": 3 if not s.dry else 1, "window_steps": 20 if not s.dry else 2,
                        "periodic_work_moved_out": {**QUIET_PERIODIC, "log_every_n_steps": 100_000},
                        "scope": "the whole training-loop iteration: batch fetch and transfer, the data module's "
                                 "device augmentation, forward, backward, optimiser, EMA, callbacks (probe)"}
    warm, count = (3, 20) if not s.dry else (1, 2)
    precision, keys = PART1_CONFIGS["bf16_cl"]
    jobs: list[tuple[str, Callable[[Suite], dict[str, Any]], float]] = [("harness_control", harness_control, 5.0)]
    for method in ("simclr", "byol"):
        jobs.append((f"host_syncs/{method}",
                     lambda suite, m=method: host_sync_check(suite, m, precision, keys, warm, count), 15.0))
    jobs += [("eval_devices/online", online_eval_devices, 15.0), ("eval_devices/offline", offline_eval_devices, 15.0)]
    for name, fn, estimate in jobs:
        estimate = estimate if not s.dry else 1.0
        if not suite.deadline.fits(estimate):
            checks[name] = {"status": "skipped", "reason": suite.deadline.skip_reason(estimate, name)}
            continue
        t0 = time.time()
        try:
            checks[name] = fn(suite)
        except Exception as err:  # noqa: BLE001
            checks[name] = error_record(err)
        checks[name]["elapsed_s"] = time.time() - t0
        release()
        suite.write()


def host_sync_check(suite: Suite, method: str, precision: str, keys: dict[str, Any], warm: int,
                    count: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    cfg = suite.config(method, batch=suite.s.batch, **keys, **QUIET_PERIODIC)
    window = StepWindow(warm, count)
    recorder = SyncRecorder(lambda: window.step)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if suite.s.cuda else [])
    prof = profile(activities=activities)

    def start() -> None:
        prof.start()
        recorder.start()

    def stop() -> None:
        recorder.stop()
        sync()
        prof.stop()

    window.on_start, window.on_end = start, stop
    with recorder:
        res = fit(suite, cfg, precision, window, trainer_extra={"log_every_n_steps": 100_000})
    counts = profiler_counts(prof)
    if suite.s.cuda:  # the suite's own torch.cuda.synchronize() closing the window
        counts["cudaDeviceSynchronize"] = counts.get("cudaDeviceSynchronize", 0) - 1
    blocking = blocking_events(counts)
    out: dict[str, Any] = {"window_steps": count, "step_ms_profiled": res["step_ms"],
                           "profiler_counts": {k: v for k, v in counts.items() if v},
                           "profiler_blocking_per_step": blocking / count}
    if not suite.s.cuda:
        out.update(status="skipped", reason=f"{NO_GPU} (the harness ran: {count} steps recorded and profiled on the CPU)")
        return out
    out["sync_debug"] = recorder.summary(count)
    n = out["sync_debug"]["syncs"]
    out["status"] = "ok" if n == 0 and blocking == 0 else "failed"
    if out["status"] == "failed":
        where = ", ".join(f"{p['where']} x{p['count']}" for p in out["sync_debug"]["places"][:4])
        out["reason"] = (f"{n} synchronising calls in {count} steps (sync debug mode){': ' + where if where else ''}; "
                         f"profiler: {blocking} blocking sync/copy events")
    return out


def profiler_counts(prof: Any) -> dict[str, int]:
    """Calls of the CUDA runtime's synchronising functions (any name with ``Synchronize``, the blocking
    ``cudaMemcpy``) and device copies (``Memcpy DtoH`` / ``HtoD``) in a profile."""
    counts: Counter[str] = Counter()
    for evt in prof.key_averages():
        key = evt.key
        if key.startswith("cuda") and "Synchronize" in key:
            counts[key] += evt.count
        elif key.split("_v")[0] == "cudaMemcpy":
            counts["cudaMemcpy"] += evt.count
        elif key.startswith("Memcpy DtoH") or key.startswith("Memcpy HtoD"):
            counts[key.split(" (")[0]] += evt.count
    return dict(counts)


def blocking_events(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if "Synchronize" in k or k in ("cudaMemcpy", "Memcpy DtoH"))


def harness_control(suite: Suite) -> dict[str, Any]:
    """Positive control of the sync checks: one deliberate synchronisation (``.item()`` of a device
    tensor on a GPU; a synthetic warning on a CPU) must be seen by the sync-debug recorder and, on a
    GPU, by the profiler's counts; otherwise a zero in the checks above would mean nothing."""
    from torch.profiler import ProfilerActivity, profile

    recorder = SyncRecorder(lambda: 0)
    prof = profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if suite.s.cuda else []))
    with recorder:
        x = torch.ones(8, device=suite.device).sum()
        sync()
        prof.start()
        recorder.start()
        if suite.s.cuda:
            value = x.item()
        else:
            warnings.warn(f"called a {SYNC_MESSAGE} (synthetic: dry run)")
            value = float(x)
        recorder.stop()
        prof.stop()
    counts = profiler_counts(prof)
    out = {"deliberate": ".item() of a CUDA tensor" if suite.s.cuda else "a synthetic sync warning (no GPU)",
           "value": value, "recorded_syncs": len(recorder.events), "profiler_counts": counts,
           "profiler_blocking": blocking_events(counts)}
    seen = len(recorder.events) >= 1 and (blocking_events(counts) >= 1 or not suite.s.cuda)
    out["status"] = "ok" if seen else "failed"
    if not seen:
        out["reason"] = "the deliberate sync was not recorded: the zero counts of the sync checks cannot be trusted"
    return out


def online_eval_devices(suite: Suite) -> dict[str, Any]:
    """A short fit with validation (2 training steps, 2 batches of each validation loader): where the
    validation features, the k-NN callback's bank and queries, and the probe's logits live."""
    import ssl_bench.callbacks.knn as knn_mod
    import ssl_bench.callbacks.linear_probe as probe_mod

    cfg = suite.config("simclr", batch=suite.s.batch)
    cfg["data"]["eval_batch_size"] = 256 if not suite.s.dry else 32
    knn_rec: dict[str, Any] = {}
    probe_rec: dict[str, Any] = {}
    seen = EvalDevices()
    window = StepWindow(0, 1)
    with patched(knn_mod, "weighted_knn_predict", knn_rec), patched(probe_mod, "multiclass_accuracy", probe_rec):
        fit(suite, cfg, "bf16-mixed", window, callbacks=[seen],
            trainer_extra={"limit_train_batches": 2, "limit_val_batches": 2, "max_epochs": 1})
    checks = {"validation_features": {"devices": sorted(seen.feats), "status": _device_verdict(seen.feats, suite.s.cuda)},
              "knn_callback": {**_plain_record(knn_rec), "status": _device_verdict(_devices(knn_rec), suite.s.cuda)},
              "probe_callback": {**_plain_record(probe_rec), "status": _device_verdict(_devices(probe_rec), suite.s.cuda)}}
    return {"checks": checks, **_combine(checks)}


def offline_eval_devices(suite: Suite) -> dict[str, Any]:
    """``ssl-bench eval``'s path on a random-init model: ``features.extract`` (default device), then
    the ``knn`` and ``linear`` protocols' ``knn_scores`` and ``linear_scores`` (2 epochs): where each
    computes."""
    from ssl_bench.eval.features import extract
    from ssl_bench.eval.knn import knn_scores
    from ssl_bench.eval.linear import linear_scores

    cfg = suite.config("simclr")
    cfg["data"].update(val_subset=1000 if not suite.s.dry else 40, eval_train_subset=2000 if not suite.s.dry else 80)
    dm = suite.datamodule(cfg["data"])
    pl.seed_everything(0, verbose=False)
    model = build_method(cfg["model"], dm.num_classes)
    model_devices: set[str] = set()
    hook = model.backbone.register_forward_hook(lambda m, i, o: model_devices.add(o.device.type))
    fs = extract(model, dm)
    hook.remove()
    knn_rec: dict[str, Any] = {}
    lin_rec: dict[str, Any] = {}
    # the functions the protocols call, in the module that defines them
    knn_home, lin_home = (sys.modules[f.__module__] for f in (knn_scores, linear_scores))
    with patched(knn_home, "weighted_knn_predict", knn_rec), patched(lin_home, "train_linear", lin_rec):
        knn = knn_scores(fs, dm.num_classes, k=min(20, len(fs.train_y)), temperature=0.07)
        lin = linear_scores(fs, dm.num_classes, epochs=2)
    checks = {"feature_extraction": {"devices": sorted(model_devices), "status": _device_verdict(model_devices, suite.s.cuda)},
              "features_returned": {"devices": sorted({fs.train_x.device.type, fs.val_x.device.type}),
                                    "status": _device_verdict({fs.train_x.device.type, fs.val_x.device.type}, suite.s.cuda)},
              "knn": {**_plain_record(knn_rec), "top1": float(knn[1]), "status": _device_verdict(_devices(knn_rec), suite.s.cuda)},
              "linear": {**_plain_record(lin_rec), "top1": float(lin[1]), "status": _device_verdict(_devices(lin_rec), suite.s.cuda)}}
    return {"checks": checks, **_combine(checks)}


def _combine(checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    statuses = [c["status"] for c in checks.values()]
    if all(st == NO_GPU for st in statuses):
        return {"status": "skipped", "reason": f"{NO_GPU} (the harness ran on the CPU; devices recorded)"}
    failed = [f"{k}: {c['status']}" for k, c in checks.items() if c["status"] != "ok"]
    return {"status": "ok"} if not failed else {"status": "failed", "reason": "; ".join(failed)}


# ============================================================================ parts, headline, markdown
@dataclass
class Part:
    title: str
    run: Callable[[Suite, dict[str, Any]], None]
    min_s: float      # reserved for it while earlier parts run (GPU run)
    typical_s: float  # what it takes on an H100 (estimate until measured)


PARTS: dict[int, Part] = {
    1: Part("SimCLR/BYOL ResNet-18 epoch time, images/s, MFU, memory: fp32, bf16, +channels_last, +compile",
            part1, 60, 200),
    2: Part("batched (on the GPU) vs per-image DataLoader pipeline (16 workers)", part2, 25, 40),
    3: Part("image trees at 224 px: per_image vs files_batched vs files_gpu", part3, 30, 60),
    4: Part("every registered method, 20 bf16 steps: finite loss, step time, float32 parts", part4, 50, 100),
    5: Part("host syncs in the training loop; k-NN and probe devices", part5, 25, 45),
}
TERMINAL = ("ok", "failed", "error", "skipped", "partial", "timeout")


def part_status(part: dict[str, Any]) -> str:
    items = list(part.get("results") or []) + list((part.get("checks") or {}).values())
    if not items:
        return "ok"
    statuses = [i.get("status", "error") for i in items]
    if any(st == "error" for st in statuses):
        return "error"
    if any(st == "failed" for st in statuses):
        return "failed"
    if all(st == "skipped" for st in statuses):
        return "skipped"
    if any(st == "skipped" for st in statuses):
        return "partial"
    return "ok"


def headline(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    p2 = doc["parts"].get("2", {})
    ratios = {r["method"]: r.get("batched_over_per_image") for r in p2.get("results", []) if r.get("status") == "ok"}
    if ratios:
        out["batched_over_per_image"] = ratios
    p1 = doc["parts"].get("1", {})
    best = [r for r in p1.get("results", []) if r.get("status") == "ok"]
    if best:
        for m in ("simclr", "byol"):
            rows = [r for r in best if r["method"] == m]
            if rows:
                top = max(rows, key=lambda r: r["images_per_s"])
                out[f"{m}_best"] = {"config": top["config"], "images_per_s": top["images_per_s"],
                                    "epoch_s": top["epoch_s"], "mfu": top.get("mfu")}
    p3 = doc["parts"].get("3", {})
    trees = {r["pipeline"]: r.get("over_per_image") for r in p3.get("results", []) if r.get("status") == "ok"}
    if trees:
        out["tree_over_per_image"] = trees
    p4 = doc["parts"].get("4", {})
    if p4.get("results"):
        out["methods_ok"] = sum(r.get("status") == "ok" for r in p4["results"])
        out["methods_total"] = len(p4["results"])
    p5 = doc["parts"].get("5", {})
    if p5.get("checks"):
        out["checks"] = {k: c.get("status") for k, c in p5["checks"].items()}
    return out


def _f(v: Any, fmt: str = ".1f", scale: float = 1.0) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, (int, float)):
        return f"{v * scale:{fmt}}"
    return str(v)


def _status(item: dict[str, Any]) -> str:
    st = item.get("status", "?")
    detail = item.get("reason") or item.get("error")
    if not detail or st == "ok":
        return st
    return detail if detail.startswith(st) else f"{st}: {detail}"


def markdown(doc: dict[str, Any]) -> str:
    dev = doc["device"]
    lines = [f"# GPU suite (issue #26){' - DRY RUN on the CPU (tiny sizes; numbers mean nothing)' if doc['dry_run'] else ''}",
             "", f"Device: {dev.get('name')} (bf16 peak {_f(dev.get('bf16_peak_tflops'), '.0f')} TFLOP/s, "
             f"{dev.get('bf16_peak_source')}); torch {dev.get('torch')}, CUDA {dev.get('cuda_version')}, "
             f"Lightning {dev.get('pytorch_lightning')}; code {doc.get('commit') or 'unknown'}; {doc['started']}; "
             f"{_f(doc.get('elapsed_s'), '.0f')} s of a {_f(doc.get('deadline_s'), '.0f')} s deadline; kornia "
             f"{str(dev.get('kornia', '?')).split(';')[0]}.", "",
             *([f"**The project could not be imported: {doc['import_error']}**", ""] if doc.get("import_error") else []),
             "| part | what | status | time (s) |", "|---|---|---|---|"]
    for key, part in doc["parts"].items():
        lines.append(f"| {key} | {part.get('title', '')} | {_status(part)} | {_f(part.get('elapsed_s'), '.0f')} |")
    parts = doc["parts"]
    if parts.get("1", {}).get("results"):
        lines += ["", "## 1. Training throughput (batched pipeline, batch "
                  f"{parts['1'].get('settings', {}).get('batch_size')})", "",
                  "| method | config | epoch (s) | images/s | step (ms) | GFLOP/image | MFU | peak memory (GiB) | status |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in parts["1"]["results"]:
            lines.append(f"| {r['method']} | {r['config']} | {_f(r.get('epoch_s'), '.2f')} | {_f(r.get('images_per_s'), ',.0f')} | "
                         f"{_f(r.get('step_ms'), '.1f')} | {_f(r.get('flops_per_image'), '.2f', 1e-9)} | "
                         f"{_f(r.get('mfu'), '.1%')} | {_f(r.get('peak_memory_gib'), '.2f')} | {_status(r)} |")
    if parts.get("2", {}).get("results"):
        lines += ["", "## 2. Batched vs per-image pipeline (bf16 + channels_last)", "",
                  "| method | batched images/s | per-image images/s | batched / per-image | per-image workers busy | status |",
                  "|---|---|---|---|---|---|"]
        for r in parts["2"]["results"]:
            pi = r.get("per_image") or {}
            lines.append(f"| {r['method']} | {_f((r.get('batched') or {}).get('images_per_s'), ',.0f')} | "
                         f"{_f(pi.get('images_per_s'), ',.0f')} | {_f(r.get('batched_over_per_image'), '.2f')}x | "
                         f"{_f(pi.get('worker_busy'), '.0%')} | {_status(r)} |")
    if parts.get("3", {}).get("results"):
        tree = parts["3"].get("tree", {})
        lines += ["", f"## 3. Image trees ({tree.get('images')} JPEGs, mean {_f(tree.get('mean_file_kib'), '.0f')} KiB, "
                  f"crop {parts['3'].get('settings', {}).get('crop')} px, data side only)", "",
                  "| pipeline | images/s | images/CPU-s | x per_image | workers busy | workers' share of CPU | status |",
                  "|---|---|---|---|---|---|---|"]
        for r in parts["3"]["results"]:
            lines.append(f"| {r['pipeline']} | {_f(r.get('images_per_s'), ',.0f')} | {_f(r.get('images_per_cpu_s'), ',.0f')} | "
                         f"{_f(r.get('over_per_image'), '.2f')} | {_f(r.get('worker_busy'), '.0%')} | "
                         f"{_f(r.get('worker_cpu_share'), '.0%')} | {_status(r)} |")
    if parts.get("4", {}).get("results"):
        lines += ["", "## 4. Every method, bf16", "",
                  "| method | loss finite | step (ms) | syncs/step | backbone conv/linear out | float32 parts | status |",
                  "|---|---|---|---|---|---|---|"]
        for r in parts["4"]["results"]:
            syncs = r.get("host_syncs")
            fc = r.get("float32_checks") or {}
            watched = [f"{k}: {','.join(v.get('outputs', []))}" for k, v in fc.items() if isinstance(v, dict) and "calls" in v]
            lines.append(f"| {r['method']} | {_f(r.get('loss_finite'))} | {_f(r.get('step_ms'), '.1f')} | "
                         f"{_f(syncs.get('syncs_per_step'), '.1f') if isinstance(syncs, dict) else _f(syncs)} | "
                         f"{','.join(fc.get('backbone_layer_output_dtype', [])) or '-'} | {'; '.join(watched) or '-'} | "
                         f"{_status(r) if r.get('status') != 'failed' else 'failed: ' + '; '.join(r.get('problems', []))} |")
    if parts.get("5", {}).get("checks"):
        lines += ["", "## 5. Host syncs and evaluation devices", "", "| check | status | detail |", "|---|---|---|"]
        for name, c in parts["5"]["checks"].items():
            if name.startswith("host_syncs") and "sync_debug" in c:
                sd = c["sync_debug"]
                detail = (f"{sd['syncs']} syncs in {c['window_steps']} steps; profiler {c.get('profiler_counts')}; "
                          + "; ".join(f"{p['where']} x{p['count']}" for p in sd["places"][:4]))
            elif name == "harness_control" and "recorded_syncs" in c:
                detail = (f"{c['deliberate']}: {c['recorded_syncs']} recorded by the sync-debug recorder, "
                          f"{c['profiler_blocking']} blocking events in the profile")
            elif "checks" in c:
                detail = "; ".join(f"{k}: {v.get('status')}" for k, v in c["checks"].items())
            else:
                detail = c.get("reason") or c.get("error") or ""
            lines.append(f"| {name} | {c.get('status')} | {detail} |")
    return "\n".join(lines) + "\n"


# ============================================================================ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory for gpu_suite.json and gpu_suite.md")
    p.add_argument("--parts", type=int, nargs="+", default=sorted(PARTS), choices=sorted(PARTS))
    p.add_argument("--dry-run", action="store_true", help="every part at tiny sizes on the CPU (GPU checks skipped)")
    p.add_argument("--deadline-s", type=float, default=None,
                   help="seconds from start for all parts (default 420 on a GPU, 150 in a dry run)")
    p.add_argument("--deadline-at", type=float, default=None, help="absolute deadline (Unix time), e.g. from the wrapper")
    p.add_argument("--resume", action="store_true",
                   help="continue the JSON in --out: finished parts and the one that was running are not repeated")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the card (default: by name)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="per-image / files workers")
    p.add_argument("--tree-images", type=int, default=10240, help="part 3's JPEG tree (batches of 128)")
    p.add_argument("--data-root", default=None, help="directory holding cifar10-jpeg.tar.gz (default: searched, "
                                                     "$SSL_BENCH_DATA)")
    return p.parse_args(argv)


CUDA_FATAL = ("CUDA error", "illegal memory access", "CUBLAS_STATUS", "CUDNN_STATUS", "device-side assert",
              "unspecified launch failure")


def cuda_poisoned(part: dict[str, Any]) -> bool:
    """Whether an error of the part is one after which CUDA calls in this process keep failing."""
    text = json.dumps(finite(part), default=str)
    return any(marker in text for marker in CUDA_FATAL)


def start_watchdog(suite: Suite, grace: float) -> None:
    """If the process is still running ``grace`` seconds after the deadline, the running part is
    recorded as timed out, the files are written and the process exits (124)."""
    def watch() -> None:
        while time.time() < suite.deadline.at + grace:
            time.sleep(1.0)
        with suite.lock:
            for part in suite.doc["parts"].values():
                if part.get("status") == "running":
                    part.update(status="timeout", reason=f"still running {grace:.0f} s after the deadline; the process "
                                                         f"was ended by the watchdog")
        try:
            suite.write()
        finally:
            print("gpu_suite: deadline passed, watchdog ended the run", flush=True)
            os._exit(124)

    threading.Thread(target=watch, daemon=True, name="gpu-suite-watchdog").start()


def import_failure(args: argparse.Namespace, started: float) -> int:
    """ssl_bench (or the benchmarks it shares code with) cannot be imported: a JSON and a table that
    say why, every requested part an error, exit 4."""
    why = f"{type(IMPORT_ERROR).__name__}: {IMPORT_ERROR}"
    if "kornia" in why:
        why += (f" - ssl_bench imports kornia at import time ({KORNIA_USERS}); on a machine without it, carry a "
                f"copy as benchmarks/gpu_suite.sh's header says (.device/pylib)")
    doc = {"suite": "benchmarks/gpu_suite.py", "issue": 26, "dry_run": bool(args.dry_run),
           "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "started_unix": started,
           "commit": os.environ.get("GPU_SUITE_COMMIT"), "device": device_info(args.peak_tflops),
           "environment": {"python": platform.python_version(), "sys_path": sys.path[:6]}, "import_error": why,
           "parts": {str(k): {"title": PARTS[k].title, "status": "error",
                              "error": "not run: the project could not be imported (import_error)"}
                     for k in sorted(PARTS)}}
    suite = Suite(args, None, Deadline(started), args.out, doc)  # type: ignore[arg-type]
    suite.write()
    print(f"gpu_suite: cannot import the project: {why}", file=sys.stderr)
    return 4


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    if IMPORT_ERROR is not None:
        return import_failure(args, started)
    _quiet()
    warnings.filterwarnings("ignore", message=".*(Precision bf16-mixed|TensorFloat32|tensor cores|float32 matmul).*")
    warnings.filterwarnings("ignore", message=".*(GPU available but not used|num_workers|does not have many workers).*")
    warnings.filterwarnings("ignore", message=".*val_dataloader.*but have no .validation_step.*")
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        print("gpu_suite: no CUDA device; run with --dry-run on a CPU", file=sys.stderr)
        return 2
    if args.dry_run:  # one thread: on a shared 2-core machine more stall on OpenMP barriers (RESULTS.md)
        torch.set_num_threads(1)
    settings = Settings.make(args, cuda)
    budget = args.deadline_s if args.deadline_s is not None else (150.0 if args.dry_run else 420.0)
    deadline = Deadline(args.deadline_at if args.deadline_at is not None else started + budget)
    out = args.out
    previous: dict[str, Any] | None = None
    if args.resume and (out / JSON_NAME).is_file():
        previous = json.loads((out / JSON_NAME).read_text())
    doc: dict[str, Any] = previous or {
        "suite": "benchmarks/gpu_suite.py", "issue": 26, "dry_run": bool(args.dry_run), "started": time.strftime(
            "%Y-%m-%d %H:%M:%S %Z"), "started_unix": started, "commit": os.environ.get("GPU_SUITE_COMMIT"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "device": device_info(args.peak_tflops), "environment": environment(), "parts": {}}
    doc["deadline_s"] = deadline.at - doc["started_unix"]
    doc.setdefault("runs", []).append({"started_unix": started, "resume": bool(previous), "parts": args.parts})
    suite = Suite(args, settings, deadline, out, doc)
    if previous:
        for part in doc["parts"].values():
            if part.get("status") == "running":
                part.update(status="error", error="the process ended during this part (crash or kill); not retried "
                                                  "by --resume")
    for key in sorted(PARTS):
        doc["parts"].setdefault(str(key), {"title": PARTS[key].title, "status": "not requested"}
                                if key not in args.parts else {"title": PARTS[key].title, "status": "pending"})
        if key in args.parts and doc["parts"][str(key)]["status"] == "not requested":
            doc["parts"][str(key)]["status"] = "pending"
    suite.write()
    start_watchdog(suite, grace=30.0 if not args.dry_run else 60.0)
    todo = [k for k in sorted(args.parts) if doc["parts"][str(k)]["status"] not in TERMINAL]
    if todo:  # decode (or load the cached) CIFAR-10 once, outside every part's timings
        t0 = time.time()
        try:
            _ = suite.datamodule(suite.config("simclr")["data"]).source
            doc.setdefault("prepare", {}).update(status="ok", data_s=time.time() - t0)
        except Exception as err:  # noqa: BLE001 - the parts will say what fails without the data
            doc.setdefault("prepare", {}).update(error_record(err), data_s=time.time() - t0)
        suite.write()
    for i, key in enumerate(todo):
        spec, part = PARTS[key], doc["parts"][str(key)]
        reserve = sum(PARTS[k].min_s for k in todo[i + 1:]) * (0.02 if args.dry_run else 1.0)
        deadline.part_end = deadline.at - reserve
        need = spec.min_s * (0.02 if args.dry_run else 1.0)
        if deadline.left() < need:
            part.update(status="skipped", reason=f"skipped: not enough time left (needs ~{need:.0f} s, "
                                                 f"{max(deadline.left(), 0):.0f} s left before the reserve of later parts)")
            suite.write()
            continue
        print(f"gpu_suite: part {key}: {spec.title} ({deadline.left():.0f} s for it)", flush=True)
        with suite.lock:
            part.update(status="running", started_s=round(time.time() - doc["started_unix"], 1))
        suite.write()
        t0 = time.time()
        try:
            spec.run(suite, part)
            status = part_status(part)
        except Exception as err:  # noqa: BLE001 - the part's error is recorded, the next part runs
            part.update(error_record(err))
            status = "error"
        with suite.lock:
            part["status"], part["elapsed_s"] = status, time.time() - t0
        release()
        suite.write()
        print(f"gpu_suite: part {key}: {status} in {time.time() - t0:.1f} s", flush=True)
        if settings.cuda and status == "error" and cuda_poisoned(part) and todo[i + 1:]:
            print("gpu_suite: a CUDA error may have left this process's CUDA context unusable; exiting (3) so "
                  "that --resume runs the remaining parts in a fresh process", flush=True)
            return 3
    suite.write()
    print(f"gpu_suite: wrote {out / JSON_NAME} and {out / MD_NAME} ({time.time() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
