"""fastbp: hand-written mini-batch backpropagation on numpy or cupy.

The pieces a training script needs are importable from here (see the
README's "A training loop of your own"):

    load_dataset, to_device        a data set, then its splits on the device
    Network                        forward, backward (BP1-BP4), the flat buffers
    optimizer, schedule            by name, over the network's flat buffers
    Batches, evaluate              shuffled mini-batches; (cost, accuracy)
    save_checkpoint, load_checkpoint
    Trainer, train, build, load_config   the whole run from a config
    FastBPClassifier, FastBPRegressor   the scikit-learn estimators
    HealthWarning                  what the training-health checks warn with
"""

__version__ = "0.1.0"

_WHERE = {
    "Network": ("fastbp.nn.network", "Network"),
    "optimizer": ("fastbp.nn.optim", "make"),
    "schedule": ("fastbp.nn.schedules", "make"),
    "gradcheck": ("fastbp.nn.gradcheck", None),
    "get_backend": ("fastbp.backend", "get_backend"),
    "load_dataset": ("fastbp.data", "load_dataset"),
    "to_device": ("fastbp.train.build", "to_device"),
    "build": ("fastbp.train.build", "build"),
    "Batches": ("fastbp.train.loop", "Batches"),
    "TrainState": ("fastbp.train.loop", "TrainState"),
    "train_epoch": ("fastbp.train.loop", "train_epoch"),
    "evaluate": ("fastbp.train.loop", "evaluate"),
    "save_checkpoint": ("fastbp.train.checkpoint", "save"),
    "load_checkpoint": ("fastbp.train.checkpoint", "load"),
    "load_config": ("fastbp.train.config", "load"),
    "Trainer": ("fastbp.train.trainer", "Trainer"),
    "train": ("fastbp.train.trainer", "train"),
    "FastBPClassifier": ("fastbp.estimator", "FastBPClassifier"),
    "FastBPRegressor": ("fastbp.estimator", "FastBPRegressor"),
    "HealthWarning": ("fastbp.errors", "HealthWarning"),
}
__all__ = list(_WHERE)


def __getattr__(name):
    # Imported on first use, so that `import fastbp` stays light.
    if name not in _WHERE:
        raise AttributeError(f"module 'fastbp' has no attribute {name!r}")
    import importlib

    module, attr = _WHERE[name]
    module = importlib.import_module(module)
    return module if attr is None else getattr(module, attr)
