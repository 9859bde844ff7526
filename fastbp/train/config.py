"""Training configuration: TOML files, `--set key=value` overrides, and one
validation pass at the boundary. Anything wrong raises ConfigError naming the
key (with the closest valid key for a typo)."""

from __future__ import annotations

import copy
import difflib
import json
import math
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..errors import ConfigError

# The known choices, validated here once so that the engine can trust them.
HIDDEN = ("sigmoid", "tanh", "relu", "leaky_relu")
OUTPUT = ("sigmoid", "softmax", "identity", "tanh", "relu")
COSTS = ("quadratic", "cross_entropy", "log_likelihood")
INITS = ("normal", "normal_scaled", "glorot", "he")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "step", "cosine", "one_cycle")


def _pos(v):
    return v > 0


def _nonneg(v):
    return v >= 0


def _unit(v):  # [0, 1)
    return 0 <= v < 1


# section -> key -> (default, type, check or tuple of choices, description of a valid value)
SCHEMA = {
    "data": {
        "name": ("digits", str, None, "digits, mnist, fashion-mnist or a path"),
        "data_dir": ("", str, None, "a directory"),
        # auto: the last 10,000 training images as network2.py does, or the
        # last 10% when the training set has fewer than 20,000.
        "validation": ("auto", (int, float, str), lambda v: v == "auto" or not isinstance(v, str) and v >= 0, "auto, a count >= 0 or a fraction in (0, 1)"),
        "standardize": (False, bool, None, "true or false"),
        "train_limit": (0, int, _nonneg, "a count >= 0 (0 = all)"),
        # augmentation: each training image moved by up to this many pixels in x and y
        "shift": (0, int, _nonneg, "a pixel count >= 0 (0 = off)"),
    },
    "model": {
        "sizes": ([64, 100, 10], list, lambda v: len(v) >= 2 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v), "a list of at least two positive integers"),
        "hidden": ("relu", str, HIDDEN, None),
        "output": ("softmax", str, OUTPUT, None),
        "cost": ("log_likelihood", str, COSTS, None),
        "init": ("he", str, INITS, None),
        "dropout": (0.0, float, _unit, "in [0, 1)"),
        "leaky_slope": (0.01, float, lambda v: 0 < v < 1, "in (0, 1)"),
    },
    "optimizer": {
        "name": ("momentum", str, OPTIMIZERS, None),
        "lr": (0.1, float, _pos, "> 0"),
        "momentum": (0.9, float, _unit, "in [0, 1)"),
        "beta1": (0.9, float, _unit, "in [0, 1)"),
        "beta2": (0.999, float, _unit, "in [0, 1)"),
        "eps": (1e-8, float, _pos, "> 0"),
        "weight_decay": (0.0, float, _nonneg, ">= 0"),
        "l2": (0.0, float, _nonneg, ">= 0 (Nielsen's λ, divided by the training-set size)"),
        "clip_norm": (0.0, float, _nonneg, ">= 0 (0 = off)"),
    },
    "schedule": {
        "name": ("constant", str, SCHEDULES, None),
        "step_epochs": (10, int, _pos, ">= 1"),
        "gamma": (0.1, float, lambda v: 0 < v <= 1, "in (0, 1]"),
        "min_lr": (0.0, float, _nonneg, ">= 0"),
        "warmup": (0.0, float, _unit, "a fraction in [0, 1)"),
        "pct_start": (0.25, float, lambda v: 0 < v < 1, "in (0, 1)"),
        "div": (25.0, float, _pos, "> 0"),
        "final_div": (1e4, float, _pos, "> 0"),
    },
    "train": {
        "epochs": (10, int, _pos, ">= 1"),
        "batch_size": (32, int, _pos, ">= 1"),
        "seed": (0, int, _nonneg, ">= 0"),
        "backend": ("auto", str, ("numpy", "cupy", "auto"), None),
        "dtype": ("float32", str, ("float32", "float64"), None),
        "threads": (0, int, _nonneg, ">= 0 (BLAS threads; 0 = the library's default)"),
        "drop_last": (False, bool, None, "true or false"),
        "shuffle": (True, bool, None, "true or false"),
        "early_stopping": (False, bool, None, "true or false"),
        "monitor": ("val_loss", str, ("val_loss", "val_accuracy"), None),
        "patience": (5, int, _pos, ">= 1"),
        "min_delta": (0.0, float, _nonneg, ">= 0"),
    },
    "output": {
        "dir": ("runs", str, None, "a directory"),
        "name": ("", str, None, "a run name"),
        "checkpoint_every": (1, int, _nonneg, ">= 0 (0 = only at the end)"),
        "history": ("jsonl", str, ("jsonl", "csv"), None),
        "plots": (True, bool, None, "true or false"),
        "grad_norms": (True, bool, None, "true or false"),
    },
}

# Output activation / cost pairs the engine accepts (see fastbp.nn.costs).
PAIRS = {"quadratic": ("sigmoid", "identity", "tanh", "relu"), "cross_entropy": ("sigmoid",), "log_likelihood": ("softmax",)}


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
    return {sec: {k: copy.deepcopy(spec[0]) for k, spec in keys.items()} for sec, keys in SCHEMA.items()}


def _closest(word, choices):
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _home(key):
    """" (did you mean 'train.epochs'?)" for a key written without its section, else ""."""
    homes = [f"'{section}.{key}'" for section in SCHEMA if key in SCHEMA[section]]
    return f" (did you mean {' or '.join(homes)}?)" if homes else ""


def _check_key(section, key):
    if section not in SCHEMA:
        raise ConfigError(f"unknown config section '{section}'{_closest(section, SCHEMA)}; sections: {', '.join(SCHEMA)}")
    if key not in SCHEMA[section]:  # a typo within the section, else the key's own section ('train.lr')
        raise ConfigError(f"unknown config key '{section}.{key}'{_closest(key, SCHEMA[section]) or _home(key)}")


def _check_value(section, key, value):
    default, typ, check, want = SCHEMA[section][key]
    name = f"{section}.{key}"
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        tname = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"config key '{name}' must be {tname}, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{name}' must be finite, got {value!r}")
    if isinstance(check, tuple):
        if value not in check:
            raise ConfigError(f"config key '{name}' must be one of {', '.join(check)}, got {value!r}{_closest(str(value), check)}")
    elif check is not None and not check(value):
        raise ConfigError(f"config key '{name}' must be {want}, got {value!r}")
    return value


def merge(cfg, overrides):
    """Merge a {section: {key: value}} mapping into cfg, checking every key."""
    if not isinstance(overrides, dict):
        raise ConfigError("config must be a table of sections")
    for section, table in overrides.items():
        if not isinstance(table, dict):
            raise ConfigError(f"config section '{section}' must be a table, got {type(table).__name__}{_home(section) or _closest(section, SCHEMA)}")
        if section not in SCHEMA:  # even when empty: [trian] is a typo
            _check_key(section, None)
        for key, value in table.items():
            _check_key(section, key)
            cfg[section][key] = _check_value(section, key, value)
    return cfg


def parse_override(text):
    """'optimizer.lr=0.1' -> {'optimizer': {'lr': 0.1}}; the value is read as TOML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. optimizer.lr=0.1")
    path, raw = (s.strip() for s in text.split("=", 1))
    if path.count(".") != 1:
        raise ConfigError(f"--set {text!r}: the key must be SECTION.KEY{_home(path) or ', e.g. train.epochs'}")
    section, key = path.split(".")
    _check_key(section, key)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: --set model.hidden=tanh
    return {section: {key: value}}


def validate(cfg):
    """Checks across keys, after every value is individually valid."""
    m = cfg["model"]
    if m["output"] not in PAIRS[m["cost"]]:
        raise ConfigError(
            f"config key 'model.cost' = {m['cost']!r} does not pair with model.output = {m['output']!r}; "
            f"use output {' or '.join(PAIRS[m['cost']])}"
        )
    v = cfg["data"]["validation"]
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


def from_json(text):
    """A config saved in a checkpoint or summary, re-validated."""
    return validate(merge(defaults(), json.loads(text)))


def to_toml(cfg):
    """The config as TOML (written into each run directory)."""
    lines = []
    for section, table in cfg.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)
