#!/usr/bin/env bash
# One call on a lent GPU machine. It stops itself inside BUDGET seconds and always leaves what
# it has under $OUT, at most 8 files (the device tool's limit):
#   machine.txt       nvidia-smi, fastbp info, whether cupy can run
#   gpu-tests.txt     the GPU parity tests (pytest -m gpu), with the slowest tests
#   breakdown.txt     where a cupy training step's time goes (benchmarks.gpu_breakdown)
#   summary.md        each benchmark case's table, appended as soon as the case is done
#   bench-log.txt     the benchmark runs' full output
#   results.tar       every JSON, Markdown and PNG written, appended case by case
#   cupy-cache.tgz    cupy's compiled kernels: carry it into the next call (below)
#   timing.txt        each part's exit code and seconds
#
# Before the first call, here:
#   mkdir -p data && cp -r ../shared/data/mnist data/ && echo /data/ >> .git/info/exclude
#   QUICK=1 OUT=/tmp/gpu-dry bash benchmarks/gpu_session.sh     # the script itself, on any machine
# The call (device tool):
#   run(command="BUDGET=400 bash benchmarks/gpu_session.sh", carry=["data"], timeout_s=420)
# Before a second call, here: mkdir -p .gpu && cp <files_at>/cupy-cache.tgz .gpu/ &&
#   echo /.gpu/ >> .git/info/exclude; then carry=["data", ".gpu"]: compiled kernels are reused.
#   PARTS picks what runs, in order (default: all): e.g. PARTS="tests sweeps" BUDGET=280.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/fastbp-gpu}"
BUDGET="${BUDGET:-400}"    # seconds for the whole script; give the call at least BUDGET + 20
PARTS="${PARTS:-machine tests breakdown core sweeps}"
QUICK="${QUICK:-0}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/fastbp-gpu-work.XXXXXX)"  # outside $OUT: only 8 files come back
export PYTHONUNBUFFERED=1 FASTBP_DATA="${FASTBP_DATA:-$PWD/data}" PYTHONPATH="$PWD" MPLBACKEND=Agg
export CUPY_CACHE_DIR="$WORK/cupy-cache" FASTBP_BENCH_SETTLE="${FASTBP_BENCH_SETTLE:-0.05}"
[ -f .gpu/cupy-cache.tgz ] && tar xzf .gpu/cupy-cache.tgz -C "$WORK"
mkdir -p "$CUPY_CACHE_DIR" "$WORK/bench"
PY="${PYTHON:-python3}"  # the device image's python3 holds cupy and torch

if [ "$QUICK" = 1 ]; then
    quick=(--quick --reps 2); steps=(--quick --steps 5)
else
    quick=(--reps 5); steps=(--steps 200 --tf32)
fi

# Compressed: a file over 16 MiB would not come back.
save_cache() { tar czf "$OUT/cupy-cache.tgz" -C "$WORK" cupy-cache 2>/dev/null; }
finish() {
    save_cache
    rm -rf "$WORK"
    echo "total: ${SECONDS}s of ${BUDGET}s; cupy-cache.tgz $(du -k "$OUT/cupy-cache.tgz" | cut -f1) KiB" >> "$OUT/timing.txt"
    ls -l "$OUT"
}
trap finish EXIT

# part NAME LIMIT LOG CMD...: CMD under a timeout of LIMIT seconds, cut to what the budget has
# left (less a margin for the tars at the end); skipped when too little is left.
part() {
    local name=$1 limit=$2 log=$3 start=$SECONDS rc
    shift 3
    local left=$((BUDGET - SECONDS - 15))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 10 ]; then
        echo "$name: SKIPPED, ${left}s left" | tee -a "$log" "$OUT/timing.txt"
        return 0
    fi
    echo "== $name (limit ${limit}s)" >> "$log"
    timeout -k 5 "$limit" "$@" >> "$log" 2>&1
    rc=$?
    local said="$name: exit $rc after $((SECONDS - start))s"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && said="$said (TIMED OUT at ${limit}s)"
    echo "$said" | tee -a "$log" "$OUT/timing.txt"
}

cupy_ok() { $PY -c "import sys; from fastbp.backend import cupy_status; ok, why = cupy_status(); print(why); sys.exit(0 if ok else 1)"; }

# bench NAME LIMIT CASE... [--options]: one benchmark run; its files go into results.tar and its
# tables into summary.md at once, so a later timeout loses only the run in flight.
bench() {
    local name=$1 limit=$2
    shift 2
    part "$name" "$limit" "$OUT/bench-log.txt" $PY -m benchmarks "$@" "${quick[@]}" --out "$WORK/bench"
    (cd "$WORK/bench" && ls ./* >/dev/null 2>&1 && tar rf "$OUT/results.tar" ./* && cat ./*.md >> "$OUT/summary.md" && rm -f ./*)
}

for p in $PARTS; do
    case $p in
    machine)
        part machine 60 "$OUT/machine.txt" bash -c "nvidia-smi; $PY -m fastbp.cli info"
        cupy_ok >> "$OUT/machine.txt" 2>&1
        ;;
    tests)
        # Every GPU test skips where cupy cannot run: say so instead of a green exit 0.
        if cupy_ok > /dev/null 2>&1; then
            # A module that fails to import must not cost the others their run.
            part gpu-tests 170 "$OUT/gpu-tests.txt" $PY -m pytest -q -m gpu tests/ -p no:cacheprovider --durations=10 \
                --continue-on-collection-errors
            save_cache  # the tests compiled most kernels: keep them even if a later part is cut off
        else
            echo "gpu tests: NOT RUN, cupy is not usable here ($(cupy_ok 2>&1 | tail -1))" | tee -a "$OUT/gpu-tests.txt" "$OUT/timing.txt"
        fi
        tail -3 "$OUT/gpu-tests.txt"
        ;;
    breakdown)
        part gpu-breakdown 70 "$OUT/breakdown.txt" $PY -m benchmarks.gpu_breakdown medium large "${steps[@]}" --out "$WORK/bench"
        (cd "$WORK/bench" && ls ./* >/dev/null 2>&1 && tar rf "$OUT/results.tar" ./* && rm -f ./*)
        tail -12 "$OUT/breakdown.txt"
        ;;
    core)
        # fastbp-cupy against torch-cuda and cuBLAS alone (gemm-cupy, added by the harness), with
        # fastbp-numpy on this host's cores beside them (the large target's 50x).
        for c in medium large time-to-98; do
            bench "$c" 100 "$c" --contenders fastbp-cupy,torch-cuda,fastbp-numpy
        done
        ;;
    sweeps)
        # The GPU-vs-CPU crossover curves: the GPU contenders and fastbp-numpy only
        # (SWEEP_CONTENDERS=fastbp-cupy,torch-cuda leaves the CPU out, for time).
        for c in sweep-batch sweep-width; do
            bench "$c" 150 "$c" --contenders "${SWEEP_CONTENDERS:-fastbp-cupy,torch-cuda,fastbp-numpy}"
        done
        ;;
    *) echo "unknown part $p (choose from: machine tests breakdown core sweeps)" | tee -a "$OUT/timing.txt" ;;
    esac
done
tail -40 "$OUT/summary.md" 2>/dev/null
exit 0
