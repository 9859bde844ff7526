"""fastbp: hand-written mini-batch backpropagation on numpy or cupy."""

__version__ = "0.1.0"

__all__ = ["Network", "FastBPClassifier", "FastBPRegressor", "Trainer", "train", "get_backend", "gradcheck"]


def __getattr__(name):
    # Imported on first use, so that `import fastbp` stays light.
    if name == "Network":
        from .nn.network import Network

        return Network
    if name in ("FastBPClassifier", "FastBPRegressor"):
        from . import estimator

        return getattr(estimator, name)
    if name in ("Trainer", "train"):
        from .train import trainer

        return getattr(trainer, name)
    if name == "get_backend":
        from .backend import get_backend

        return get_backend
    if name == "gradcheck":
        from .nn import gradcheck

        return gradcheck
    raise AttributeError(f"module 'fastbp' has no attribute {name!r}")
