"""JAX contenders: the same net, data, initial weights, optimiser and schedule,
written the way a JAX user who cares about speed writes them.

    jax-cpu        the whole epoch is one compiled XLA program: `jax.jit` over a
                   `lax.scan` of the training step; the data live on the device,
                   the epoch's permutation is drawn inside, each step gathers its
                   rows from it; the short last batch is one more step inside the
                   same program (static shapes), so every sample is seen, as in
                   fastbp's and torch's epochs
    jax-cpu-step   the same step jitted on its own, called from a Python loop
    jax-gpu        jax-cpu's code on the GPU (device chosen, nothing else changed)

Semantics, matched to fastbp's (fastbp/nn/optim.py): momentum v ← μv − η g,
p ← p + v; Adam with bias correction, p ← p − η m̂ / (√v̂ + ε); weight decay
λ' w added to the weight gradients only; the loss is the batch mean of the
log-likelihood of the softmax; He (relu) or N(0, 1/n_in) (sigmoid) initial
weights, the very arrays fastbp draws for the seed; products in full float32
(Precision.HIGHEST, so no TF32 on a GPU). lr per step from fastbp's own
schedule function, computed on the host before the epoch.

Threads: XLA's CPU runtime sizes its thread pool from the cores the process
may run on and has no flag for "N threads" (only one thread, with
--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1). So the
worker process is pinned to `spec.threads` cores (os.sched_setaffinity)
before jax is imported, and given the one-thread flags when that is 1. With
spec.threads equal to the usable cores (2 on the machines here) nothing is
changed: XLA uses both cores, as torch and OpenBLAS do.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from functools import lru_cache

import numpy as np

from .interface import Contender, dataset, fastbp_init, fastbp_schedule, floats

ADAM = (0.9, 0.999, 1e-8)  # fastbp's beta1, beta2, eps defaults (fastbp.nn.optim.PARAMS)


def _cap_threads(n):
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if 0 < n < len(cores):
        os.sched_setaffinity(0, cores[:n])
    if n == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()


@lru_cache(maxsize=None)
def _programs(spec, n, image_shape):
    """The jitted whole epoch, step, last step, permutation and test count for this recipe."""
    import jax
    import jax.numpy as jnp

    lax = jax.lax
    act = jax.nn.relu if spec.hidden == "relu" else jax.nn.sigmoid
    hi, p_drop, s = lax.Precision.HIGHEST, spec.dropout, spec.shift

    def forward(params, x, key=None):
        for k, (w, b) in enumerate(params[:-1]):
            x = act(jnp.dot(x, w, precision=hi) + b)
            if key is not None and p_drop:
                keep = jax.random.bernoulli(jax.random.fold_in(key, k), 1.0 - p_drop, x.shape)
                x = jnp.where(keep, x / (1.0 - p_drop), 0.0)
        w, b = params[-1]
        return jnp.dot(x, w, precision=hi) + b

    def loss(params, x, labels, key):
        z = forward(params, x, key)
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, labels[:, None], axis=1)[:, 0])

    def shifted(x, key):  # each image by its own (dy, dx) in [-s, s], zeros filling the border
        (h, w), n = image_shape, x.shape[0]
        canvas = jnp.pad(x.reshape(n, h, w), ((0, 0), (s, s), (s, s)))
        dy, dx = jax.random.randint(key, (2, n), 0, 2 * s + 1)
        r, c = (dy[:, None] + jnp.arange(h))[:, :, None], (dx[:, None] + jnp.arange(w))[:, None, :]
        return canvas[jnp.arange(n)[:, None, None], r, c].reshape(n, h * w)

    def update(params, opt, grads, lr):
        if spec.weight_decay:  # weights only, as fastbp
            grads = [(gw + spec.weight_decay * w, gb) for (gw, gb), (w, _) in zip(grads, params)]
        if spec.optimizer == "sgd":
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), opt
        if spec.optimizer == "momentum":
            (v,) = opt
            v = jax.tree_util.tree_map(lambda v, g: spec.momentum * v - lr * g, v, grads)
            return jax.tree_util.tree_map(jnp.add, params, v), (v,)
        (m, v, t), (b1, b2, eps) = opt, ADAM
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        c1, c2 = 1 - b1**t, 1 - b2**t
        params = jax.tree_util.tree_map(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v)
        return params, (m, v, t)

    def step(state, X, y, rows, lr, key):
        params, opt = state
        x = X[rows]
        if s:
            x = shifted(x, jax.random.fold_in(key, 1))
        grads = jax.grad(loss)(params, x, y[rows], jax.random.fold_in(key, 2))
        return update(params, opt, grads, lr)

    B = spec.batch
    n_full, tail = divmod(n, B)

    def one_step(state, X, y, perm, b, lr, key):  # batch b of the epoch: rows perm[b B : b B + B]
        rows = lax.dynamic_slice(perm, (b * B,), (B,))
        return step(state, X, y, rows, lr, jax.random.fold_in(key, b))

    def last_step(state, X, y, perm, lr, key):  # the short last batch: its own static shape
        return step(state, X, y, perm[n_full * B :], lr, jax.random.fold_in(key, n_full))

    def permutation(key):
        return jax.random.permutation(key, n)

    def whole_epoch(state, X, y, key, lrs):
        perm = permutation(key)

        def body(state, b):
            return one_step(state, X, y, perm, b, lrs[b], key), None

        state, _ = lax.scan(body, state, jnp.arange(n_full))
        if tail:
            state = last_step(state, X, y, perm, lrs[n_full], key)
        return state

    def correct(params, X, y):
        return jnp.sum(jnp.argmax(forward(params, X), axis=1) == y)

    # buffer donation: the old state's memory is reused (a no-op, warned about, where a
    # platform lacks it; the calls silence that warning)
    return (jax.jit(whole_epoch, donate_argnums=0), jax.jit(one_step, donate_argnums=0),
            jax.jit(last_step, donate_argnums=0), jax.jit(permutation), jax.jit(correct))


class JaxCPU(Contender):
    name = "jax-cpu"
    needs = ("jax",)
    platform = "cpu"
    compiled_epoch = True

    @classmethod
    def prepare(cls, spec):
        if cls.device == "cpu":
            os.environ["JAX_PLATFORMS"] = "cpu"  # on a GPU host too: the CPU row stays on the CPU
            _cap_threads(spec.threads)
        else:
            os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # peak memory is what it uses, not 75% of the card
        super().prepare(spec)

    def __init__(self, spec):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.dev = jax.devices(self.platform)[0]
        X, y, X_test, y_test = floats(spec)
        put = lambda a: jax.device_put(a, self.dev)  # noqa: E731
        self.X, self.y = put(X), put(y.astype(np.int32))
        self.X_test, self.y_test = put(X_test), put(y_test.astype(np.int32))
        self.samples, self.B, self.spec = len(y), spec.batch, spec
        self.n_full, self.tail = divmod(self.samples, self.B)
        self.steps_per_epoch = self.n_full + (1 if self.tail else 0)
        params = [(put(w.T.copy()), put(b)) for w, b in fastbp_init(spec)]  # W as (n_in, n_out): z = a W + b
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
        opt = {"sgd": (), "momentum": (zeros(),), "adam": (zeros(), zeros(), put(np.float32(0)))}[spec.optimizer]
        self.state = (params, opt)
        self.lr_at = fastbp_schedule(spec, self.steps_per_epoch)
        self.constant_lr = spec.schedule == "constant"
        self.lrs = np.full(self.steps_per_epoch, spec.lr, np.float32)
        self.step_count, self.epochs_done = 0, 0
        self.key = jax.random.PRNGKey(spec.seed)
        image_shape = dataset(spec.dataset).image_shape
        if spec.shift and not image_shape:
            raise ValueError("shift needs 2-D images, and this data set has none")
        # What the programs depend on, and nothing else: a fresh net of the same recipe (each
        # time-to-target repetition) reuses the programs the warm-up compiled.
        key = replace(spec, lr=0.0, schedule="constant", epochs=1, rep_samples=0, subset=0, seed=0, threads=0)
        self._epoch, self._step, self._last, self._perm, self._correct = _programs(key, self.samples, image_shape)

    def _epoch_lrs(self):
        """The epoch's learning rates, one per step, on the host (as torch's loop sets them)."""
        if self.constant_lr:
            return self.lrs
        first = self.step_count
        return np.array([self.lr_at(first + k) for k in range(self.steps_per_epoch)], np.float32)

    def epoch(self):
        jax = self.jax
        key = jax.random.fold_in(self.key, self.epochs_done)
        lrs = self._epoch_lrs()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.compiled_epoch:
                self.state = self._epoch(self.state, self.X, self.y, key, lrs)
            else:
                perm = self._perm(key)
                for b in range(self.n_full):
                    self.state = self._step(self.state, self.X, self.y, perm, b, lrs[b], key)
                if self.tail:
                    self.state = self._last(self.state, self.X, self.y, perm, lrs[self.n_full], key)
        jax.block_until_ready(self.state)
        self.step_count += self.steps_per_epoch
        self.epochs_done += 1

    def accuracy(self):
        return int(self._correct(self.state[0], self.X_test, self.y_test)) / len(self.y_test)

    def gpu_peak_mb(self):
        if self.device != "gpu":
            return None
        stats = self.dev.memory_stats() or {}
        return stats["peak_bytes_in_use"] / 2**20 if "peak_bytes_in_use" in stats else None


class JaxCPUStep(JaxCPU):
    name = "jax-cpu-step"
    compiled_epoch = False


class JaxGPU(JaxCPU):
    name = "jax-gpu"
    device = "gpu"
    platform = "gpu"
