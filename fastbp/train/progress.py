"""tqdm progress bars: one for epochs, one for the batches of the current epoch.

Bars update at a bounded rate (`due()` is a clock check), so the training step
pays nothing per batch and the GPU is synchronised at most a few times a second.
Bars are off when stderr is not a terminal (tqdm's disable=None) or when quiet.
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


class Progress:
    def __init__(self, epochs, batches, disable=False, interval=0.25):
        self.disable = True if disable else None  # None: off when not a terminal
        self.interval = interval
        self.epochs = tqdm(total=epochs, desc="epochs", unit="epoch", disable=self.disable, file=sys.stderr)
        self.batches = tqdm(total=batches, desc="batches", unit="batch", leave=False, disable=self.disable, file=sys.stderr)
        self.active = not (self.epochs.disable and self.batches.disable)
        self._next = 0.0
        self._t0 = time.perf_counter()

    def start_epoch(self, epoch, batch=0):
        if self.active:
            self.epochs.n = epoch
            self.epochs.refresh()
            self.batches.reset()
            self.batches.update(batch)
        self._t0 = time.perf_counter()
        self._next = self._t0 + self.interval

    def due(self):
        """True at most once per interval (and never when the bars are off)."""
        if not self.active:
            return False
        now = time.perf_counter()
        if now < self._next:
            return False
        self._next = now + self.interval
        return True

    def update(self, batch, loss, accuracy, seen):
        rate = seen / max(1e-9, time.perf_counter() - self._t0)
        self.batches.n = batch
        self.batches.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.4f}", samples_s=f"{rate:,.0f}", refresh=True)

    def epoch_done(self, row):
        if self.active:
            self.epochs.update(1)
            post = {"loss": f"{row['train_loss']:.4f}"}
            for key in ("val_accuracy", "test_accuracy"):
                if key in row:
                    post[key.split("_")[0] + "_acc"] = f"{row[key]:.4f}"
            self.epochs.set_postfix(post)

    def close(self):
        self.batches.close()
        self.epochs.close()
