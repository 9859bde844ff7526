"""Optional extras in tests: the onnx and images extras are in the test extra, so under CI a
missing one fails the test; elsewhere (a bare install) it skips."""

import importlib
import os

import pytest


def require(module, extra):
    try:
        return importlib.import_module(module)
    except ImportError:
        why = f"{module} is not installed (pip install -e '.[{extra}]', or '.[test]')"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(why)
        pytest.skip(why, allow_module_level=True)
