#!/usr/bin/env bash
# Run a benchmark suite: benchmarks/<suite>.yaml through `ssl-bench sweep`, then print its table.
#   benchmarks/run_suite.sh cpu-tiny [sweep options: --methods a,b --seeds 0,1 --set key=value --dir D --dry-run]
# Re-running continues: finished cells are skipped, interrupted ones resume.
set -euo pipefail
suite="${1:?usage: benchmarks/run_suite.sh SUITE [ssl-bench sweep options]; suites: cpu-tiny, cifar10, imagenet100}"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
spec="$here/$suite.yaml"
[[ -f "$spec" ]] || { echo "run_suite.sh: no suite '$suite' ($spec)" >&2; exit 2; }
if [[ "$suite" == cpu-* ]]; then export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"; fi
cd "$here/.."
echo "$ ssl-bench sweep $spec $*  (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ))"
status=0
ssl-bench sweep "$spec" "$@" || status=$?
dir="$(python - "$spec" "$@" <<'PY'
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
args = sys.argv[2:]
print(args[args.index("--dir") + 1] if "--dir" in args else spec.get("dir", "runs/sweeps/" + spec["name"]))
PY
)"
[[ -f "$dir/results.md" ]] && cat "$dir/results.md"
exit $status
