#!/usr/bin/env bash
# A B A B: the benchmark suite from the commit before the refactor (A) and after it (B),
# each case in turn, one BLAS thread (the machine is shared with other jobs).
. /work/venv/bin/activate
export FASTBP_DATA=/work/shared/data OPENBLAS_NUM_THREADS=1
for round in 1 2; do
  for case in small medium large; do
    for side in before main; do
      dir=$BEFORE_TREE; [ $side = main ] && dir=$AFTER_TREE
      (cd $dir && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks $case --contenders fastbp-numpy,sklearn --reps 3 --out /work/ab/$side-$round) > /work/ab/$side-$round-$case.log 2>&1
      echo "$(date +%T) $side round $round $case done"
    done
  done
done
