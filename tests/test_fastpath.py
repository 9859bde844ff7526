"""The CPU's faster paths give what the readable reference gives: bit for bit
where the arithmetic is the same operations in the same order, to rounding
where it is not."""

import numpy as np
import pytest

from fastbp.backend import get_backend


def test_relu_against_zeros_is_numpys_maximum_bit_for_bit():
    bk = get_backend("numpy")
    special = [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1.5, -2.5]
    for dtype in (np.float32, np.float64):
        for shape in [(1, 10), (7, 30), (128, 100)]:
            z = np.random.default_rng(0).standard_normal(shape).astype(dtype)
            z.flat[: len(special)] = special
            out = np.empty_like(z)
            assert bk.relu(z, out) is out
            ref = np.maximum(z, 0)
            assert out.dtype == ref.dtype and out.tobytes() == ref.tobytes(), (dtype, shape)


def _reference_batches(split, B, seed, epoch, drop_last=False, shift=0, image_shape=None):
    """Each batch gathered alone and scaled with one mixed-type multiply: the
    readable form of what loop.Batches yields."""
    from fastbp.train.augment import RandomShift

    bk, n = split.bk, split.n
    perm = bk.permutation(bk.rng([seed, epoch]), n)
    shifter = None
    if shift:
        shifter = RandomShift(bk, image_shape, shift, B, split.X.dtype)
        shifter.new_epoch(seed, epoch, n)
    for b in range(n // B if drop_last else -(-n // B)):
        rows = perm[b * B : (b + 1) * B]
        raw = split.X[rows]
        if shifter is not None:
            shifter(raw, b * B)
        yield b, np.multiply(raw, split.scale), split.Y[rows], split.labels[rows]


@pytest.mark.parametrize("B, drop_last, shift", [(10, False, 0), (7, False, 0), (7, True, 0), (33, False, 0), (6, False, 2), (500, False, 0)])
def test_chunked_batches_are_the_batches_gathered_one_by_one(B, drop_last, shift):
    from fastbp.train.build import Split
    from fastbp.train.loop import Batches

    bk = get_backend("numpy")
    rng = np.random.default_rng(1)
    n = 1003
    X = rng.integers(0, 256, (n, 64), dtype=np.uint8)
    split = Split(bk, X, rng.integers(0, 10, n), 10, 1 / 255, "float32")
    batches = Batches(split, B, seed=3, drop_last=drop_last, shift=shift, image_shape=(8, 8))
    assert batches.per_chunk == max(1, min(bk.gather_rows // B, len(batches)))
    for epoch in (0, 1):
        for start in (0, 1, len(batches) - 1):
            got = [(b, x.copy(), y.copy(), lab.copy()) for b, x, y, lab in batches.epoch(epoch, start)]
            want = list(_reference_batches(split, B, 3, epoch, drop_last, shift, (8, 8)))[start:]
            assert [g[0] for g in got] == [w[0] for w in want]
            for g, w in zip(got, want):
                for a, r in zip(g[1:], w[1:]):
                    assert a.dtype == r.dtype and a.shape == r.shape and a.tobytes() == r.tobytes()


def _digits_setup(batch, hidden="sigmoid", optimizer="momentum"):
    from fastbp.nn import optim
    from fastbp.nn.network import Network
    from fastbp.train.build import Split
    from fastbp.train.loop import Batches
    from sklearn.datasets import load_digits

    bk = get_backend("numpy")
    X, y = load_digits(return_X_y=True)
    split = Split(bk, X[:700].astype(np.uint8), y[:700], 10, 1 / 16, "float32")
    net = Network([64, 24, 10], hidden, "softmax", "log_likelihood", seed=1)
    return split, net, optim.make(optimizer, net), Batches(split, batch, seed=5)


@pytest.mark.usefixtures("numpy_reference")
@pytest.mark.parametrize("batch", [10, 32, 700])
def test_train_epoch_is_the_readable_loop_bit_for_bit(batch):
    """train_epoch (chunked gather, costs and hits tallied per chunk) against
    the loop a reader would write: same weights, same summed loss and count."""
    from fastbp.train.loop import TrainState, train_epoch

    split, net, opt, batches = _digits_setup(batch)
    _, ref, ref_opt, _ = _digits_setup(batch)
    state = TrainState()
    for epoch in range(2):
        train_epoch(net, opt, lambda t: 0.1, batches, state)
        loss, correct = 0.0, 0
        for b, x, y, labels in _reference_batches(split, batch, 5, epoch):
            a = ref.forward(x, train=True)
            loss = loss + ref.batch_cost(y)  # a float32 running sum, batch by batch
            correct = correct + int((a.argmax(axis=1) == labels).sum())
            ref.backward(x, y)
            ref_opt.step(0.1)
        assert net.params.tobytes() == ref.params.tobytes()
        assert (state.loss_sum, state.correct, state.seen) == (float(loss), correct, split.n)
        state.next_epoch()


@pytest.mark.usefixtures("numpy_reference")
def test_an_epoch_stopped_inside_a_chunk_resumes_to_the_same_sums_and_weights():
    from fastbp.train.loop import TrainState, train_epoch

    _, net, opt, batches = _digits_setup(10)
    _, ref, ref_opt, _ = _digits_setup(10)
    assert batches.per_chunk > 7  # the stop below falls inside a chunk
    whole = TrainState()
    train_epoch(ref, ref_opt, lambda t: 0.1, batches, whole)
    parts, calls = TrainState(), iter(range(1000))
    assert not train_epoch(net, opt, lambda t: 0.1, batches, parts, should_stop=lambda: next(calls) == 6)
    assert parts.batch == 7
    assert train_epoch(net, opt, lambda t: 0.1, batches, parts)
    assert net.params.tobytes() == ref.params.tobytes()
    assert (parts.loss_sum, parts.correct, parts.seen, parts.step) == (whole.loss_sum, whole.correct, whole.seen, whole.step)


@pytest.mark.usefixtures("numpy_reference")
def test_divergence_inside_a_chunk_names_the_first_bad_batch():
    from fastbp.errors import TrainingDiverged
    from fastbp.train.loop import TrainState, train_epoch

    _, net, opt, batches = _digits_setup(10)
    cost, calls = net.batch_cost, iter(range(1000))
    net.batch_cost = lambda y: cost(y) * (np.inf if next(calls) == 12 else 1)  # batch 13 of the epoch
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match=r"non-finite loss at epoch 1, batch 13$"):
        train_epoch(net, opt, lambda t: 0.1, batches, TrainState())
