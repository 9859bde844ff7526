"""The optional extras (pyproject's [project.optional-dependencies]): importing a module
of one, and the line a user reads when it cannot be imported.

Missing and broken are told apart: an install that is there but does not import (a
library built for another Python, a dependency of its own missing) gets the import's
own error, not advice to install what is already installed.
"""

from __future__ import annotations

import importlib

from .errors import UsageError

# top-level module -> (what users call it, its extra)
EXTRAS = {
    "distributed": ("Dask", "dask"),
    "mpi4py": ("mpi4py", "mpi"),
    "onnx": ("the onnx package", "onnx"),
    "PIL": ("Pillow", "images"),
    "tensorboardX": ("tensorboardX", "tensorboard"),
}


def not_installed(exc, module):
    """Did importing `module` fail because its package is not installed (rather than
    failing inside an installed one, a missing dependency of its own included)?"""
    top = module.partition(".")[0]
    return isinstance(exc, ModuleNotFoundError) and (exc.name or "").partition(".")[0] == top


def problem(module, purpose, exc):
    """The line for `purpose` (what needs it) when importing `module` raised `exc`."""
    name, extra = EXTRAS[module.partition(".")[0]]
    if not_installed(exc, module):
        return f"{purpose} needs {name}: pip install 'fastbp[{extra}]'"
    first = (str(exc).strip().splitlines() or [""])[0]
    return (f"{purpose} needs {name}, which is installed but does not import ({type(exc).__name__}: {first}); "
            f"install it again in a fresh venv: pip install 'fastbp[{extra}]'")


def require(module, purpose, error=UsageError):
    """import `module`, or raise `error` with problem()'s line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise error(problem(module, purpose, exc)) from None
