"""The named configs ship inside the wheel and are found after any install; the CI
script (.ci/run) installs the wheel into a fresh venv and trains from an empty folder."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cli_helpers import cli  # noqa: F401 (a fixture)

from fastbp.train import config
from fastbp.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in (ROOT / "configs").glob("*.toml"))


def test_pyproject_lists_every_package():
    # pyproject names its packages (find cannot map configs/ into fastbp): a new
    # subpackage missing from the list would be missing from the wheel.
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = [".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fastbp").rglob("__init__.py")]
    assert sorted(listed) == sorted(found + ["fastbp.configs"])


@pytest.mark.slow
def test_the_wheel_carries_every_config(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("fastbp-*.whl")
    with zipfile.ZipFile(wheel) as z:
        packaged = sorted(Path(n).stem for n in z.namelist() if n.startswith("fastbp/configs/") and n.endswith(".toml"))
    assert packaged == NAMES


def test_list_configs_prints_every_name(cli, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # no ./configs here
    rc, out, _ = cli("train", "--list-configs")
    assert rc == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == NAMES
    assert "mnist                MNIST with a two-hidden-layer ReLU MLP" in out


def test_a_name_is_found_in_dot_configs_then_among_the_named_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.find("mnist") == config.named_dir() / "mnist.toml"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mnist.toml").write_text("[train]\nepochs = 1\n")
    assert config.find("mnist") == Path("configs") / "mnist.toml"
    (tmp_path / "mnist").write_text("")
    assert config.find("mnist") == Path("mnist")  # an existing path comes first
    with pytest.raises(ConfigError, match=r"config 'nope': no such file.*--list-configs"):
        config.find("nope")
