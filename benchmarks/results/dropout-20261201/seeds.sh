#!/usr/bin/env bash
# mnist-best.toml with seeds 2-5, numpy PCG64's dropout draws (the tree before SplitMix64, c29b408, checked out
# at $OLD: git worktree add $OLD c29b408) and SplitMix64's (this tree) taking turns, one run at a time;
# each run's summary, with its tree and seed, appended to seeds.jsonl. About 6 minutes a run on a 2-core AMD EPYC.
#   OLD=/tmp/old FASTBP_DATA=... bash benchmarks/results/dropout-20261201/seeds.sh
set -euo pipefail
NEW="$(cd "$(dirname "$0")/../../.." && pwd)"
OUT="$(cd "$(dirname "$0")" && pwd)/seeds.jsonl"
PY="${PYTHON:-python}"
cd "$(mktemp -d)"
for s in 2 3 4 5; do
  for tree in old new; do
    root=$([ $tree = old ] && echo "$OLD" || echo "$NEW")
    summary=$(PYTHONPATH=$root "$PY" -c 'import sys; from fastbp.cli import main; sys.exit(main(sys.argv[1:]))' \
              train "$root/configs/mnist-best.toml" --set train.seed=$s --set output.plots=false --json --quiet --out runs | tail -1)
    "$PY" -c 'import json, sys; s = json.loads(sys.argv[3]); print(json.dumps({"tree": sys.argv[1], "seed": int(sys.argv[2]),
      **{k: s[k] for k in ("test_accuracy", "val_accuracy", "best_epoch", "train_seconds")}}))' $tree $s "$summary" >> "$OUT"
  done
done
