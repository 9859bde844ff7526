"""Training configuration: one dataclass per TOML section, read from TOML files
and `--set key=value` overrides, validated once at the boundary.

Each key is declared once, below, with its default and what a valid value is;
the named choices (activations, costs, initialisers, optimisers, schedules)
and the optimiser and schedule parameters come from the registries of the
`fastbp.nn` modules that implement them. Anything wrong raises ConfigError
naming the key (with the closest valid key for a typo).
"""

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..backend import BACKENDS
from ..errors import ConfigError
from ..nn import activations, costs, init, optim, schedules


def key(default, want=None, ok=None, choices=None):
    """A config key: its default, a check (or a tuple of choices) and, for
    messages, what a valid value is."""
    meta = {"want": want, "ok": ok, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _pos(v):
    return v > 0


def _nonneg(v):
    return v >= 0


def _unit(v):  # [0, 1)
    return 0 <= v < 1


def _plain_name(v):  # a run directory's own name: never a path that leaves output.dir
    return v not in (".", "..") and not any(c in v for c in "/\\\0")


def _sizes(v):
    return len(v) >= 2 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v)


@dataclass
class Data:
    name: str = key("digits", "digits, mnist, fashion-mnist or a path")
    data_dir: str = key("", "a directory")
    # auto: the last 10,000 training images as network2.py does, or the last
    # 10% when the training set has fewer than 20,000.
    validation: "int | float | str" = key(
        "auto", "auto, a count >= 0 or a fraction in (0, 1)", lambda v: v == "auto" or not isinstance(v, str) and v >= 0
    )
    standardize: bool = key(False)
    train_limit: int = key(0, "a count >= 0 (0 = all)", _nonneg)  # of the rows left after validation
    # augmentation: each training image moved by up to this many pixels in x and y
    shift: int = key(0, "a pixel count >= 0 (0 = off)", _nonneg)


@dataclass
class Model:
    sizes: list = key([64, 256, 10], "a list of at least two positive integers", _sizes)  # the digits config's
    hidden: str = key("relu", choices=lambda: activations.names("hidden"))  # the records as they are now
    output: str = key("softmax", choices=lambda: activations.names("output"))
    cost: str = key("log_likelihood", choices=lambda: tuple(costs.RECORDS))
    init: str = key("he", choices=tuple(init.INITIALISERS))
    dropout: float = key(0.0, "in [0, 1)", _unit)
    leaky_slope: float = key(0.01, "in (0, 1)", lambda v: 0 < v < 1)


def _registry_section(name, choices, default, params, extra=()):
    """A section whose keys are a registry's name, some keys of the trainer's
    own, and every parameter of its table (defaults and checks from there)."""
    fields = [("name", str, key(default, choices=tuple(choices))), *extra]
    fields += [(k, type(p.default), key(p.default, p.want, p.ok)) for k, p in params.items()]
    return dataclasses.make_dataclass(name, fields)


Optimizer = _registry_section("Optimizer", optim.OPTIMIZERS, "momentum", optim.PARAMS, extra=[
    ("lr", float, key(0.1, "> 0", _pos)),
    ("l2", float, key(0.0, ">= 0 (Nielsen's λ, divided by the training-set size)", _nonneg)),
    ("clip_norm", float, key(0.0, ">= 0 (0 = off)", _nonneg)),
])
Schedule = _registry_section("Schedule", schedules.SCHEDULES, "constant", schedules.PARAMS)


@dataclass
class Train:
    epochs: int = key(10, ">= 1", _pos)
    batch_size: int = key(32, ">= 1", _pos)
    seed: int = key(0, ">= 0", _nonneg)
    backend: str = key("auto", choices=BACKENDS)
    dtype: str = key("float32", choices=("float32", "float64"))
    threads: int = key(0, ">= 0 (BLAS threads; 0 = the library's default)", _nonneg)
    tf32: bool = key(False)  # float32 matrix products on a GPU's tensor cores in TF32
    cuda_graph: bool = key(False)  # replay each full batch's forward and backward as one CUDA graph
    drop_last: bool = key(False)
    shuffle: bool = key(True)
    early_stopping: bool = key(False)
    monitor: str = key("val_loss", choices=("val_loss", "val_accuracy"))
    patience: int = key(5, ">= 1", _pos)
    min_delta: float = key(0.0, ">= 0", _nonneg)
    # training health (fastbp.train.health): the checks each epoch, and what a problem found does
    health: bool = key(True)
    on_unhealthy: str = key("warn", choices=("warn", "stop", "ignore"))


@dataclass
class Output:
    dir: str = key("runs", "a directory")
    name: str = key("", "a plain name for the run directory inside output.dir (no '/', '\\', '.' or '..'; "
                        "empty: the config's name and the time)", _plain_name)
    checkpoint_every: int = key(1, ">= 0 (0 = only at the end)", _nonneg)
    history: str = key("jsonl", choices=("jsonl", "csv"))
    plots: bool = key(True)
    grad_norms: bool = key(True)
    tensorboard: bool = key(False)  # event files in the run directory (tensorboardX)
    histogram_every: int = key(5, ">= 0 (0 = no weight histograms)", _nonneg)


@dataclass
class Config:
    data: Data = field(default_factory=Data)
    model: Model = field(default_factory=Model)
    optimizer: Optimizer = field(default_factory=Optimizer)
    schedule: Schedule = field(default_factory=Schedule)
    train: Train = field(default_factory=Train)
    output: Output = field(default_factory=Output)

    def to_dict(self):
        return dataclasses.asdict(self)

    def optimizer_params(self):
        """The parameters the chosen optimiser takes, as this config sets them."""
        o = self.optimizer
        return {k: getattr(o, k) for k in optim.OPTIMIZERS[o.name].takes}

    def schedule_params(self):
        s = self.schedule
        return {k: getattr(s, k) for k in schedules.TAKES[s.name]}


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config)}
TYPES = {  # the Python types a TOML value may have, per annotation
    "str": (str,), "int": (int,), "float": (float,), "bool": (bool,), "list": (list,), "int | float | str": (int, float, str),
}


def _keys(section):
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


# What `fastbp train` runs with no config: the same as configs/digits.toml
# (a test keeps the two equal), built in so that an installed fastbp needs no file.
DIGITS = {
    "data": {"name": "digits", "validation": 0.1},
    "model": {"sizes": [64, 256, 10], "hidden": "relu", "output": "softmax", "cost": "log_likelihood", "init": "he"},
    "optimizer": {"name": "momentum", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.001},
    "schedule": {"name": "cosine"},
    "train": {"epochs": 60, "batch_size": 32},
}


def defaults():
    return Config()


# -- the named configs: mnist, 3b1b, ... ----------------------------------------------------------
SOURCE_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def named_dir():
    """Where the named configs are: inside the package after a wheel install
    (pyproject maps the top-level configs/ to fastbp/configs), else the source
    tree's configs/ (a checkout, an editable install)."""
    packaged = resources.files("fastbp") / "configs"
    return Path(str(packaged)) if packaged.is_dir() else SOURCE_CONFIGS


def describe_configs(folder):
    """{name: its first comment line, up to a colon} for each TOML file in folder:
    the configs' comments open with what the run is, then a colon and the details."""
    out = {}
    for f in sorted(Path(folder).glob("*.toml"), key=lambda f: f.stem):
        comments = [line.lstrip("#").strip() for line in f.read_text().splitlines() if line.startswith("#")]
        out[f.stem] = comments[0].split(": ")[0].rstrip(":,.") if comments else ""
    return out


def find(arg):
    """The file of config `arg`: a path, else NAME in ./configs, else one of the
    named configs fastbp ships (None: the built-in digits preset)."""
    if arg is None:
        return None
    p = Path(arg)
    if p.exists() or p.suffix == ".toml":
        return p
    for folder in (Path("configs"), named_dir()):
        if (folder / f"{arg}.toml").is_file():
            return folder / f"{arg}.toml"
    raise ConfigError(f"config {arg!r}: no such file, no configs/{arg}.toml and no such named config "
                      "(fastbp train --list-configs lists them)")


def _closest(word, choices):
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _home(name):
    """" (did you mean 'train.epochs'?)" for a key written without its section, else ""."""
    homes = [f"'{section}.{name}'" for section in SECTIONS if name in _keys(section)]
    return f" (did you mean {' or '.join(homes)}?)" if homes else ""


def _check_key(section, name):
    if section not in SECTIONS:
        raise ConfigError(f"unknown config section '{section}'{_closest(section, SECTIONS)}; sections: {', '.join(SECTIONS)}")
    if name not in _keys(section):  # a typo within the section, else the key's own section ('train.lr')
        raise ConfigError(f"unknown config key '{section}.{name}'{_closest(name, _keys(section)) or _home(name)}")


def _check_value(section, name, value):
    f = _keys(section)[name]
    full, want, ok, choices = f"{section}.{name}", f.metadata["want"], f.metadata["ok"], f.metadata["choices"]
    if callable(choices):
        choices = choices()
    types = TYPES[f.type if isinstance(f.type, str) else f.type.__name__]
    if float in types and int not in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        tname = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"config key '{full}' must be {tname}, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{full}' must be finite, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"config key '{full}' must be one of {', '.join(choices)}, got {value!r}{_closest(str(value), choices)}")
    if ok is not None and not ok(value):
        raise ConfigError(f"config key '{full}' must be {want}, got {value!r}")
    return value


def merge(cfg, overrides):
    """Merge a {section: {key: value}} mapping into cfg, checking every key."""
    if not isinstance(overrides, dict):
        raise ConfigError("config must be a table of sections")
    for section, table in overrides.items():
        if not isinstance(table, dict):
            raise ConfigError(f"config section '{section}' must be a table, got {type(table).__name__}{_home(section) or _closest(section, SECTIONS)}")
        if section not in SECTIONS:  # even when empty: [trian] is a typo
            _check_key(section, None)
        for name, value in table.items():
            _check_key(section, name)
            setattr(getattr(cfg, section), name, _check_value(section, name, value))
    return cfg


def parse_override(text):
    """'optimizer.lr=0.1' -> {'optimizer': {'lr': 0.1}}; the value is read as TOML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. optimizer.lr=0.1")
    path, raw = (s.strip() for s in text.split("=", 1))
    if path.count(".") != 1:
        raise ConfigError(f"--set {text!r}: the key must be SECTION.KEY{_home(path) or ', e.g. train.epochs'}")
    section, name = path.split(".")
    _check_key(section, name)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: --set model.hidden=tanh
    return {section: {name: value}}


def validate(cfg):
    """Checks across keys, after every value is individually valid."""
    m = cfg.model
    pairs = costs.RECORDS[m.cost].outputs
    if m.output not in pairs:
        raise ConfigError(
            f"config key 'model.cost' = {m.cost!r} does not pair with model.output = {m.output!r}; "
            f"use output {' or '.join(pairs)}"
        )
    v = cfg.data.validation
    if isinstance(v, float) and not 0 < v < 1:
        raise ConfigError(f"config key 'data.validation' must be a count >= 0 or a fraction in (0, 1), got {v!r}")
    return cfg


def load(path=None, overrides=()):
    """Defaults, then the TOML file (or the digits preset when there is no
    file), then each --set override."""
    cfg = defaults()
    if path is None:
        merge(cfg, DIGITS)
    else:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path}: cannot be read ({exc})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
        try:
            merge(cfg, data)
        except ConfigError as exc:  # name the file as well as the key
            raise ConfigError(f"config file {path}: {exc}") from None
    for text in overrides:
        merge(cfg, parse_override(text))
    return validate(cfg)


def from_dict(data, overrides=()):
    """A config saved as a dict (in a checkpoint or summary), re-validated,
    then --set overrides on top."""
    cfg = merge(defaults(), data)
    for text in overrides:
        merge(cfg, parse_override(text))
    return validate(cfg)


def to_toml(cfg):
    """The config as TOML (written into each run directory)."""
    lines = []
    for section, table in cfg.to_dict().items():
        lines.append(f"[{section}]")
        lines.extend(f"{name} = {json.dumps(value)}" for name, value in table.items())
        lines.append("")
    return "\n".join(lines)
