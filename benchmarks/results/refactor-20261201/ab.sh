#!/usr/bin/env bash
# A B A B: the suite in the tree before this session's work (98ddea0, BEFORE_TREE) and after it
# (AFTER_TREE), case by case, numpy's own 2 BLAS threads, 3 repetitions each.
export FASTBP_DATA=/work/shared/data
for round in 1 2; do
  for case in small medium large; do
    for side in before main; do
      dir=$BEFORE_TREE; [ $side = main ] && dir=$AFTER_TREE
      (cd $dir && PYTHONPATH=$dir env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks $case \
         --contenders fastbp-numpy,sklearn --reps 3 --out /work/ab/ab16/$side-$round)
    done
  done
done
