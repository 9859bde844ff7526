"""Run `fastbp train` (cli.main) in a process that mpiexec started, for
tests/test_dist_mpi.py:

    mpiexec -n 2 python tests/mpi_helper.py [--params OUT.npy] [--fail-after K] -- train ARGS... [++ train ARGS...]

Several commands separated by ++ run one after the other in the same processes
(one mpiexec start for several runs).
--params: rank 0 writes each trained network's flat parameters (float64) there,
with {i} replaced by the command's index.
--fail-after K: this rank raises in its K-th backward pass (a bug on one rank).
--signal-after K: this rank sends itself SIGINT after its K-th backward pass (Ctrl-C).
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from fastbp import cli  # noqa: E402
from fastbp.nn.network import Network  # noqa: E402
from fastbp.train import trainer  # noqa: E402


def main(argv):
    split = argv.index("--")
    opts, args = argv[:split], argv[split + 1:]
    params = fail_after = signal_after = None
    for flag, value in zip(opts[::2], opts[1::2]):
        if flag == "--params":
            params = value
        elif flag == "--fail-after":
            fail_after = int(value)
        elif flag == "--signal-after":
            signal_after = int(value)
    if fail_after is not None or signal_after is not None:
        os.environ["FASTBP_JIT"] = "0"  # the injection is in Network.backward, which the compiled step does not call
    calls = [0]
    backward = Network.backward

    def counting_backward(self, *a, **k):
        calls[0] += 1
        if fail_after is not None and calls[0] == fail_after:
            raise RuntimeError(f"injected failure in backward pass {calls[0]}")
        if signal_after is not None and calls[0] == signal_after:
            os.kill(os.getpid(), signal.SIGINT)
        return backward(self, *a, **k)

    Network.backward = counting_backward
    run = trainer.Trainer.run

    out = {"path": None}

    def keep(self):
        summary = run(self)
        if out["path"] and self.setup.reduce.rank == 0:
            np.save(out["path"], self.setup.net.get_params().astype(np.float64))
        return summary

    trainer.Trainer.run = keep
    commands, code = [[]], 0
    for a in args:
        commands.append([]) if a == "++" else commands[-1].append(a)
    for i, command in enumerate(commands):
        out["path"] = params.replace("{i}", str(i)) if params else None
        code = cli.main(command)
        if code:
            break
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
