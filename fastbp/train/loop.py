"""The epoch loop and the metrics: what a training script needs besides a
Network and an optimiser.

    batches = Batches(data["train"], batch_size=32, seed=0)
    for b, x, y, labels in batches.epoch(epoch):    # shuffled, on the device
        net.gradient(x, y); opt.step(lr)
    loss, accuracy = evaluate(net, data["test"])

`train_epoch` is that loop with the bookkeeping a run needs (running loss and
accuracy, a divergence check, gradient clipping, progress, a clean stop
between batches), over a `TrainState` that checkpoints save and restore.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

from .. import jit
from ..errors import TrainingDiverged
from .augment import RandomShift


@dataclass
class TrainState:
    """Where a run is; checkpoints save exactly these fields."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches finished in the current epoch
    step: int = 0  # optimiser steps taken (the schedule's clock)
    loss_sum: float = 0.0  # the current epoch's summed training cost so far
    correct: int = 0
    seen: int = 0
    history: list = field(default_factory=list)  # one row per finished epoch
    best: dict | None = None  # {"score", "epoch", "since"} of the best epoch so far

    def next_epoch(self):
        self.epoch, self.batch, self.loss_sum, self.correct, self.seen = self.epoch + 1, 0, 0.0, 0, 0


class Batches:
    """The mini-batches of a Split, shuffled each epoch by a generator seeded
    with (seed, epoch), so that any epoch can be replayed or resumed exactly.

    Batches are gathered row by row from the stored (uint8) data through the
    epoch's permutation into buffers made once: cheaper than a shuffled copy
    of the whole set every epoch, and no second copy in memory. Where the
    backend asks for it (`gather_rows`), several consecutive batches are
    gathered and scaled at once, one call each for a whole chunk, and each
    batch is a view into the chunk: at small batches the per-call cost is
    most of a gather. The arrays yielded are those buffers: use them before
    asking for the next batch. shift > 0 moves each image by up to that many
    pixels (augment.RandomShift).
    """

    def __init__(self, split, batch_size, *, seed=0, shuffle=True, drop_last=False, shift=0, image_shape=None,
                 share=(0, 1)):
        bk, B = split.bk, batch_size
        xp = bk.xp
        self.split, self.batch_size, self.seed, self.shuffle = split, B, seed, shuffle
        n, width = split.n, split.X.shape[1]
        self.n_batches = n // B if drop_last else -(-n // B)
        # share = (r, R): this process yields only its part of each batch (rank r of R, data
        # parallelism): rows lo:hi of the batch of N rows, as parts[b] = (lo, hi, N) records.
        rank, ranks = share
        self.rows = R = -(-B // ranks)  # the most rows a batch has here
        self.parts = [(*part(min((b + 1) * B, n) - b * B, rank, ranks), min((b + 1) * B, n) - b * B)
                      for b in range(self.n_batches)]
        # Batches per gather: a share of a batch is not contiguous with the next one's.
        self.per_chunk = k = max(1, min(bk.gather_rows // B, self.n_batches)) if ranks == 1 else 1
        raw = xp.empty((k * R, width), split.X.dtype)
        scaled = xp.empty((k * R, width), split.scale.dtype)  # the network's dtype
        Y, labels = xp.empty((k * R, split.Y.shape[1]), split.Y.dtype), xp.empty(k * R, split.labels.dtype)
        self._chunk = raw, scaled, Y, labels
        self._full = [(scaled[t * R : (t + 1) * R], Y[t * R : (t + 1) * R], labels[t * R : (t + 1) * R]) for t in range(k)]
        self.shift = None
        if shift:
            if image_shape is None or len(image_shape) != 2 or image_shape[0] * image_shape[1] != width:
                raise ValueError(f"shift = {shift} needs 2-D images, and this data has no image shape")
            self.shift = RandomShift(split.bk, image_shape, shift, k * R, split.X.dtype)

    def __len__(self):
        return self.n_batches

    def epoch(self, epoch, start=0):
        """Yield (b, x, y, labels) for batches start, start+1, ... of `epoch`."""
        d, bk, xp = self.split, self.split.bk, self.split.bk.xp
        perm = bk.permutation(bk.rng([self.seed, epoch]), d.n) if self.shuffle else xp.arange(d.n)
        if self.shift is not None:
            self.shift.new_epoch(self.seed, epoch, d.n)
        B, R, k, full = self.batch_size, self.rows, self.per_chunk, self._full
        raw, scaled, Y, labels = self._chunk
        for first in range(start, self.n_batches, k):
            last = min(first + k, self.n_batches)
            i, j = first * B + self.parts[first][0], (last - 1) * B + self.parts[last - 1][1]  # this rank's rows
            m = j - i
            rows = perm[i:j]
            if m == k * R:  # a whole chunk: the buffers themselves
                r, x, y, lab = raw, scaled, Y, labels
            else:
                r, x, y, lab = raw[:m], scaled[:m], Y[:m], labels[:m]
            xp.take(d.Y, rows, axis=0, out=y)
            xp.take(d.labels, rows, axis=0, out=lab)
            if self.shift is None:
                bk.gather_scaled(d.X, rows, d.scale, r, x)
            else:  # moved as stored, then scaled
                xp.take(d.X, rows, axis=0, out=r)
                self.shift(r, i)
                bk.scale(r, d.scale, out=x)
            for t in range(last - first):
                if (t + 1) * R <= m:
                    yield (first + t, *full[t])
                else:  # the epoch's short last batch
                    yield first + t, x[t * R :], y[t * R :], lab[t * R :]


TALLY = 32  # batches between two folds of the running sums (and divergence checks)


def reference_step(net, x, y, labels, hits):
    """A batch's forward pass, summed cost, hits (argmax a^L == label, into
    `hits`) and backward pass (net.grads filled); returns the cost."""
    a = net.forward(x, train=True)
    cost = net.batch_cost(y)
    net.xp.equal(a.argmax(axis=1), labels, out=hits)
    net.backward(x, y)
    return cost


def step_of(net):
    """reference_step for this network, or its compiled twin (jit.py) where
    the backend runs one: the same values, one call."""
    compiled = jit.train_step(net) if net.bk.jit else None
    return compiled or partial(reference_step, net)


def part(n, rank, ranks):
    """Rank `rank`'s contiguous share (lo, hi) of n rows split over `ranks`
    ranks: sizes differ by at most one, the first n % ranks ranks one larger."""
    q, extra = divmod(n, ranks)
    lo = rank * q + min(rank, extra)
    return lo, lo + q + (rank < extra)


class OneProcess:
    """The reduction of a run in one process: nothing to reduce. Data
    parallelism hands train_epoch and evaluate another object with these
    methods (fastbp.dist.mpi.Reducer), which sums over the ranks."""

    rank, size, writer = 0, 1, True

    def gradient(self, grads, n, total):
        """Make `grads` (the mean over this rank's n of the batch's total rows)
        the gradient of the mean over all total rows, on every rank."""

    def sums(self, *values):
        """Each value summed over the ranks (Python numbers)."""
        return values

    def stop(self, flag):
        """Does any rank want to stop? (called once per batch on every rank)"""
        return flag

    def describe(self):
        return {}


ONE = OneProcess()


class _NoProgress:
    def start_epoch(self, epoch, batch=0):
        pass

    def due(self):
        return False


def train_epoch(net, opt, lr_at, batches, state, *, clip_norm=0.0, progress=None, should_stop=None, graph=None,
                reduce=ONE):
    """Train on the rest of epoch `state.epoch` (from batch `state.batch`),
    updating `state`. Returns True when the epoch is done, or False as soon as
    should_stop() says so between two batches (state then says where to go on).
    Raises TrainingDiverged on a non-finite loss. `graph`, a GraphStep of
    this net and these batches, replays each full batch's forward, cost,
    running sums and backward as one CUDA graph.

    `reduce` (data parallelism, fastbp.dist.mpi.Reducer): `batches` yields
    this rank's share of each batch; the gradient is summed over the ranks
    between backward and the optimiser step, the running sums at the end (and
    at a stop); each rank draws its rows of the whole batch's dropout masks,
    so that the run does not depend on the number of ranks."""
    bk, xp, epoch, B = net.bk, net.xp, state.epoch, batches.batch_size
    net.seed_dropout([batches.seed, epoch, 1], skip=state.batch)
    # Each batch's cost and hits go into buffers, folded into the running sums
    # every TALLY batches (where the CPU checks the loss too), at progress
    # updates, at a stop and at the end: two calls fewer per step.
    check_each = bk.cheap_sync  # else the loss is checked at progress updates and at the end
    loss_sum, correct, seen = state.loss_sum, state.correct, state.seen
    shared = reduce.size > 1
    if shared and reduce.rank != 0:  # the state's sums are over all ranks: rank 0 carries them
        loss_sum, correct, seen = 0.0, 0, 0
    # batches tallied..b are in costs and hits; a graph's batches count in its own sums (their hits stay 0)
    costs, hits, tallied = [], xp.zeros(batches.split.n, bool), state.batch
    progress = progress or _NoProgress()
    progress.start_epoch(epoch, state.batch)
    step, batch_step = opt.step, step_of(net)
    if graph is not None:
        graph.reset()

    def tally(upto):
        """Fold batches tallied..upto-1 into loss_sum and correct. The costs are
        added one by one in order (cumsum), as a per-batch running sum would."""
        nonlocal loss_sum, correct, tallied
        if costs:
            run = xp.cumsum(xp.stack([xp.asarray(loss_sum, dtype=net.dtype), *costs]))
            if check_each and not math.isfinite(run[-1]):
                _diverged(epoch, tallied + int(xp.argmin(xp.isfinite(run[1:]))))
            loss_sum = run[-1]
            correct = correct + hits[tallied * B : upto * B].sum()
            costs.clear()
        tallied = upto

    def sums():  # (summed cost, correct count) so far, with the graph's own sums
        return (loss_sum, correct) if graph is None else (loss_sum + graph.loss_sum, correct + graph.correct)

    for b, x, y, labels in batches.epoch(epoch, start=state.batch):
        if shared:
            lo, hi, rows_all = batches.parts[b]  # this rank's rows lo:hi of the batch's rows_all
            net.drop_share = (lo, rows_all)
        if graph is not None and len(labels) == graph.rows:
            graph(x, y, labels)  # what the else branch does, as one launch
        elif not len(labels):  # a short last batch with no row for this rank
            net.grads.fill(0)
        else:
            costs.append(batch_step(x, y, labels, hits[b * B : b * B + len(labels)]))
        seen += len(labels)
        if shared:
            reduce.gradient(net.grads, hi - lo, rows_all)
        if clip_norm:
            clip_gradient(net, clip_norm)
        step(lr_at(state.step))
        state.step += 1
        if len(costs) >= TALLY:
            tally(b + 1)
        if progress.due():
            tally(b + 1)
            total, right = sums()
            mean = float(total) / seen
            if not math.isfinite(mean):
                _diverged(epoch, b)
            progress.update(b + 1, mean, float(right) / seen, seen)
        if reduce.stop(should_stop is not None and should_stop()):
            tally(b + 1)
            total, right, seen = reduce.sums(*_host(sums()), seen)
            state.batch, state.loss_sum, state.correct, state.seen = b + 1, float(total), int(right), int(seen)
            return False
    tally(batches.n_batches)
    bk.synchronize()
    total, right, seen = reduce.sums(*_host(sums()), seen)
    state.batch, state.loss_sum, state.correct, state.seen = batches.n_batches, float(total), int(right), int(seen)
    if not math.isfinite(state.loss_sum):
        _diverged(epoch, batches.n_batches - 1)
    return True


class GraphStep:
    """A full batch's forward pass, batch cost, running sums (cost, correct
    predictions) and backward pass, recorded once as a CUDA graph
    (backend.capture) and then replayed for every full batch of `batches`:
    one launch instead of one per operation. The optimiser step stays outside,
    so that the learning rate and Adam's step count can change. The replay
    reads the batch from Batches' own buffers, which it refills in place; a
    short last batch runs as usual. Dropout draws new masks each step, which a
    replay cannot: it is refused.

    A replay writes where the recorded arrays were. Evaluating or taking
    gradient norms between epochs may replace the network's buffers (a larger
    batch), so the step holds every array it recorded (their memory is never
    handed to others while the graph lives) and records again when one of
    them, or the TF32 switch, has changed."""

    def __init__(self, net, batches):
        if net.dropout:
            raise ValueError("a CUDA graph replays the same dropout masks every step: train without one, or without dropout")
        if not net.bk.graphs:
            raise ValueError(f"the {net.bk.name} backend has no CUDA graphs (use the cupy backend)")
        xp = net.xp
        self.net, self.rows, self.replay = net, batches.rows, None
        self.loss_sum, self.correct = xp.zeros((), net.dtype), xp.zeros((), xp.int64)  # on the device, read per epoch
        self.recorded, self._held = None, None

    def reset(self):
        self.loss_sum.fill(0)
        self.correct.fill(0)

    def _touched(self, x, y, labels):
        """The arrays (and the network's set of training buffers) a replay
        reads or writes outside the graph's own memory, to hold while it lives;
        and what identifies them now."""
        net, bk = self.net, self.net.bk
        held = (net._buf[True], net.params, net.grads, self.loss_sum, self.correct, x, y, labels)
        # The network's own arrays by identity (held, so no other object can take
        # their id); the batch's views are new objects over the same memory.
        key = (*map(id, held[:5]), *((bk.address(a), a.shape, a.strides) for a in (x, y, labels)), bk.tf32)
        return held, key

    def __call__(self, x, y, labels):
        """Forward, cost and backward of the batch in x, y (net.grads filled);
        its summed cost and correct count added into loss_sum and correct."""
        if self.replay is None or self._touched(x, y, labels)[1] != self.recorded:
            if self.replay is not None:
                self.net.bk.synchronize()  # the last replay is done with the memory about to be let go
            self.replay = self._held = None
            self._record(x, y, labels)
            self._held, self.recorded = self._touched(x, y, labels)  # after: recording may make the buffers
        self.replay()

    def _record(self, x, y, labels):
        net, xp = self.net, self.net.xp

        def step():
            a = net.forward(x, train=True)
            xp.add(self.loss_sum, net.batch_cost(y), out=self.loss_sum)
            xp.add(self.correct, (a.argmax(axis=1) == labels).sum(), out=self.correct)
            net.backward(x, y)

        before = self.loss_sum.copy(), self.correct.copy()
        self.replay = net.bk.capture(step)  # runs step once, then records it
        self.loss_sum[...], self.correct[...] = before  # the replay that follows adds this batch


def _host(sums):
    return float(sums[0]), int(sums[1])


def _diverged(epoch, batch):
    raise TrainingDiverged(f"training diverged: non-finite loss at epoch {epoch + 1}, batch {batch + 1}")


def clip_gradient(net, max_norm):
    """Scale the flat gradient down to norm max_norm when it is longer. The
    factor stays a device scalar: no host round trip per step on a GPU."""
    g, xp = net.grads, net.xp
    norm = xp.sqrt(xp.dot(g, g))
    xp.multiply(g, xp.minimum(1.0, max_norm / norm), out=g)


# -- metrics ------------------------------------------------------------------
def evaluate(net, split, chunk=4096, reduce=ONE):
    """(mean cost, accuracy) of the network's current weights on a Split.
    With `reduce` (data parallelism) each rank takes its share of the rows."""
    xp, d = net.xp, split
    start, end = part(d.n, reduce.rank, reduce.size)
    buf = xp.empty((max(1, min(chunk, end - start)), d.X.shape[1]), net.dtype)
    loss, correct = 0.0, 0
    for i in range(start, end, chunk):
        j = min(i + chunk, end)
        x = xp.multiply(d.X[i:j], d.scale, out=buf[: j - i])
        a = net.forward(x)
        loss = loss + net.batch_cost(d.Y[i:j])
        correct = correct + (a.argmax(axis=1) == d.labels[i:j]).sum()
    loss, correct = reduce.sums(float(loss), int(correct))
    return float(loss) / d.n, int(correct) / d.n


def predict(net, split):
    """Predicted class of every row of a Split, as a host array."""
    return net.bk.to_numpy(net.predict(split.inputs(dtype=net.dtype)))


def grad_norms(net, split, n=1000):
    """‖∂C/∂W^l‖ and ‖∂C/∂b^l‖ per layer on the first n rows of a Split: how
    fast each layer learns (Nielsen ch. 5's vanishing gradients)."""
    xp, n = net.xp, min(n, split.n)
    net.gradient(split.inputs(0, n, dtype=net.dtype), split.Y[:n], dropout=False)
    return [float(xp.linalg.norm(g)) for g in net.grad_weights], [float(xp.linalg.norm(g)) for g in net.grad_biases]
