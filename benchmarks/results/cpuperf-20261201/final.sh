#!/bin/bash
# final.sh CASE ROUNDS: python -m benchmarks CASE --contenders fastbp-numpy --reps 5, base and new alternating
for i in $(seq $2); do
 for t in /work/ab/cpuperf-base /work/wt/cpuperf; do
  out=/tmp/cpuperf/final/$(basename $t)-$1-$i; mkdir -p $out
  (cd $t && PYTHONPATH=$t FASTBP_DATA=/work/shared/data env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/venv/bin/python -m benchmarks $1 --contenders fastbp-numpy --reps 5 --out $out > $out/log 2>&1)
  echo "$(basename $t) $1 round $i load $(cut -d' ' -f1 /proc/loadavg): $(grep -E '^\| (fastbp-numpy|gemm-numpy)' $out/*.md | awk -F'|' '{printf "%s %s s/epoch %s%% ; ", $2, $3, $7}')"
 done
done
