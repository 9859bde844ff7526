#!/usr/bin/env bash
# Round 3 on a quiet machine, numpy's default BLAS threads (2), as the committed results.
. /work/venv/bin/activate
export FASTBP_DATA=/work/shared/data
for case in small medium large; do
  for side in before main; do
    dir=$BEFORE_TREE; [ $side = main ] && dir=$AFTER_TREE
    (cd $dir && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks $case --contenders fastbp-numpy,sklearn --reps 5 --out /work/ab/$side-3) > /work/ab/$side-3-$case.log 2>&1
    echo "$(date +%T) $side round 3 $case done"
  done
done
