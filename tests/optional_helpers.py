"""Optional extras in tests: the test extra installs them all, so under CI one that does not
import fails the test, with the import's own error; elsewhere (a bare install) it skips."""

import importlib
import os

import pytest


def require(module, extra):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f"{module} does not import ({type(exc).__name__}: {exc}; pip install -e '.[{extra}]', or '.[test]')"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(why)
        pytest.skip(why, allow_module_level=True)
