"""The contenders, one class each against the interface of interface.py.

All train the same net: `spec.sizes`, `spec.hidden` hidden units, a softmax
output with the log-likelihood cost (categorical cross-entropy), float32.
Defining a class with a `name` registers it; this module imports every module
that defines runners (flops.py's ceilings, jaxnet.py's JAX contenders), so
CONTENDERS, CEILINGS and GPU below hold them all.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from dataclasses import replace

import numpy as np

from .interface import INIT, REGISTRY, Contender, Spec, dataset, fastbp_init, fastbp_schedule, floats, refuse  # noqa: F401 (Spec, dataset: the suite reads them here)


class FastbpNumpy(Contender):
    """fastbp's training loop (`build` from a config, then `loop.train_epoch`),
    timed on one epoch with no evaluation."""

    name = "fastbp-numpy"
    baseline = True
    preload = ("fastbp.train.build",)
    backend = "numpy"

    def __init__(self, spec):
        from fastbp.train import config
        from fastbp.train.build import build
        from fastbp.train.loop import TrainState

        optimizer = {"name": spec.optimizer, "lr": spec.lr}
        if spec.optimizer != "adam":  # momentum is only a key of the momentum optimisers
            optimizer["momentum"] = spec.momentum
        if spec.weight_decay:
            optimizer["weight_decay"] = spec.weight_decay
        cfg = config.merge(config.defaults(), {
            "data": {"name": spec.dataset, "validation": 0, "train_limit": spec.rep_samples, "shift": spec.shift},
            "model": {"sizes": list(spec.sizes), "hidden": spec.hidden, "output": "softmax",
                      "cost": "log_likelihood", "init": INIT[spec.hidden], "dropout": spec.dropout},
            "optimizer": optimizer,
            "schedule": {"name": spec.schedule},
            "train": {"batch_size": spec.batch, "epochs": spec.epochs, "seed": spec.seed, "backend": self.backend},
            "output": {"grad_norms": False, "plots": False},
        })
        self.setup = build(config.validate(cfg), dataset(spec.dataset))
        self.samples = self.setup.data["train"].n
        self.state = TrainState()

    def epoch(self):
        from fastbp.train import loop

        s = self.setup
        loop.train_epoch(s.net, s.opt, s.lr_at, s.batches, self.state)
        self.state.next_epoch()

    def accuracy(self):
        from fastbp.train import loop

        return loop.evaluate(self.setup.net, self.setup.data["test"])[1]


class FastbpNumpyPlain(FastbpNumpy):
    """fastbp-numpy without jit.py's compiled step and updates (numba not
    installed, or FASTBP_JIT=0): numpy's calls alone."""

    name = "fastbp-numpy-plain"
    baseline = False

    def __init__(self, spec):
        with _numpy_only():
            super().__init__(spec)

    def epoch(self):
        with _numpy_only():
            super().epoch()


@contextlib.contextmanager
def _numpy_only():
    from fastbp.backend import get_backend

    bk = get_backend("numpy")
    was, bk.jit = bk.jit, False
    try:
        yield
    finally:
        bk.jit = was


def _cupy_peak_mb():
    import cupy

    return cupy.get_default_memory_pool().total_bytes() / 2**20


class FastbpCupy(FastbpNumpy):
    name = "fastbp-cupy"
    device = "gpu"
    needs = ("cupy",)
    preload = ("fastbp.train.build", "cupy")
    backend = "cupy"

    def gpu_peak_mb(self):
        return _cupy_peak_mb()


class Sklearn(Contender):
    """MLPClassifier, one epoch per partial_fit call; no early stopping, no
    tolerance stop (partial_fit runs exactly one epoch), shuffling on."""

    name = "sklearn"
    needs = ("sklearn",)
    preload = ("sklearn.neural_network",)
    recipe = "sklearn"

    def __init__(self, spec):
        from sklearn.neural_network import MLPClassifier

        if spec.schedule != "constant":
            raise ValueError("scikit-learn has no learning-rate schedule of fastbp's kinds")
        refuse(self.name, spec)
        self.X, self.y, self.X_test, self.y_test = floats(spec)
        self.samples, self.classes = len(self.y), np.arange(dataset(spec.dataset).n_classes)
        if spec.optimizer == "adam":
            solver = {"solver": "adam"}
        else:
            mu = spec.momentum if spec.optimizer == "momentum" else 0.0
            solver = {"solver": "sgd", "momentum": mu, "nesterovs_momentum": False, "learning_rate": "constant"}
        self.model = MLPClassifier(
            hidden_layer_sizes=tuple(spec.sizes[1:-1]), activation={"relu": "relu", "sigmoid": "logistic"}[spec.hidden],
            batch_size=spec.batch, learning_rate_init=spec.lr, alpha=0.0, shuffle=True, random_state=spec.seed,
            tol=0.0, n_iter_no_change=10**9, early_stopping=False, max_iter=1, **solver,
        )

    def epoch(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(self.X, self.y, classes=self.classes)

    def accuracy(self):
        return float(self.model.score(self.X_test, self.y_test))


class FastbpEstimator(Sklearn):
    """FastBPClassifier with the very parameters of the sklearn row, one epoch
    per partial_fit call (the path fit takes, epoch by epoch): the one-line swap."""

    name = "fastbp-estimator"
    preload = ("fastbp.estimator",)
    recipe = None
    versus = "sklearn"  # FastBPClassifier.fit against MLPClassifier.fit
    backend = "numpy"

    def __init__(self, spec):
        from fastbp.estimator import FastBPClassifier

        super().__init__(spec)
        self.model = FastBPClassifier(**self.model.get_params(), backend=self.backend)


class FastbpEstimatorCupy(FastbpEstimator):
    name = "fastbp-estimator-cupy"
    device = "gpu"
    needs = ("sklearn", "cupy")
    preload = ("fastbp.estimator", "cupy")
    backend = "cupy"

    def gpu_peak_mb(self):
        return _cupy_peak_mb()


class TorchCPU(Contender):
    """An nn.Linear stack started from fastbp's initial weights; the data already
    float tensors on the device; a torch.randperm per epoch sliced into index
    batches (no DataLoader); torch.optim's own SGD/Adam (weight decay on the
    weights only, as fastbp)."""

    name = "torch-cpu"
    needs = ("torch",)
    where = "cpu"  # torch's device string

    def __init__(self, spec):
        import torch

        self.torch, self.batch = torch, spec.batch
        torch.set_num_threads(spec.threads)
        torch.manual_seed(spec.seed)
        X, y, X_test, y_test = floats(spec)
        self.X, self.y, self.X_test, self.y_test = (torch.from_numpy(a).to(self.where) for a in (X, y, X_test, y_test))
        self.samples = len(y)
        layers = []
        for w, b in fastbp_init(spec):
            linear = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w))
                linear.bias.copy_(torch.from_numpy(b))
            act = torch.nn.ReLU() if spec.hidden == "relu" else torch.nn.Sigmoid()
            layers += [linear, act] + ([torch.nn.Dropout(spec.dropout)] if spec.dropout else [])
        self.net = torch.nn.Sequential(*layers[: -2 if spec.dropout else -1]).to(self.where).train()
        weights = [m.weight for m in self.net if isinstance(m, torch.nn.Linear)]
        biases = [m.bias for m in self.net if isinstance(m, torch.nn.Linear)]
        groups = [{"params": weights, "weight_decay": spec.weight_decay}, {"params": biases, "weight_decay": 0.0}]
        if spec.optimizer == "adam":
            self.opt = torch.optim.Adam(groups, lr=spec.lr)
        else:
            mu = spec.momentum if spec.optimizer == "momentum" else 0.0
            self.opt = torch.optim.SGD(groups, lr=spec.lr, momentum=mu)
        self.loss = torch.nn.CrossEntropyLoss()  # softmax + log-likelihood, batch mean
        per_epoch = -(-self.samples // spec.batch)
        self.lr_at = None if spec.schedule == "constant" else fastbp_schedule(spec, per_epoch)
        self.step = 0
        self.shift = spec.shift and _TorchShift(torch, dataset(spec.dataset).image_shape, spec.shift, self.where)

    def epoch(self):
        B = self.batch
        perm = self.torch.randperm(self.samples, device=self.where)
        for i in range(0, self.samples, B):
            idx = perm[i : i + B]
            if self.lr_at is not None:
                for group in self.opt.param_groups:
                    group["lr"] = self.lr_at(self.step)
            self.opt.zero_grad(set_to_none=True)
            x = self.X[idx] if not self.shift else self.shift(self.X[idx])
            self.loss(self.net(x), self.y[idx]).backward()
            self.opt.step()
            self.step += 1
        self.synchronize()

    def synchronize(self):
        pass

    def accuracy(self):
        self.net.eval()
        with self.torch.no_grad():
            acc = float((self.net(self.X_test).argmax(1) == self.y_test).float().mean())
        self.net.train()
        return acc


class _TorchShift:
    """Each image moved by its own (dy, dx) in [-s, s], zeros filling the border (as fastbp's data.shift)."""

    def __init__(self, torch, image_shape, s, device):
        if not image_shape:
            raise ValueError("shift needs 2-D images, and this data set has none")
        (h, w), self.torch, self.s = image_shape, torch, s
        self.hw, self.rows, self.cols = (h, w), torch.arange(h, device=device), torch.arange(w, device=device)

    def __call__(self, x):
        torch, s, (h, w), n = self.torch, self.s, self.hw, x.shape[0]
        canvas = torch.nn.functional.pad(x.view(n, h, w), (s, s, s, s))
        dy, dx = (torch.randint(0, 2 * s + 1, (n,), device=x.device) for _ in range(2))
        r, c = (dy[:, None] + self.rows)[:, :, None], (dx[:, None] + self.cols)[:, None, :]
        return canvas[torch.arange(n, device=x.device)[:, None, None], r, c].reshape(n, h * w)


class TorchCUDA(TorchCPU):
    name = "torch-cuda"
    device = "gpu"
    where = "cuda"

    def synchronize(self):
        self.torch.cuda.synchronize()

    def gpu_peak_mb(self):
        return self.torch.cuda.max_memory_allocated() / 2**20


class PerExample(Contender):
    """Nielsen's network.py: one sample at a time as column vectors, the
    gradients summed over the mini-batch in Python lists, numpy float32.
    Timed on `spec.subset` samples; the harness scales the time to an epoch."""

    name = "per-example"
    recipe = None  # it cannot reach 98% in a sensible time

    def __init__(self, spec):
        if spec.optimizer == "adam":
            raise ValueError("the per-example loop does plain SGD or momentum only")
        refuse(self.name, spec)
        n = min(spec.subset, spec.rep_samples or spec.subset)
        X, y, _, _ = floats(replace(spec, rep_samples=n))
        n, eye = len(y), np.eye(spec.sizes[-1], dtype=np.float32)
        self.training_data = [(X[i].reshape(-1, 1), eye[y[i]].reshape(-1, 1)) for i in range(n)]
        self.samples, self.batch, self.lr = n, spec.batch, spec.lr
        self.mu = spec.momentum if spec.optimizer == "momentum" else 0.0
        drawn = fastbp_init(spec)
        self.weights = [w for w, _ in drawn]
        self.biases = [b.reshape(-1, 1) for _, b in drawn]
        self.vw = [np.zeros_like(w) for w in self.weights]
        self.vb = [np.zeros_like(b) for b in self.biases]
        self.relu = spec.hidden == "relu"
    def act(self, z):
        return np.maximum(z, 0) if self.relu else 1.0 / (1.0 + np.exp(-z))

    def act_prime(self, z):
        if self.relu:
            return (z > 0).astype(np.float32)
        s = self.act(z)
        return s * (1 - s)

    def epoch(self):
        random.shuffle(self.training_data)
        for k in range(0, self.samples, self.batch):
            self.update_mini_batch(self.training_data[k : k + self.batch])

    def update_mini_batch(self, mini_batch):
        nabla_b = [np.zeros(b.shape, np.float32) for b in self.biases]
        nabla_w = [np.zeros(w.shape, np.float32) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        eta = self.lr / len(mini_batch)
        self.vw = [self.mu * v - eta * nw for v, nw in zip(self.vw, nabla_w)]
        self.vb = [self.mu * v - eta * nb for v, nb in zip(self.vb, nabla_b)]
        self.weights = [w + v for w, v in zip(self.weights, self.vw)]
        self.biases = [b + v for b, v in zip(self.biases, self.vb)]

    def backprop(self, x, y):
        nabla_b, nabla_w = [None] * len(self.biases), [None] * len(self.weights)
        activation, activations, zs = x, [x], []
        for layer, (b, w) in enumerate(zip(self.biases, self.weights)):
            z = np.dot(w, activation) + b
            zs.append(z)
            if layer == len(self.weights) - 1:  # softmax output
                e = np.exp(z - z.max())
                activation = e / e.sum()
            else:
                activation = self.act(z)
            activations.append(activation)
        delta = activations[-1] - y  # softmax + log-likelihood: δ^L = a − y
        nabla_b[-1], nabla_w[-1] = delta, np.dot(delta, activations[-2].transpose())
        for l in range(2, len(self.weights) + 1):
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * self.act_prime(zs[-l])
            nabla_b[-l], nabla_w[-l] = delta, np.dot(delta, activations[-l - 1].transpose())
        return nabla_b, nabla_w


# The modules below define runners too; imported here, after the classes above, so that
# the registry keeps this order (fastbp first) and holds every runner.
from . import flops, jaxnet  # noqa: E402, F401

CONTENDERS = {n: c for n, c in REGISTRY.items() if c.role == "contender"}
CEILINGS = {n: c for n, c in REGISTRY.items() if c.role == "ceiling"}  # reference rows, not contenders
RUNNERS = {**CONTENDERS, **CEILINGS}
GPU = tuple(n for n, c in RUNNERS.items() if c.device == "gpu")


def on_gpu(name):
    return RUNNERS[name].device == "gpu" if name in RUNNERS else False


def _on_device_of(name, pick):
    device = "gpu" if on_gpu(name) else "cpu"
    return next((n for n, c in RUNNERS.items() if c.device == device and pick(c)), None)


def fastbp_for(name):
    """The fastbp contender a row is compared with: the baseline on its device."""
    return _on_device_of(name, lambda c: c.baseline)


def ceiling_for(name):
    """The GEMMs-alone row on its device."""
    return _on_device_of(name, lambda c: c.role == "ceiling")


def unavailable(name):
    """Why a runner cannot run here, or None if it can."""
    if name not in RUNNERS:
        return f"unknown contender (choose from {', '.join(CONTENDERS)})"
    return RUNNERS[name].unavailable()


def prepare(name, spec):
    """Import what the runner needs and load the raw data set: the baseline
    that its memory is measured from."""
    RUNNERS[name].prepare(spec)


def make(name, spec):
    return RUNNERS[name](spec)
