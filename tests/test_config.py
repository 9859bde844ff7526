"""The config: TOML files and --set overrides, one dataclass per section, the
names and parameters read from the registries of fastbp.nn; every bad key or
value is one line naming it, exit 2."""

from pathlib import Path

import pytest
from cli_helpers import FAST, TINY, cli, expect_error, fastbp  # noqa: F401 (cli is a fixture)

from fastbp.errors import ConfigError
from fastbp.nn import activations, costs, init, optim, schedules
from fastbp.train import config

ROOT = Path(__file__).resolve().parent.parent


def test_digits_toml_is_the_default():
    assert config.load(ROOT / "configs" / "digits.toml") == config.load(None)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_config_is_valid(path):
    cfg = config.load(path)
    assert cfg.model.sizes[-1] == 10 and config.load(ROOT / "configs" / path.name) == cfg


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimizer]\nlr = 'fast'\n")
    with pytest.raises(ConfigError, match="optimizer.lr"):
        config.load(bad)
    bad.write_text("[optimiser]\nlr = 0.1\n")
    with pytest.raises(ConfigError, match="did you mean 'optimizer'"):
        config.load(bad)
    bad.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="does not pair"):
        config.load(None, ['model.cost="cross_entropy"'])


BAD_VALUES = [
    (["--set", "optimizer.lr=0"], ["optimizer.lr", "> 0"]),
    (["--set", "optimizer.lr=-0.5"], ["optimizer.lr", "> 0"]),
    (["--set", "optimizer.lr=nan"], ["optimizer.lr", "finite"]),
    (["--set", 'optimizer.lr="fast"'], ["optimizer.lr", "must be float"]),
    (["--set", "train.batch_size=-3"], ["train.batch_size", ">= 1"]),
    (["--set", "train.batch_size=0"], ["train.batch_size", ">= 1"]),
    (["--set", "train.batch_size=2000"], ["train.batch_size", "= 2000 is larger than the training set (1293 rows)"]),
    (["--set", "train.batch_size=1.5"], ["train.batch_size", "must be int"]),
    (["--set", "train.epochs=true"], ["train.epochs", "must be int"]),
    (["--set", "model.sizes=[]"], ["model.sizes", "at least two"]),
    (["--set", "model.sizes=[64]"], ["model.sizes", "at least two"]),
    (["--set", "model.sizes=[64,0,10]"], ["model.sizes", "positive"]),
    (["--set", "model.output=softmaxx"], ["model.output", "did you mean 'softmax'"]),
    (["--set", "model.hidden=softplus"], ["model.hidden", "one of sigmoid, tanh, relu, leaky_relu", "'softplus'"]),
    (["--set", "train.backend=cuda"], ["train.backend", "did you mean 'cupy'"]),
    (["--backend", "tpu"], ["--backend", "invalid choice: 'tpu'"]),
    (["--set", "trian.epochs=2"], ["'trian'", "did you mean 'train'"]),
    (["--set", "train.epoch=2"], ["train.epoch", "did you mean 'epochs'"]),
    (["--set", "train.lr=0.1"], ["unknown config key 'train.lr'", "did you mean 'optimizer.lr'"]),  # another section's key
    (["--set", "lr=0.1"], ["'lr=0.1'", "did you mean 'optimizer.lr'"]),
    (["--set", "data.validation=1.5"], ["data.validation", "fraction"]),
    (["--set", "data.validation=5000"], ["data.validation", "leaves no training data"]),
    (["--set", "optimizer.lrr=0.1"], ["did you mean 'lr'"]),
    (["--set", "model.sizes=[784,10]"], ["64 features"]),
    (["--set", "train.epochs=ten"], ["train.epochs"]),
    (["--set", "schedule.gamma=0"], ["schedule.gamma", "in (0, 1]"]),
    (["--set", "optimizer.momentum=1.5"], ["optimizer.momentum", "in [0, 1]"]),
    (["--set", "model.init=zeros"], ["model.init", "one of normal, normal_scaled, glorot, he"]),
    (["nonexistent-config"], ["no such file"]),
    (["--set", "train.cuda_graph=true"], ["train.cuda_graph", "the numpy backend has no CUDA graphs"]),
]


@pytest.mark.parametrize("name", ["../../x", "..", ".", "/tmp/x", "runs/x", "a\\\\b", "x\\u0000"])
def test_output_name_is_a_plain_name_never_a_path(cli, tmp_path, name):
    """A run directory is made inside output.dir and nowhere else: a name that is a path is refused,
    before anything is written."""
    out = tmp_path / "a" / "b"
    line = expect_error(cli("train", "--out", out, *TINY, "--set", f'output.name="{name}"'), 2, "config key 'output.name'",
                        "must be a plain name for the run directory inside output.dir")
    assert line.endswith(f"got {name.encode().decode('unicode_escape')!r}")
    assert list(tmp_path.iterdir()) == []


def test_a_plain_output_name_names_the_run_directory(cli, tmp_path):
    rc, _, err = cli("train", "--out", tmp_path, *TINY, "--set", 'output.name="my run.1"')
    assert rc == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["my run.1"]


@pytest.mark.parametrize("args,needles", BAD_VALUES, ids=[" ".join(args) for args, _ in BAD_VALUES])
def test_bad_config_values_give_one_line_and_exit_2(cli, tmp_path, args, needles):
    expect_error(cli("train", "--out", tmp_path, *TINY, *args), 2, *needles)


@pytest.mark.parametrize(
    "text,needles",
    [
        ("[trian]\n", ["unknown config section 'trian'", "did you mean 'train'"]),  # even an empty one
        ("[train]\nepoch = 3\n", ["unknown config key 'train.epoch'", "did you mean 'epochs'"]),
        ("[train]\nlr = 0.1\n", ["unknown config key 'train.lr'", "did you mean 'optimizer.lr'"]),
        ("epochs = 3\n", ["'epochs' must be a table", "did you mean 'train.epochs'"]),
        ("[model]\nhidden = 3\n", ["model.hidden", "must be str"]),
        ("[model]\nsizes = []\n", ["model.sizes", "at least two"]),
        ("[optimizer]\nlr = -1\n", ["optimizer.lr", "> 0"]),
        ("[train]\nbackend = 'tpu'\n", ["train.backend", "one of numpy, cupy, auto"]),
    ],
)
def test_bad_config_files_give_one_line_and_exit_2(cli, tmp_path, text, needles):
    (tmp_path / "c.toml").write_text(text)
    expect_error(cli("train", tmp_path / "c.toml", "--out", tmp_path, *TINY), 2, f"fastbp: error: config file {tmp_path / 'c.toml'}: ", *needles)


def test_debug_shows_the_traceback():
    rc, _, err = fastbp("--debug", "train", "--set", "optimizer.lr=0")
    assert rc != 0 and "Traceback" in err and "ConfigError" in err and "optimizer.lr" in err



def test_the_choices_are_the_registries():
    """A new activation, cost, initialiser, optimiser or schedule becomes a
    valid config value by being registered in its module, nowhere else."""
    field = {f.name: f for f in config.dataclasses.fields(config.Model)}
    assert field["hidden"].metadata["choices"]() == activations.names("hidden")
    assert field["output"].metadata["choices"]() == activations.names("output")
    assert field["cost"].metadata["choices"]() == tuple(costs.RECORDS)
    assert field["init"].metadata["choices"] == tuple(init.INITIALISERS)
    names = {s: {f.name for f in config.dataclasses.fields(config.SECTIONS[s])} for s in ("optimizer", "schedule")}
    assert set(optim.PARAMS) <= names["optimizer"] and set(schedules.PARAMS) <= names["schedule"]
    cfg = config.load(None, ['optimizer.name="adam"', "optimizer.beta2=0.99", 'schedule.name="step"', "schedule.gamma=0.5"])
    assert cfg.optimizer_params() == {"beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.001}
    assert cfg.schedule_params() == {"step_epochs": 10, "gamma": 0.5}


def test_optimisers_and_schedules_refuse_a_parameter_they_do_not_take():
    from fastbp.nn.network import Network

    net = Network([3, 2])
    with pytest.raises(ValueError, match="optimizer 'momentum' takes no parameter 'beta1' \\(it takes momentum, weight_decay\\)"):
        optim.make("momentum", net, beta1=0.9)
    with pytest.raises(ValueError, match="optimizer 'adam': beta2 must be in \\[0, 1\\), got 1.5"):
        optim.make("adam", net, beta2=1.5)
    with pytest.raises(ValueError, match="schedule 'step' takes no parameter 'step_epoch' \\(it takes step_epochs, gamma\\)"):
        schedules.make("step", 0.1, 100, 10, step_epoch=5)
    with pytest.raises(ValueError, match="schedule 'constant' takes no parameter 'gamma' \\(it takes none\\)"):
        schedules.make("constant", 0.1, 100, 10, gamma=0.5)
    assert optim.make("nesterov", net, momentum=0.5).momentum == 0.5
    assert schedules.make("step", 1.0, 100, 10, gamma=0.5, step_epochs=1)(25) == 0.25


def test_a_saved_config_reads_back_equal(tmp_path):
    cfg = config.load(ROOT / "configs" / "mnist.toml", ["optimizer.lr=0.2"])
    (tmp_path / "c.toml").write_text(config.to_toml(cfg))
    assert config.load(tmp_path / "c.toml") == cfg == config.from_dict(cfg.to_dict())


def test_tf32_on_the_cpu_warns_that_it_does_nothing(cli, tmp_path):
    with pytest.warns(UserWarning, match="^train.tf32 = true does nothing on the numpy backend$"):
        assert cli("train", "--out", tmp_path, *TINY, "--set", "train.tf32=true")[0] == 0
