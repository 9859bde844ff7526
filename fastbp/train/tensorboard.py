"""TensorBoard event files in a run directory, so that `tensorboard --logdir runs`
shows a sweep's runs side by side: per epoch the loss and accuracy of every split,
the learning rate, throughput and per-layer gradient norms; weight and bias
histograms every few epochs. tensorboardX writes them (an optional extra: it is
light, and brings no TensorFlow or torch); history.jsonl stays the record."""

from __future__ import annotations

import warnings

from ..extras import problem

# history row key -> tag; "loss/train" and "loss/val" share one chart in TensorBoard.
SCALARS = {
    "train_loss": "loss/train", "val_loss": "loss/val", "test_loss": "loss/test",
    "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/val", "test_accuracy": "accuracy/test",
    "lr": "lr", "seconds": "time/epoch_seconds", "samples_per_s": "time/samples_per_s",
}


class TensorBoardLog:
    """One event file per run directory; step = the history row's epoch (1-based)."""

    def __init__(self, run_dir, histogram_every=5, first_epoch=1):
        from tensorboardX import SummaryWriter

        # purge_step: after a resume TensorBoard drops what the interrupted run logged
        # from first_epoch on, so each epoch shows once.
        self.writer = SummaryWriter(logdir=str(run_dir), purge_step=first_epoch if first_epoch > 1 else None)
        self.histogram_every = histogram_every

    def histograms_due(self, epoch):
        """Whether epoch(row, ...) for this epoch wants the weights (copy them off a GPU only then)."""
        return bool(self.histogram_every) and (epoch == 1 or epoch % self.histogram_every == 0)

    def epoch(self, row, weights=None, biases=None):
        """Log one history row; weights and biases: per-layer host arrays, layer 1 first."""
        step, w = row["epoch"], self.writer
        for key, tag in SCALARS.items():
            if row.get(key) is not None:
                w.add_scalar(tag, row[key], step)
        for key, name in (("grad_norm_w", "W"), ("grad_norm_b", "b")):
            for layer, norm in enumerate(row.get(key) or (), start=1):
                w.add_scalar(f"grad_norm/{name}{layer}", norm, step)
        for key, value in (row.get("health") or {}).items():
            if value is not None:
                w.add_scalar(f"health/{key}", value, step)
        if self.histograms_due(step):
            for name, arrays in (("weights/W", weights), ("biases/b", biases)):
                for layer, a in enumerate(arrays or (), start=1):
                    w.add_histogram(f"{name}{layer}", a, step)
        w.flush()  # a TensorBoard watching the run sees each epoch as it ends

    def close(self):
        self.writer.close()


def open_log(run_dir, histogram_every=5, first_epoch=1):
    """A TensorBoardLog, or None (after one warning) when tensorboardX is not installed."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError as exc:
        warnings.warn(f"{problem('tensorboardX', 'output.tensorboard', exc)}; "
                      "training goes on, logging to history.jsonl only", stacklevel=2)
        return None
    return TensorBoardLog(run_dir, histogram_every, first_epoch)
