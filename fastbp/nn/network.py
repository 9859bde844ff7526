"""A fully connected network and its backpropagation, written by hand in matrix
form over a whole mini-batch.

Layout. Rows are samples: a mini-batch X is an (n, n_in) array, so Nielsen's
column equations z = W a + b become z = a Wᵀ + b row by row. W^l keeps
Nielsen's shape (n_out, n_in); `W.T` is a free view and BLAS does the
transpose. All weights and then all biases live in ONE flat buffer
`params`, and their gradients in a second one, `grads` (the llm.c layout):
per-layer arrays are views into them, so an optimiser step is a handful of
whole-buffer operations whatever the depth, and weight decay is one slice
`params[:n_weights]`.

Speed. Per-layer z, a and δ buffers are allocated once for the largest batch
seen and reused (a smaller batch uses the leading rows, still contiguous);
every operation writes in place (`out=`).

The four equations, over a batch (Δ^l holds δ^l for every sample, one per row):
    BP1  Δ^L = ∇_a C ⊙ σ'(Z^L)             -> costs.*.delta, in `backward`
    BP2  Δ^l = (Δ^{l+1} W^{l+1}) ⊙ σ'(Z^l)  (row form of ((W^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l))
    BP3  ∂C/∂b^l = Σ_rows Δ^l
    BP4  ∂C/∂W^l = (Δ^l)ᵀ A^{l−1}          (row form of δ^l (a^{l−1})ᵀ, summed)
C is the mean cost over the batch, so Δ^L carries the factor 1/n.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..backend import get_backend, resolve_dtype
from . import activations, costs
from .fused import FusedLayers
from . import init as initialisers


def layout(sizes):
    """Where each layer lives in the flat parameter buffer: all weights, then
    all biases. Returns ([(w_slice, (n_out, n_in), b_slice) per layer],
    n_weights, n_params). The one place that knows the layout: the network's
    views, its gradients, the optimiser moments, checkpoints and exports use it."""
    shapes = [(int(o), int(i)) for o, i in zip(sizes[1:], sizes[:-1])]
    n_weights = sum(o * i for o, i in shapes)
    layers, w_at, b_at = [], 0, n_weights
    for n_out, n_in in shapes:
        layers.append((slice(w_at, w_at + n_out * n_in), (n_out, n_in), slice(b_at, b_at + n_out)))
        w_at, b_at = w_at + n_out * n_in, b_at + n_out
    return layers, n_weights, b_at


def views(flat, sizes):
    """Per-layer (W^l, b^l) views into a flat buffer laid out as `layout` says."""
    layers = layout(sizes)[0]
    return [flat[w].reshape(shape) for w, shape, _ in layers], [flat[b] for _, _, b in layers]


class _Buffers:
    """Per-layer work arrays for batches of up to `capacity` rows.

    `rows(n)` gives the same arrays cut to their first n rows, made once per
    n and kept: at small batches the step is bound by Python overhead, and
    making some 25 view objects per step is a measurable part of it."""

    NAMES = ("z", "a", "delta", "work", "mask", "dropped")

    def __init__(self, xp, sizes, capacity, dtype, dropout):
        shapes = [(capacity, n) for n in sizes[1:]]
        self.capacity = capacity
        self.log_norm = xp.empty((capacity, 1), dtype)  # a softmax output's ln Σ e^z per row
        self.z = [xp.empty(s, dtype) for s in shapes]
        self.a = [xp.empty(s, dtype) for s in shapes]
        self.delta = [xp.empty(s, dtype) for s in shapes]
        self.work = [xp.empty(s, dtype) for s in shapes]
        hidden = shapes[:-1] if dropout else []
        self.mask = [xp.empty(s, dtype) for s in hidden]
        self.dropped = [xp.empty(s, dtype) for s in hidden]  # a ⊙ mask, fed forward
        self._rows = {}

    def rows(self, n):
        cut = self._rows.get(n)
        if cut is None:
            if len(self._rows) > 8:  # a caller cycling through many sizes: don't hoard views
                self._rows.clear()
            cut = self._rows[n] = SimpleNamespace(**{k: [x[:n] for x in getattr(self, k)] for k in self.NAMES})
            cut.log_norm = self.log_norm[:n]
        return cut


class Network:
    """A fully connected feed-forward network.

    sizes      layer sizes, input first: [784, 100, 10]
    hidden     hidden activation: sigmoid, tanh, relu, leaky_relu, identity
               (activations.names("hidden"))
    output     output activation: sigmoid, softmax, identity, exp, tanh, relu
               (activations.names("output"))
    cost       quadratic, cross_entropy (sigmoid), log_likelihood (softmax),
               poisson (exp) (costs.RECORDS, each with the outputs it pairs with)
    init       normal, normal_scaled, glorot, he
    backend    numpy, cupy, auto
    dtype      float32 (default) or float64
    dropout    probability of dropping each hidden unit while training
    """

    def __init__(
        self,
        sizes,
        hidden="sigmoid",
        output="sigmoid",
        cost="cross_entropy",
        init="normal_scaled",
        backend="numpy",
        dtype="float32",
        seed=0,
        leaky_slope=0.01,
        dropout=0.0,
    ):
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least two positive layer sizes, got {sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.sizes = sizes
        self.hidden_name, self.output_name, self.cost_name = hidden, output, cost
        self.init_name, self.leaky_slope, self.dropout = init, leaky_slope, dropout
        self.hidden = activations.make(hidden, "hidden", leaky_slope)
        self.output = activations.make(output, "output", leaky_slope)
        self.cost = costs.make(cost, output)
        self.bk = get_backend(backend)
        self.xp = self.bk.xp
        self.dtype = resolve_dtype(dtype)
        self.fused = FusedLayers.make(self.bk, self.hidden, self.output, self.cost)  # None on numpy

        _, self.n_weights, self.n_params = layout(sizes)
        self.params = self.xp.zeros(self.n_params, self.dtype)
        self.grads = self.xp.zeros(self.n_params, self.dtype)
        self.weights, self.biases = views(self.params, sizes)
        self.grad_weights, self.grad_biases = views(self.grads, sizes)

        draw = initialisers.get(init)
        rng = np.random.default_rng(seed)
        for W, b in zip(self.weights, self.biases):
            w0, b0 = draw(rng, W.shape[1], W.shape[0])
            W[...] = self.xp.asarray(w0, dtype=self.dtype)
            b[...] = self.xp.asarray(b0, dtype=self.dtype)
        self._buf = {True: None, False: None}  # training and inference buffers
        self._drop_key, self._drop_count = None, 0  # dropout's stream, and the masks drawn from it
        self._dropped = False  # did the last training forward pass apply dropout?
        # What the last forward passes left, for the calls that read them:
        self._out = None  # (z^L, a^L, log_norm or None) of the last forward, for batch_cost
        self._trained = None  # rows of the last training forward, for backward
        # Data parallelism: (lo, total) when a training batch is rows lo, lo+1, ... of a batch of
        # `total` rows split over processes: this process draws its rows' part of the masks
        # one process would draw for all total rows.
        self.drop_share = None

    @property
    def n_layers(self):
        """Number of weight layers L (the input layer has none)."""
        return len(self.sizes) - 1

    def buffers(self, n, train=True):
        """Work arrays for a batch of n rows. Training and inference keep
        separate sets, so evaluating never moves the training buffers."""
        buf = self._buf[train]
        if buf is None or buf.capacity < n:
            buf = self._buf[train] = _Buffers(self.xp, self.sizes, n, self.dtype, train and self.dropout > 0)
        return buf

    def seed_dropout(self, seed, skip=0):
        """Dropout masks come from SplitMix64's stream seeded by `seed` (an int or
        a list of ints), mask k of a run from its outputs from k·2³² on
        (backend.uniform). `skip` batches had their masks drawn already (a resumed
        epoch): the next mask is found at once, on any backend, with no generator
        state to save."""
        self._drop_key = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
        self._drop_count = skip * (self.n_layers - 1)

    # ------------------------------------------------------------------
    def forward(self, X, train=False, drop=True):
        """Forward pass over a batch into the reusable buffers; returns a^L.

        z^l = a^{l−1} (W^l)ᵀ + b^l,  a^l = σ(z^l).
        train=True uses the training buffers that `backward` reads; then, with
        dropout > 0 and drop=True, each hidden a^l is multiplied by a fresh
        inverted-dropout mask before it feeds the next layer.
        """
        xp, bk, fused, n = self.xp, self.bk, self.fused, X.shape[0]
        buf = self.buffers(n, train)
        rows = buf.rows(n)
        a_prev = X
        last = self.n_layers - 1
        for l, (W, b) in enumerate(zip(self.weights, self.biases)):
            z, a = rows.z[l], rows.a[l]
            if l == 0 and not isinstance(X, xp.ndarray):
                z[...] = X @ W.T  # a scipy/cupyx sparse X: matmul takes dense arrays only
            else:
                bk.matmul(a_prev, W.T, out=z)
            if fused:  # the lines below as one kernel
                log_norm = fused.bias_activation(z, b, a, l == last, rows.log_norm)
            else:
                xp.add(z, b, out=z)
                if l < last:
                    self.hidden.forward(bk, z, a)
                elif isinstance(self.output, activations.Softmax):  # ln Σ e^z for the cost, on the way
                    log_norm = rows.log_norm
                    self.output.forward_log_norm(bk, z, a, log_norm)
                else:
                    self.output.forward(bk, z, a)
                    log_norm = None
            a_prev = a
            if l == last:
                self._out = (z, a, log_norm)
            elif train and drop and self.dropout:
                a_prev = self._drop(rows, l, a)
        if train:
            self._dropped = bool(drop and self.dropout)
            self._trained = n
        return a_prev

    def _drop(self, rows, l, a):
        xp, p = self.xp, self.dropout
        mask = self.draw_mask(rows, l)
        xp.greater_equal(mask, p, out=mask)  # keep with probability 1 − p
        xp.multiply(mask, 1.0 / (1.0 - p), out=mask)  # inverted: E[a ⊙ mask] = a
        return xp.multiply(a, mask, out=rows.dropped[l])

    def draw_mask(self, rows, l):
        """Uniform draws in [0, 1) into hidden layer l's mask: the batch's next mask
        of the dropout stream (with drop_share, this process's rows of the mask
        for the whole batch). Returns the mask."""
        if self._drop_key is None:
            self.seed_dropout(0)
        mask = rows.mask[l]
        lo = 0 if self.drop_share is None else self.drop_share[0]
        self.bk.uniform(self._drop_key, (self._drop_count << 32) + lo * ((mask.shape[1] + 1) // 2), mask)
        self._drop_count += 1
        return mask

    def backward(self, X, Y, sample_weight=None):
        """Backpropagate over the batch whose forward pass just ran.

        Fills `grads` (so grad_weights[l] = ∂C/∂W^l, grad_biases[l] = ∂C/∂b^l)
        with the gradient of the mean cost over the n rows of X, Y, or, given
        `sample_weight` (n,) on the device, of the weighted mean
        Σ_i w_i C_i / Σ_i w_i: the weights only scale the rows of δ^L.
        X may be a scipy/cupyx sparse matrix (only layer 1 reads it).
        """
        xp, bk, fused, n = self.xp, self.bk, self.fused, X.shape[0]
        if self._trained != n:
            raise RuntimeError(f"Network.backward of {n} rows: call forward(X, train=True) on the same batch first "
                               f"(backward reads what the training forward pass left; "
                               + (f"the last one had {self._trained} rows)" if self._trained else "there was none)"))
        rows, L = self._buf[True].rows(n), self.n_layers
        fed = rows.dropped if self._dropped else rows.a  # what each layer fed forward

        # BP1: δ^L = ∇_a C ⊙ σ'(z^L)  (a − y where the cost simplifies it)
        delta = rows.delta[L - 1]
        if sample_weight is not None:  # C = Σ w_i C_i / Σ w_i: the weights scale the rows of δ^L
            self.cost.delta(bk, rows.z[L - 1], rows.a[L - 1], Y, delta, self.output, rows.work[L - 1])
            xp.multiply(delta, (sample_weight / sample_weight.sum())[:, None], out=delta)
        elif fused:  # the two lines below as one kernel
            fused.output_delta(rows.z[L - 1], rows.a[L - 1], Y, delta, rows.work[L - 1], 1.0 / n)
        else:
            self.cost.delta(bk, rows.z[L - 1], rows.a[L - 1], Y, delta, self.output, rows.work[L - 1])
            xp.multiply(delta, 1.0 / n, out=delta)  # C is the batch mean

        for l in range(L - 1, -1, -1):
            a_prev = X if l == 0 else fed[l - 1]
            # BP3: ∂C/∂b^l = Σ_batch δ^l
            delta.sum(axis=0, out=self.grad_biases[l])
            # BP4: ∂C/∂W^l = δ^l (a^{l−1})ᵀ, summed over the batch as one GEMM
            if l == 0 and not isinstance(X, xp.ndarray):
                self.grad_weights[0][...] = (X.T @ delta).T  # sparse X: matmul takes dense arrays only
            else:
                bk.matmul(delta.T, a_prev, out=self.grad_weights[l])
            if l == 0:
                break  # no δ for the input layer
            # BP2: δ^{l−1} = ((W^l)ᵀ δ^l) ⊙ σ'(z^{l−1})
            below = rows.delta[l - 1]
            bk.matmul(delta, self.weights[l], out=below)
            if self._dropped:
                xp.multiply(below, rows.mask[l - 1], out=below)
            if fused:  # the line below as one kernel
                fused.activation_grad(below, rows.z[l - 1], rows.a[l - 1])
            else:
                self.hidden.backward(bk, below, rows.z[l - 1], rows.a[l - 1], rows.work[l - 1])
            delta = below
        return self.grads

    def gradient(self, X, Y, dropout=True, sample_weight=None):
        """∂C/∂params for the (weighted) mean cost over (X, Y): forward, then backward."""
        self.forward(X, train=True, drop=dropout)
        return self.backward(X, Y, sample_weight)

    # ------------------------------------------------------------------
    def feedforward(self, X, batch_size=4096):
        """Output activations a^L for any number of rows (device array). X may
        be a sparse matrix already on the device (backend.sparse_rows)."""
        if not hasattr(X, "tocsr"):  # dense; a scipy/cupyx sparse matrix stays sparse
            X = self.xp.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"input must have shape (n, {self.sizes[0]}), got {tuple(X.shape)}")
        out = self.xp.empty((X.shape[0], self.sizes[-1]), self.dtype)
        for i in range(0, X.shape[0], batch_size):
            out[i : i + batch_size] = self.forward(X[i : i + batch_size])
        return out

    def predict(self, X, batch_size=4096):
        """Class index per row (argmax of the output layer)."""
        return self.feedforward(X, batch_size).argmax(axis=1)

    @property
    def a_out(self):
        """a^L of the last forward pass (its buffer: read it before the next one)."""
        return self._last_out()[1]

    def _last_out(self):
        if self._out is None:
            raise RuntimeError("call Network.forward first: there is no forward pass to read the outputs of")
        return self._out

    def batch_cost(self, Y):
        """The cost summed over the rows of the last forward pass (a 0-d device array)."""
        z, a, log_norm = self._last_out()
        if Y.shape != a.shape:
            raise ValueError(f"Network.batch_cost: targets of shape {tuple(Y.shape)} for a forward pass of shape "
                             f"{tuple(a.shape)}: call forward on the batch these targets belong to first")
        return self.cost.fn(self.bk, z, a, Y, log_norm)

    def loss(self, X, Y, sample_weight=None):
        """Mean cost over the rows of (X, Y), weighted by `sample_weight` if
        given (Σ w_i C_i / Σ w_i), as a Python float. The weighted form takes
        the cost row by row: it is for gradient checks, not for training."""
        X = self.xp.asarray(X, dtype=self.dtype)
        Y = self.xp.asarray(Y, dtype=self.dtype)
        self.forward(X)
        if sample_weight is None:
            return float(self.batch_cost(Y)) / X.shape[0]
        w = self.xp.asarray(sample_weight, dtype=self.dtype)
        z, a, _ = self._out
        per_row = [float(self.cost.fn(self.bk, z[i : i + 1], a[i : i + 1], Y[i : i + 1])) for i in range(X.shape[0])]
        return float((w * self.xp.asarray(per_row, dtype=self.dtype)).sum() / w.sum())

    # ------------------------------------------------------------------
    def config(self):
        """Everything needed to rebuild this network (saved in checkpoints)."""
        return {
            "sizes": list(self.sizes),
            "hidden": self.hidden_name,
            "output": self.output_name,
            "cost": self.cost_name,
            "init": self.init_name,
            "leaky_slope": self.leaky_slope,
            "dropout": self.dropout,
            "dtype": np.dtype(self.dtype).name,
        }

    def get_params(self):
        """A host (numpy) copy of the flat parameter buffer."""
        return self.bk.to_numpy(self.params).copy()

    def set_params(self, flat):
        flat = np.asarray(flat)
        if flat.shape != (self.n_params,):
            raise ValueError(f"expected {self.n_params} parameters, got shape {flat.shape}")
        self.params[...] = self.xp.asarray(flat, dtype=self.dtype)

    def __repr__(self):
        return (
            f"Network({self.sizes}, hidden={self.hidden_name!r}, output={self.output_name!r}, "
            f"cost={self.cost_name!r}, backend={self.bk.name!r}, dtype={np.dtype(self.dtype).name!r})"
        )
