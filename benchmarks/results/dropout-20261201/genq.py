import contextlib, io, json, sys, statistics
import numpy as np
from fastbp.backend import NumpyBackend
from fastbp import cli
splitmix = NumpyBackend.uniform
pcg = {}
def pcg64(self, key, start, out):
    g = pcg.setdefault(key, np.random.default_rng(key))
    g.random(out=out, dtype=out.dtype)
    return out
res = {"splitmix64": [], "pcg64": []}
for seed in range(int(sys.argv[1]), int(sys.argv[2])):
    for name, fill in (("splitmix64", splitmix), ("pcg64", pcg64)):
        NumpyBackend.uniform = fill
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            cli.main(["train", "configs/mnist.toml", "--quiet", "--json", "--out", "/tmp/genq",
                      "--set", "model.sizes=[784,256,256,10]", "--set", "model.dropout=0.5", "--set", "train.epochs=4",
                      "--set", f"train.seed={seed}"])
        acc = json.loads(buf.getvalue().strip().splitlines()[-1])["test_accuracy"]
        res[name].append(acc)
        print(seed, name, acc, flush=True, file=sys.stderr)
for k, v in res.items():
    print(k, "mean %.4f sd %.4f" % (statistics.mean(v), statistics.stdev(v)), v)
