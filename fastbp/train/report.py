"""What a run writes besides checkpoints: the history file, per-class metrics,
and (with matplotlib installed) learning-curve and gradient-norm plots."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from ..files import atomic_write


def epoch_line(row, epochs):
    parts = [f"epoch {row['epoch']:>3}/{epochs}", f"{row['seconds']:6.2f}s", f"loss {row['train_loss']:.4f}"]
    for split in ("val", "test"):
        if f"{split}_accuracy" in row:
            parts.append(f"{split} {row[f'{split}_loss']:.4f} / {100 * row[f'{split}_accuracy']:.2f}%")
    return "  ".join(parts)


def write_history(run_dir, history, fmt):
    """Rewrite the whole history file atomically (it is small)."""
    if fmt == "csv":
        buf = io.StringIO()
        flat = [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()} for row in history]
        keys = list(dict.fromkeys(k for row in flat for k in row))
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(flat)
        text, name = buf.getvalue(), "history.csv"
    else:
        text, name = "".join(json.dumps(row) + "\n" for row in history), "history.jsonl"
    atomic_write(run_dir / name, text.encode())


def class_metrics(y_true, y_pred, class_names):
    """The class names, confusion matrix (rows: true class, columns: predicted, in the order of the
    names) and per-class precision, recall and F1 (scikit-learn's metrics) of class indices."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.arange(len(class_names))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "classes": list(class_names),
        "confusion_matrix": cm.tolist(),
        "precision": [round(float(x), 6) for x in p],
        "recall": [round(float(x), 6) for x in r],
        "f1": [round(float(x), 6) for x in f],
    }


def class_table(metrics):
    """class_metrics as text: a line per class with its name, precision, recall, F1 and count."""
    width = max(len("class"), *(len(n) for n in metrics["classes"]))
    lines = [f"  {'class':<{width}}  precision  recall     f1  count"]
    for i, name in enumerate(metrics["classes"]):
        count = sum(metrics["confusion_matrix"][i])
        lines.append(f"  {name:<{width}}  {metrics['precision'][i]:9.3f}  {metrics['recall'][i]:6.3f}  "
                     f"{metrics['f1'][i]:5.3f}  {count:5d}")
    return "\n".join(lines)


def plot(run_dir, history):
    """learning_curves.png and grad_norms.png; skipped quietly without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val", "test"):
        if f"{split}_loss" in history[0]:
            ax1.plot(epochs, [h[f"{split}_loss"] for h in history], label=split)
            ax2.plot(epochs, [100 * h[f"{split}_accuracy"] for h in history], label=split)
    ax1.set(xlabel="epoch", ylabel="cost", title="cost")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax1.legend(), ax2.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "learning_curves.png", dpi=100)
    plt.close(fig)
    written = ["learning_curves.png"]
    if "grad_norm_b" in history[0]:
        fig, ax = plt.subplots(figsize=(6, 4))
        norms = np.array([h["grad_norm_b"] for h in history])
        for l in range(norms.shape[1]):
            ax.semilogy(epochs, norms[:, l], label=f"layer {l + 1}")
        ax.set(xlabel="epoch", ylabel="‖∂C/∂b‖", title="speed of learning per layer")
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / "grad_norms.png", dpi=100)
        plt.close(fig)
        written.append("grad_norms.png")
    return written
