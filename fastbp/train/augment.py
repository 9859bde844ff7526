"""Data augmentation: random translations of the training images.

Each image of a batch moves by its own (dy, dx), each in [-s, s] pixels, the
uncovered border filled with 0 (the background of MNIST-style data). Done on
the device in three whole-batch operations, no loop over images: the batch is
copied into the middle of a zero-bordered canvas, then one `take` reads each
image's window from its own offset.

The offsets of a whole epoch are drawn at its start from a generator seeded
by (seed, epoch), so an interrupted epoch resumes with the same shifts.
"""

from __future__ import annotations

import numpy as np


class RandomShift:
    def __init__(self, bk, image_shape, shift, batch_size, dtype):
        h, w = image_shape
        self.bk, self.xp, self.s, self.shape = bk, bk.xp, shift, (h, w)
        self.H, self.W = h + 2 * shift, w + 2 * shift
        xp = self.xp
        self.canvas = xp.zeros((batch_size, self.H * self.W), dtype)  # the border stays 0
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        self.window = xp.asarray((rows * self.W + cols).ravel())  # top-left window, flat
        self.starts = xp.asarray(np.arange(batch_size) * self.H * self.W)  # each canvas row
        self.index = xp.empty((batch_size, h * w), self.window.dtype)
        self.offsets = None

    def new_epoch(self, seed, epoch, n):
        """Draw every image's (dy, dx) for one epoch of n images."""
        rng = self.bk.rng([seed, epoch, 2])
        dy = self.bk.integers(rng, 2 * self.s + 1, n)
        dx = self.bk.integers(rng, 2 * self.s + 1, n)
        self.offsets = dy * self.W + dx  # where each window starts on its canvas

    def __call__(self, batch, i):
        """Shift the rows of `batch` (images i, i+1, ... of the epoch) in place."""
        xp, (h, w), s, n = self.xp, self.shape, self.s, batch.shape[0]
        canvas = self.canvas[:n]
        canvas.reshape(n, self.H, self.W)[:, s : s + h, s : s + w] = batch.reshape(n, h, w)
        index = self.index[:n]
        xp.add(self.window, (self.offsets[i : i + n] + self.starts[:n])[:, None], out=index)
        xp.take(canvas, index, out=batch)  # canvas rows are contiguous: flat indices
        return batch
