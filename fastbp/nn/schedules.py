"""Learning-rate schedules: lr(step) for step = 0 .. total_steps − 1.

Evaluated once per mini-batch on the host (a few float operations). Each
schedule names the parameters it takes (`TAKES`); their defaults and valid
ranges are in PARAMS.
"""

from __future__ import annotations

import math

from .registry import Param, take

PARAMS = {
    "step_epochs": Param(10, lambda v: v >= 1, ">= 1"),
    "gamma": Param(0.1, lambda v: 0 < v <= 1, "in (0, 1]"),
    "min_lr": Param(0.0, lambda v: v >= 0, ">= 0"),
    "warmup": Param(0.0, lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "pct_start": Param(0.25, lambda v: 0 < v < 1, "in (0, 1)"),
    "div": Param(25.0, lambda v: v > 0, "> 0"),
    "final_div": Param(1e4, lambda v: v > 0, "> 0"),
}


def constant(lr, total_steps, steps_per_epoch):
    return lambda step: lr


def step_decay(lr, total_steps, steps_per_epoch, step_epochs, gamma):
    """lr · γ^⌊epoch / step_epochs⌋."""
    return lambda step: lr * gamma ** (step // (steps_per_epoch * step_epochs))


def _cosine(lr, min_lr, frac):
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * min(frac, 1.0)))


def cosine(lr, total_steps, steps_per_epoch, min_lr, warmup):
    """Linear warm-up over the first `warmup` fraction of steps, then cosine
    decay from lr to min_lr (warmup=0: plain cosine)."""
    n_warm = int(warmup * total_steps)

    def lr_at(step):
        if step < n_warm:
            return lr * (step + 1) / n_warm
        return _cosine(lr, min_lr, (step - n_warm) / max(1, total_steps - n_warm))

    return lr_at


def one_cycle(lr, total_steps, steps_per_epoch, pct_start, div, final_div):
    """Smith's one-cycle: cosine rise from lr/div to lr over pct_start of the
    run, then cosine fall to lr/final_div."""
    n_up = max(1, int(pct_start * total_steps))
    start, end = lr / div, lr / final_div

    def lr_at(step):
        if step < n_up:
            return _cosine(lr, start, 1.0 - step / n_up)  # rises start -> lr
        return _cosine(lr, end, (step - n_up) / max(1, total_steps - n_up))

    return lr_at


SCHEDULES = {"constant": constant, "step": step_decay, "cosine": cosine, "one_cycle": one_cycle}
TAKES = {
    "constant": (),
    "step": ("step_epochs", "gamma"),
    "cosine": ("min_lr", "warmup"),
    "one_cycle": ("pct_start", "div", "final_div"),
}


def make(name, lr, total_steps, steps_per_epoch, **params):
    """lr_at(step) of the schedule called `name`; unknown parameters are refused."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name](lr, total_steps, steps_per_epoch, **take("schedule", name, PARAMS, TAKES[name], params))
