"""A run's directory and the files in it: config.toml, history.jsonl (or
.csv), last.npz and best.npz checkpoints, summary.json and the plots. Every
file is written atomically."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from ..errors import WriteError
from ..files import atomic_write
from . import checkpoint, report
from .config import to_toml


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot create run directory {self.path}: {exc.strerror or exc}") from None

    @classmethod
    def new(cls, parent, name):
        """parent/name, or parent/name-2, -3, ... when it exists."""
        path, k = Path(parent) / name, 1
        while path.exists():
            k += 1
            path = Path(parent) / f"{name}-{k}"
        return cls(path)

    @staticmethod
    def default_name(stem):
        return f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"

    def __str__(self):
        return str(self.path)

    def write_config(self, cfg):
        atomic_write(self.path / "config.toml", to_toml(cfg).encode())

    def write_history(self, history, fmt):
        report.write_history(self.path, history, fmt)

    def write_summary(self, summary):
        atomic_write(self.path / "summary.json", json.dumps(summary, indent=1).encode())

    def plot(self, history):
        return report.plot(self.path, history)

    def save(self, name, **parts):
        checkpoint.save(self.path / name, **parts)

    def kept(self):
        """What a failed run leaves behind, for its message."""
        saved = [n for n in ("last.npz", "best.npz") if (self.path / n).exists()]
        if saved:
            return f"the last good checkpoint ({', '.join(saved)}) in {self.path} is kept"
        return "no checkpoint had been written yet"
