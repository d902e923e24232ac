#!/usr/bin/env bash
# Paper-scale timings on one GPU (H100/H200), one prepared run of at most ~8 minutes.
#
#   bash benchmarks/gpu_paper_scale.sh [OUT_DIR]     # default OUT_DIR: results/gpu_bench
#
# Writes one JSON file per entry into OUT_DIR and a summary gpu_paper_scale.json:
#   kuramoto_dopri5  paper-size Kuramoto NODE iterations (80x80 lattice, 11x11 kernel, 84x84
#                    detector, batch 20 x 30, float64) with dopri5 at the paper's rtol 1e-7 /
#                    atol 1e-9: s/iteration, peak GPU memory (reference code: 1.30-1.45 s/it.;
#                    goal <= 0.25 s)
#   kuramoto_rk4     the same with the fixed-cost RK4 stand-in (comparable with the CPU number)
#   forward          the forward-model benchmark (FFT lattice vs dense sum, point scatterers)
#   disk_count       ResNet-50 training images/s at 257x257 (paper 002 scale)
#   shear            Monte Carlo configurations/s at the paper's estimator
#   swarm            one swarm graph-NODE iteration at paper size (500 particles, 64x64
#                    detector, 4 x 20 frames, dopri5 rtol 1e-5, clustered states at t = 5)
#   scan             scan-case NODE iterations at paper size (512x512 patterns, batches 5 x 35,
#                    float64 object sampling by grid_sample): s/iteration, peak GPU memory
# Each entry has its own time limit so one slow entry cannot eat the budget; a failed entry
# is recorded with its exit code and the run goes on. Needs the project venv (make setup).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/gpu_bench}
mkdir -p "$OUT"
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_paper_scale: no CUDA device visible to $PY" >&2
    exit 2
fi
"$PY" -c "import torch, json; p = torch.cuda.get_device_properties(0); print(json.dumps({'gpu': p.name, 'memory_gib': round(p.total_memory / 2**30, 1), 'torch': torch.__version__}))" > "$OUT/device.json"

run() {  # run NAME LIMIT_S COMMAND...
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
    local rc=$?
    echo "{\"entry\": \"$name\", \"rc\": $rc, \"wall_s\": $((SECONDS - start))}" >> "$OUT/status.jsonl"
}

: > "$OUT/status.jsonl"
run kuramoto_dopri5 180 "$PY" benchmarks/bench_dynamics.py --solver dopri5 --device cuda --repeats 3 --no-dopri5-probe
run kuramoto_rk4    90  "$PY" benchmarks/bench_dynamics.py --solver rk4 --device cuda --repeats 3 --no-dopri5-probe
run forward         60  "$PY" benchmarks/bench_forward.py --device cuda
run disk_count      90  "$PY" benchmarks/bench_disk_count.py --archs resnet50 --inputs 257 --sizes 257 --batch 40 --steps 8
run shear           60  "$PY" benchmarks/bench_shear.py --device cuda
run swarm           120 "$PY" benchmarks/bench_swarm.py --device cuda --truth simulate --repeats 2
run scan            60  "$PY" benchmarks/bench_scan.py --device cuda --detector 512 --radius 320 --iterations 5

"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
summary = {"device": json.loads((out / "device.json").read_text()), "entries": {}}
for line in (out / "status.jsonl").read_text().splitlines():
    status = json.loads(line)
    text = (out / f"{status['entry']}.json").read_text().strip().splitlines()
    result = next((json.loads(l) for l in reversed(text) if l.startswith("{")), None)
    summary["entries"][status["entry"]] = {**status, "result": result}
(out / "gpu_paper_scale.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary))
PY
