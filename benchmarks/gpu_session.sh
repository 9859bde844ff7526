#!/usr/bin/env bash
# One call on a lent GPU machine: the GPU parity tests, then the GPU-vs-CPU cases, results
# under $OUT in at most 8 files (the device tool's limit: the PNGs travel as one tar).
#
# Before the call, here:   mkdir -p data && cp -r ../shared/data/mnist data/ && echo /data/ >> .git/info/exclude
# The call (device tool):   run(command="bash benchmarks/gpu_session.sh", carry=["data"], timeout_s=540)
# QUICK=1 runs the tiny subsets (--quick) to check the script itself on any machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/fastbp-gpu}"
mkdir -p "$OUT/work"
export FASTBP_DATA="${FASTBP_DATA:-$PWD/data}" PYTHONPATH="$PWD" MPLBACKEND=Agg
quick=(); [ "${QUICK:-0}" = 1 ] && quick=(--quick --reps 2)

{ nvidia-smi || true; python3 -m fastbp.cli info; } > "$OUT/machine.txt" 2>&1
# Every GPU test skips where cupy cannot run: say so instead of a green "exit 0".
if python3 -c "import sys; from fastbp.backend import cupy_status; ok, why = cupy_status(); print(why); sys.exit(0 if ok else 1)" >> "$OUT/machine.txt" 2>&1; then
    python3 -m pytest -q -m gpu tests/ > "$OUT/gpu-tests.txt" 2>&1
    echo "gpu tests: exit $?" >> "$OUT/gpu-tests.txt"
else
    echo "gpu tests: NOT RUN, cupy is not usable here (see machine.txt)" > "$OUT/gpu-tests.txt"
fi
tail -3 "$OUT/gpu-tests.txt"

# medium and large: fastbp-cupy against torch-cuda and cuBLAS alone (gemm-cupy), with the
# CPU rows of this host beside them; the sweeps give the GPU-vs-CPU crossover curves.
python3 -m benchmarks medium large time-to-98 sweep-batch sweep-width "${quick[@]}" \
    --contenders fastbp-numpy,fastbp-cupy,torch-cpu,torch-cuda --out "$OUT/work" > "$OUT/bench-log.txt" 2>&1
echo "benchmarks: exit $?" >> "$OUT/bench-log.txt"
tail -12 "$OUT/bench-log.txt"

cp "$OUT"/work/bench-*.json "$OUT"/work/bench-*.md "$OUT/" 2>/dev/null
(cd "$OUT/work" && tar cf "$OUT/plots.tar" ./*.png 2>/dev/null)
rm -rf "$OUT/work"
ls -l "$OUT"
