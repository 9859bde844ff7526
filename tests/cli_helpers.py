"""Shared by the tests of the command line: run the CLI (in a subprocess or in this
process) and check that a failure is one line on stderr with the right exit code."""

import subprocess
import sys
import warnings

import pytest

from fastbp import cli as fastbp_cli

# Overrides for a run that takes well under a second once the data are loaded. One BLAS
# thread: on a busy machine OpenBLAS's default threads make these tiny runs ~50x slower.
FAST = ("output.plots=false", "output.grad_norms=false", "train.threads=1", 'train.backend="numpy"')


def sets(*overrides):
    """("--set", o1, "--set", o2, ...)"""
    return tuple(arg for o in overrides for arg in ("--set", o))


TINY = ("--quiet", *sets("train.epochs=1", *FAST))


def fastbp(*args, before=None, timeout=120):
    """`fastbp ARGS` in a fresh interpreter, after the Python code `before` if given
    (a patch): (returncode, stdout, stderr)."""
    run = ["-m", "fastbp.cli"] if before is None else ["-c", f"import sys, fastbp.cli; {before}; sys.exit(fastbp.cli.main())"]
    out = subprocess.run([sys.executable, *run, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def one_line(stderr, *needles):
    """The single line of `stderr`, which contains every needle and no traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def expect_error(result, code, *needles):
    """`result` (returncode, stdout, stderr) failed with `code` and one line holding the needles."""
    rc, _, err = result
    assert rc == code, (rc, err)
    return one_line(err, *needles)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Call fastbp's main() here (fast: no interpreter start): cli(*args) -> (rc, stdout, stderr)."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it; undo after

    def run(*args):
        capsys.readouterr()
        try:
            rc = fastbp_cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            rc = exc.code
        out, err = capsys.readouterr()
        return rc, out, err

    return run
