#!/bin/bash
R=$1; shift
for i in $(seq $R); do
 for t in /work/ab/cpuperf-base /work/wt/cpuperf; do
  (cd $t && PYTHONPATH=$t FASTBP_DATA=/work/shared/data env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/venv/bin/python /tmp/cpuperf/phases.py "$@" | sed "s|^|$(basename $t) |")
 done
done
