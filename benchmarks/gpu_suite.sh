#!/usr/bin/env bash
# GPU suite (issue #26) on the device machine: benchmarks/gpu_suite.py with every part, within 8 minutes.
#
# It runs from the repository root of a copy of the working tree, with no network: nothing is
# installed (PYTHONPATH points at the copy; `pip install --no-deps -e .` would need setuptools from
# the network), and CIFAR-10 comes from a carried copy of the archive. kornia is NOT optional:
# ssl_bench imports it at import time (methods/cmc.py, data/batched_ops.py), so a machine without it
# gets a copy of this checkout's installed one (kornia is pure Python; its compiled kornia_rs, used only
# for kornia's image-file IO, loads on CPython 3.11 x86_64 only, and gpu_suite.py stubs it elsewhere).
# wandb and submitit are not needed. Before the call, on the machine that holds the checkout:
#
#   mkdir -p .device/data .device/pylib
#   cp /work/shared/data/cifar10-jpeg.tar.gz /work/shared/data/README.md .device/data/
#   cp -r .venv/lib/python3.11/site-packages/kornia .venv/lib/python3.11/site-packages/kornia_rs .device/pylib/
#   find .device/pylib -name __pycache__ -prune -exec rm -rf {} +      # .device/ is ~40 MB in all
#
# (.device/ is in .gitignore), then run with the device tool:
#
#   command:   GPU_SUITE_COMMIT=<git rev-parse --short HEAD, written literally> bash benchmarks/gpu_suite.sh
#   carry:     [".device"]
#   timeout_s: 540
#
# Results: $OUT/gpu_suite.json, $OUT/gpu_suite.md, $OUT/gpu_suite.log, $OUT/nvidia-smi.txt.
# Extra arguments go to gpu_suite.py (e.g. `--parts 4 5`). If the Python process dies (a crash, or a
# CUDA error that leaves the context unusable: exit 3), the remaining parts run again in a fresh
# process with --resume while time is left; exit 4: the project could not be imported (the JSON says why).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$PWD/benchmarks/out/gpu_suite}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export SSL_BENCH_DATA="${SSL_BENCH_DATA:-$PWD/.device/data}"
export SSL_BENCH_CACHE="${SSL_BENCH_CACHE:-${TMPDIR:-/tmp}/ssl_bench_cache}"  # decoded CIFAR-10, not in $OUT
export PYTHONUNBUFFERED=1
PY="${PYTHON:-$(command -v python || command -v python3)}"
if ! "$PY" -c "import kornia" >/dev/null 2>&1 && [[ -d .device/pylib ]]; then
  export PYTHONPATH="$PYTHONPATH:$PWD/.device/pylib"   # after the tree: an installed kornia would win
fi
BUDGET_S="${GPU_SUITE_BUDGET_S:-420}"   # the suite's deadline; its watchdog ends it 30 s later at most
start=$(date +%s)
end=$((start + BUDGET_S))
log="$OUT/gpu_suite.log"

{
  echo "gpu_suite.sh: $(date -u +%FT%TZ), commit ${GPU_SUITE_COMMIT:-unknown}, python $PY, data $SSL_BENCH_DATA"
  echo "PYTHONPATH=$PYTHONPATH"
  ls -l "$SSL_BENCH_DATA" 2>&1 || echo "gpu_suite.sh: no $SSL_BENCH_DATA: CIFAR-10 parts will fail (see the comment at the top)"
} | tee "$log"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv >"$OUT/nvidia-smi.txt" 2>&1
  nvidia-smi >>"$OUT/nvidia-smi.txt" 2>&1
fi
"$PY" - <<'PY' 2>&1 | tee -a "$log"
import importlib
for name in ("torch", "torchvision", "pytorch_lightning", "timm", "torchmetrics", "PIL", "numpy", "yaml",
             "kornia", "kornia_rs", "wandb", "submitit"):
    try:
        mod = importlib.import_module(name)
        print(f"  {name} {getattr(mod, '__version__', '')}")
    except Exception as err:
        print(f"  {name}: not importable ({type(err).__name__}){'  (optional: not used)' if name in ('wandb', 'submitit') else ''}")
import torch
print(f"  cuda available: {torch.cuda.is_available()}" + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
PY

rc=1
for attempt in 1 2 3; do
  resume=()
  [[ $attempt -gt 1 ]] && resume=(--resume)
  left=$((end - $(date +%s)))
  if [[ $attempt -gt 1 && $left -lt 45 ]]; then
    echo "gpu_suite.sh: ${left} s left, not resuming" | tee -a "$log"
    break
  fi
  # the outer timeout is a last resort behind the suite's own deadline and watchdog
  timeout --signal=KILL $((end - $(date +%s) + 60)) \
    "$PY" benchmarks/gpu_suite.py --out "$OUT" --deadline-at "$end" "${resume[@]}" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  echo "gpu_suite.sh: attempt $attempt exited with $rc after $(( $(date +%s) - start )) s" | tee -a "$log"
  # 0: finished (the JSON says what passed); 2: no GPU; 4: cannot import; 124: deadline;
  # else (a crash, a kill, exit 3 after a CUDA error): resume in a fresh process
  [[ $rc -eq 0 || $rc -eq 2 || $rc -eq 4 || $rc -eq 124 ]] && break
  [[ -f "$OUT/gpu_suite.json" ]] || break
done
[[ -f "$OUT/gpu_suite.md" ]] && cat "$OUT/gpu_suite.md"
exit "$rc"
