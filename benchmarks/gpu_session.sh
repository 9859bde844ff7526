#!/usr/bin/env bash
# ONE call on a lent GPU machine (15 device-minutes hold one call, not two: a start costs
# 1-2 min). It stops itself inside BUDGET seconds and always leaves what it has under $OUT,
# at most 8 files (the device tool's limit):
#   machine.txt     nvidia-smi, fastbp info, whether cupy, torch and jax can use the GPU (with
#                   the import error's message when not), pytest-timeout there or not
#   gpu-tests.txt   pytest -m gpu, -v, streamed as it runs; the first failure's traceback is
#                   printed the moment it happens (benchmarks/first_failure.py)
#   breakdown.txt   where a cupy step's time goes: fused kernels on/off, CUDA graph replay
#                   (epoch_graph, graph), TF32 rows (benchmarks.gpu_breakdown --tf32)
#   summary.md      each benchmark case's table, appended as soon as the case is done
#   log.txt         the benchmark and training runs' full output
#   results.tar     every JSON, Markdown and PNG written, appended part by part
#   timing.txt      each part's exit code and seconds
#   cupy-cache.tgz  cupy's compiled kernels (carry it into a later session's call: below)
#
# The call (device tool), after the data is in place:
#   run(command="BUDGET=500 bash benchmarks/gpu_session.sh", carry=["data"], timeout_s=540)
# then give_back. Before it, here: mkdir -p data && cp -r ../shared/data/mnist data/ &&
#   echo /data/ >> .git/info/exclude   (MNIST travels as an ignored, carried folder)
# A later session reusing compiled kernels: mkdir -p .gpu && cp <files_at>/cupy-cache.tgz .gpu/ &&
#   echo /.gpu/ >> .git/info/exclude; then carry=["data", ".gpu"].
#
# Parts, in this order, with what each costs on an H200 (estimates, none measured yet;
# the limit is the most a part may take; a part the budget cannot hold is skipped):
#   machine    ~10 s  (limit 60)   facts. Without a usable cupy the script STOPS here (exit 0,
#                                  the reason in machine.txt, timing.txt and the output tail)
#   tests      ~60-120 s (150)     tests/ -m gpu: -v -rfE --tb=short, 60 s per test (pytest-timeout,
#                                  when importable)
#   breakdown  ~40 s  (80)         medium and large: fused on/off, graphs, TF32 on (--steps 200)
#   core       ~170 s (3 x 80)     medium, large, time-to-98: fastbp-cupy, torch-cuda, jax-gpu,
#                                  cuBLAS alone (gemm-cupy), fastbp-numpy on the host's cores
#                                  (the large 50x target) with gemm-numpy; 5 interleaved reps
#   variants   ~30 s  (45)         time-to-98 of fastbp-cupy with the fused kernels off (FASTBP_FUSED=0)
#   tf32       ~70 s  (2 x 50)     configs/mnist.toml on cupy (10 of its 30 epochs), TF32 off then on:
#                                  test accuracy and training seconds
#   sweeps     what is left        sweep-batch then sweep-width, GPU against CPU (each needs 90 s)
# Sum of estimates ~400 s of BUDGET 500; timeout_s 540 leaves 40 s for the tars and exit.
#
# Here, with no GPU: QUICK=1 OUT=/tmp/gpu-dry bash benchmarks/gpu_session.sh stops after the
# machine facts and says why cupy is not usable. FORCE_CPU_DRY=1 goes on anyway: the GPU rows
# are skipped by the suite (each says why) and the numpy ones run, so every part's plumbing
# runs. PARTS picks parts, in order (default: all).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/fastbp-gpu}"
BUDGET="${BUDGET:-500}"    # seconds for the whole script; give the call BUDGET + 40
PARTS="${PARTS:-machine tests breakdown core variants tf32 sweeps}"
QUICK="${QUICK:-0}"
FORCE_CPU_DRY="${FORCE_CPU_DRY:-0}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/fastbp-gpu-work.XXXXXX)"  # outside $OUT: only 8 files come back
export PYTHONUNBUFFERED=1 FASTBP_DATA="${FASTBP_DATA:-$PWD/data}" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
export CUPY_CACHE_DIR="$WORK/cupy-cache" FASTBP_BENCH_SETTLE="${FASTBP_BENCH_SETTLE:-0.05}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # jax takes what it uses, not 75% of the card
[ -f .gpu/cupy-cache.tgz ] && tar xzf .gpu/cupy-cache.tgz -C "$WORK"
mkdir -p "$CUPY_CACHE_DIR" "$WORK/bench" "$WORK/runs"
PY="${PYTHON:-python3}"  # the device image's python3 holds cupy, torch and jax
GPU_ROWS="${GPU_ROWS:-fastbp-cupy,torch-cuda,jax-gpu}"
CPU_ROWS="${CPU_ROWS:-fastbp-numpy}"
BACKEND=cupy; [ "$FORCE_CPU_DRY" = 1 ] && BACKEND=numpy

if [ "$QUICK" = 1 ]; then
    quick=(--quick --reps 2); steps=(--quick --steps 5 --tf32); mnist=(--set train.epochs=1 --set data.train_limit=2000)
else
    quick=(--reps 5); steps=(--steps 200 --tf32); mnist=(--set train.epochs=10)  # 10 of its 30 epochs: the budget
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
# left (less a margin for the tars at the end); skipped when less than NEED (default 10) is left.
part() {
    local name=$1 limit=$2 log=$3 start=$SECONDS rc need=${NEED:-10}
    shift 3
    local left=$((BUDGET - SECONDS - 15))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt "$need" ]; then
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

# Files written under $WORK/bench go into results.tar, Markdown into summary.md, at once.
collect() { (cd "$WORK/bench" && ls ./* >/dev/null 2>&1 && tar rf "$OUT/results.tar" ./* && { cat ./*.md >> "$OUT/summary.md" 2>/dev/null; rm -f ./*; }); }

# bench NAME LIMIT CASE... [--options]: one benchmark run; a later timeout loses only the run in flight.
bench() {
    local name=$1 limit=$2
    shift 2
    part "$name" "$limit" "$OUT/log.txt" $PY -m benchmarks "$@" "${quick[@]}" --out "$WORK/bench"
    collect
}

# mnist_run NAME TF32: configs/mnist.toml trained on the GPU; its JSON summary into summary.md.
mnist_run() {
    local name=$1 tf32=$2 log="$WORK/runs/$1.txt"
    part "$name" 50 "$log" $PY -m fastbp.cli train mnist --backend "$BACKEND" --quiet --json \
        --set train.tf32="$tf32" --set output.plots=false --set output.grad_norms=false "${mnist[@]}" --out "$WORK/runs"
    cat "$log" >> "$OUT/log.txt"
    grep '^{' "$log" | tail -1 | $PY "$WORK/summary_line.py" "$name" >> "$OUT/summary.md"
}

cat > "$WORK/summary_line.py" <<'PY'
import json, sys
try:
    r = json.loads(sys.stdin.read())
except ValueError:
    sys.exit(print(f"- {sys.argv[1]}: no run summary (see log.txt)"))
t = r["config"]["train"]
print(f"- {sys.argv[1]}: configs/mnist.toml, {r['epochs_run']} epochs on {r['backend']['device']}, tf32={t['tf32']}: "
      f"test accuracy {r['test_accuracy']:.4f}, {r['train_seconds']:.1f} s of training")
PY
cat > "$WORK/probes.py" <<'PY'
import importlib.util, sys
print("python", sys.version.split()[0])
print("pytest-timeout:", "yes" if importlib.util.find_spec("pytest_timeout") else "no")
from benchmarks import contenders as C
for name in C.GPU:
    print(f"{name}:", C.unavailable(name) or "usable")
PY

for p in $PARTS; do
    case $p in
    machine)
        part machine 60 "$OUT/machine.txt" bash -c "nvidia-smi; $PY -m fastbp.cli info; $PY $WORK/probes.py"
        why="$(cupy_ok 2>&1)"
        ok=$?
        echo "cupy: $why" >> "$OUT/machine.txt"
        if [ $ok -eq 0 ]; then
            :
        elif [ "$FORCE_CPU_DRY" = 1 ]; then
            echo "cupy is not usable ($(echo "$why" | tail -1)); FORCE_CPU_DRY=1: going on with the rows that can run" \
                | tee -a "$OUT/timing.txt"
        else
            echo "STOP: cupy is not usable here, so no GPU row can run: $(echo "$why" | tail -1)" | tee -a "$OUT/timing.txt"
            exit 0
        fi
        ;;
    tests)
        tlimit=()
        $PY -c "import pytest_timeout" 2>/dev/null && tlimit=(-p timeout --timeout=60)
        # A module that fails to import must not cost the others their run.
        part gpu-tests 150 "$OUT/gpu-tests.txt" $PY -m pytest -v -rfE --tb=short -m gpu tests/ -p no:cacheprovider \
            -p benchmarks.first_failure ${tlimit[@]+"${tlimit[@]}"} --durations=10 --continue-on-collection-errors
        save_cache  # the tests compiled most kernels: keep them even if a later part is cut off
        tail -3 "$OUT/gpu-tests.txt"
        ;;
    breakdown)
        part gpu-breakdown 80 "$OUT/breakdown.txt" $PY -m benchmarks.gpu_breakdown medium large "${steps[@]}" --out "$WORK/bench"
        (cd "$WORK/bench" && ls ./* >/dev/null 2>&1 && tar rf "$OUT/results.tar" ./* && rm -f ./*)
        tail -12 "$OUT/breakdown.txt"
        ;;
    core)
        for c in medium large time-to-98; do
            bench "$c" 80 "$c" --contenders "$GPU_ROWS,$CPU_ROWS"
        done
        ;;
    variants)
        FASTBP_FUSED=0 bench "time-to-98-unfused" 45 time-to-98 --contenders "fastbp-$BACKEND"
        ;;
    tf32)
        mnist_run mnist-tf32-off false
        mnist_run mnist-tf32-on true
        ;;
    sweeps)
        for c in sweep-batch sweep-width; do
            NEED=90 bench "$c" 150 "$c" --contenders "${SWEEP_ROWS:-$GPU_ROWS,$CPU_ROWS}"
        done
        ;;
    *) echo "unknown part $p (choose from: machine tests breakdown core variants tf32 sweeps)" | tee -a "$OUT/timing.txt" ;;
    esac
done
tail -40 "$OUT/summary.md" 2>/dev/null
exit 0
