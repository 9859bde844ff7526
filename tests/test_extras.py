"""An optional extra that cannot be imported: one line, and missing told apart from broken
(an install that is there but does not import gets the import's own error, not advice to
install it)."""

import sys

import pytest

from fastbp import extras
from fastbp.errors import ConfigError, UsageError


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """fake(body): a module `fastbp_fake_extra` whose import runs body, in the extras' table."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(extras.EXTRAS, "fastbp_fake_extra", ("Fake", "fake"))
    monkeypatch.delitem(sys.modules, "fastbp_fake_extra", raising=False)

    def write(body):
        (tmp_path / "fastbp_fake_extra.py").write_text(body)

    return write


def test_a_missing_extra_names_its_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(UsageError, match=r"^exporting to ONNX needs the onnx package: pip install 'fastbp\[onnx\]'$"):
        extras.require("onnx", "exporting to ONNX")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)  # imported by an earlier test
    with pytest.raises(ConfigError, match=r"^a run needs mpi4py: pip install 'fastbp\[mpi\]'$"):
        extras.require("mpi4py.MPI", "a run", ConfigError)


def test_an_installed_extra_that_does_not_import_gets_its_own_error(fake):
    # what a library built for another Python says (seen: distributed's ssl import, a venv mixing two Pythons)
    fake("raise ImportError('_ssl.so: undefined symbol: _PyModule_Add\\nmore lines')\n")
    with pytest.raises(UsageError) as caught:
        extras.require("fastbp_fake_extra", "a sweep")
    assert str(caught.value) == ("a sweep needs Fake, which is installed but does not import (ImportError: _ssl.so: "
                                 "undefined symbol: _PyModule_Add); install it again in a fresh venv: pip install "
                                 "'fastbp[fake]'")


def test_a_dependency_of_the_extra_missing_is_not_the_extra_missing(fake):
    fake("import fastbp_no_such_dependency\n")
    with pytest.raises(UsageError, match=r"^a sweep needs Fake, which is installed but does not import "
                                         r"\(ModuleNotFoundError: No module named 'fastbp_no_such_dependency'\)"):
        extras.require("fastbp_fake_extra", "a sweep")


def test_an_extra_that_imports_is_returned(fake):
    fake("VALUE = 42\n")
    assert extras.require("fastbp_fake_extra", "a sweep").VALUE == 42


def test_fastbp_sweep_without_dask_is_one_line(monkeypatch, capsys):
    from fastbp import cli

    monkeypatch.setitem(sys.modules, "distributed", None)
    assert cli.main(["sweep", "digits", "--grid", "optimizer.lr=0.1,0.2"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["fastbp: error: fastbp sweep needs Dask: pip install 'fastbp[dask]'"]
