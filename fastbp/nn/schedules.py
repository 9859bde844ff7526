"""Learning-rate schedules: lr(step) for step = 0 .. total_steps − 1.

Evaluated once per mini-batch on the host (a few float operations).
"""

from __future__ import annotations

import math


def constant(lr, total_steps, steps_per_epoch, **_):
    return lambda step: lr


def step_decay(lr, total_steps, steps_per_epoch, step_epochs=10, gamma=0.1, **_):
    """lr · γ^⌊epoch / step_epochs⌋."""
    if step_epochs < 1 or not 0 < gamma <= 1:
        raise ValueError("step schedule needs step_epochs >= 1 and 0 < gamma <= 1")
    return lambda step: lr * gamma ** (step // (steps_per_epoch * step_epochs))


def _cosine(lr, min_lr, frac):
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * min(frac, 1.0)))


def cosine(lr, total_steps, steps_per_epoch, min_lr=0.0, warmup=0.0, **_):
    """Linear warm-up over the first `warmup` fraction of steps, then cosine
    decay from lr to min_lr (warmup=0: plain cosine)."""
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup}")
    n_warm = int(warmup * total_steps)

    def lr_at(step):
        if step < n_warm:
            return lr * (step + 1) / n_warm
        return _cosine(lr, min_lr, (step - n_warm) / max(1, total_steps - n_warm))

    return lr_at


def one_cycle(lr, total_steps, steps_per_epoch, pct_start=0.25, div=25.0, final_div=1e4, **_):
    """Smith's one-cycle: cosine rise from lr/div to lr over pct_start of the
    run, then cosine fall to lr/final_div."""
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
    n_up = max(1, int(pct_start * total_steps))
    start, end = lr / div, lr / final_div

    def lr_at(step):
        if step < n_up:
            return _cosine(lr, start, 1.0 - step / n_up)  # rises start -> lr
        return _cosine(lr, end, (step - n_up) / max(1, total_steps - n_up))

    return lr_at


SCHEDULES = {"constant": constant, "step": step_decay, "cosine": cosine, "one_cycle": one_cycle}


def make(name, lr, total_steps, steps_per_epoch, **kwargs):
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name](lr, total_steps, steps_per_epoch, **kwargs)
