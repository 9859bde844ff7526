"""pytest plugin for a lent GPU's test run (`-p benchmarks.first_failure`): the first
failure's traceback is printed the moment it happens, not in the summary at the end, so
that a run killed by its time limit still leaves it in the streamed log."""

from __future__ import annotations

import pytest

_state = {"config": None, "shown": False}


def pytest_configure(config):
    _state["config"] = config


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    if not report.failed or _state["shown"]:
        return
    _state["shown"] = True
    tr = _state["config"].pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return
    tr.ensure_newline()
    tr.write_sep("!", f"FIRST FAILURE ({report.when}): {report.nodeid}")
    tr.write_line(report.longreprtext)
    tr.write_sep("!", "the run goes on")
    tr.flush()
