"""Numerical trouble: a diverging run stops with a hint and never overwrites
the last good checkpoint; clip_norm bounds the gradient; the output layer and
the costs survive huge |z|."""

import warnings

import numpy as np
import pytest
from cli_helpers import FAST, TINY, cli, expect_error  # noqa: F401 (cli is a fixture)

from fastbp.backend import get_backend
from fastbp.nn import activations, costs, gradcheck, optim
from fastbp.nn.network import Network
from fastbp.train import checkpoint, config, loop, trainer


def _cfg(*overrides):
    return config.load(None, [*FAST, *overrides])


@pytest.fixture
def one_epoch_run(cli, tmp_path):
    """A run directory after one good epoch, and the parameters of its last.npz."""
    rc, _, err = cli("train", "--out", tmp_path, *TINY, "--set", 'output.name="r"')
    assert rc == 0, err
    return tmp_path / "r", checkpoint.load(tmp_path / "r" / "last.npz").params


def test_divergence_names_epoch_and_batch_and_keeps_the_good_checkpoint(cli, one_epoch_run):
    run, good = one_epoch_run
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's overflow warning would be a second line
        result = cli("train", "--resume", run, "--quiet", "--set", "optimizer.lr=1e6", "--set", "train.epochs=3")
    line = expect_error(result, 1, "non-finite loss at epoch 2, batch ", "lower learning rate", "optimizer.clip_norm")
    assert f"last good checkpoint (last.npz, best.npz) in {run} is kept" in line
    kept = checkpoint.load(run / "last.npz")
    assert kept.state.epoch == 1 and np.array_equal(kept.params, good)


def test_divergence_before_any_checkpoint_says_so(cli, tmp_path):
    result = cli("train", "--out", tmp_path, *TINY, "--quiet", "--set", 'output.name="r"', "--set", "optimizer.lr=1e6")
    line = expect_error(result, 1, "non-finite loss at epoch 1, batch ", "no checkpoint had been written yet")
    assert "kept" not in line and not (tmp_path / "r" / "last.npz").exists()


def test_non_finite_weights_are_never_saved(cli, one_epoch_run, monkeypatch):
    """Weights that turn NaN in an epoch's last step (its loss still finite) are not
    written over last.npz at the end of that epoch."""
    run, good = one_epoch_run
    train_epoch = loop.train_epoch

    def poisoned(net, *args, **kwargs):
        done = train_epoch(net, *args, **kwargs)
        net.params[0] = np.nan
        return done

    monkeypatch.setattr(loop, "train_epoch", poisoned)
    expect_error(cli("train", "--resume", run, "--quiet", "--set", "train.epochs=2"), 1, "non-finite weights after epoch 2", "not saved to")
    assert np.array_equal(checkpoint.load(run / "last.npz").params, good)


def test_clip_norm_scales_the_gradient_down_to_the_limit():
    net = Network([64, 32, 10], "relu", "softmax", "log_likelihood")
    g = np.random.default_rng(0).standard_normal(net.grads.size).astype(net.grads.dtype)
    net.grads[...] = g
    loop.clip_gradient(net, 1e9)  # below the limit: untouched
    assert np.array_equal(net.grads, g)
    loop.clip_gradient(net, 0.5)
    assert np.linalg.norm(net.grads) == pytest.approx(0.5, rel=1e-5)
    assert np.allclose(net.grads * (np.linalg.norm(g) / 0.5), g, rtol=1e-4, atol=1e-6)  # same direction


def _train_recording_grad_norms(monkeypatch, clip):
    norms, step = [], optim.Optimizer.step  # plain SGD's

    def recording(self, lr):
        norms.append(float(np.linalg.norm(self.net.grads)))
        step(self, lr)

    monkeypatch.setattr(optim.Optimizer, "step", recording)
    cfg = _cfg("train.epochs=2", 'optimizer.name="sgd"', "optimizer.lr=1000", "optimizer.weight_decay=0", f"optimizer.clip_norm={clip}")
    return trainer.Trainer(cfg, write=False, quiet=True).run()["test_accuracy"], max(norms)


def test_clip_norm_tames_a_far_too_large_learning_rate(monkeypatch):
    acc, biggest = _train_recording_grad_norms(monkeypatch, 0.0)
    assert acc < 0.2 and biggest > 1e-3  # lr 1000 unclipped: the network dies
    acc, biggest = _train_recording_grad_norms(monkeypatch, 1e-3)
    assert acc > 0.8 and biggest <= 1e-3 * (1 + 1e-5)


@pytest.mark.parametrize("rows", [3, 3000], ids=["small", "large"])  # the two sigmoid kernels
def test_outputs_and_costs_are_stable_at_float32_1e30(rows):
    """σ, softmax and the costs of bounded outputs at z = ±1e30 in float32: no
    overflow, invalid or divide warnings; outputs in [0, 1]; each cost exactly 0
    where the prediction is confidently right and about 1e30 (1 for quadratic) per
    row where it is confidently wrong; δ^L finite."""
    bk = get_backend("numpy")
    z = np.tile(np.array([[1e30, -1e30], [-1e30, 1e30]], np.float32), (rows // 2 + 1, 1))[:rows]
    y = np.tile(np.eye(2, dtype=np.float32), (rows // 2 + 1, 1))[:rows]
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for output, cost_name in gradcheck.OUTPUT_COSTS[:3]:  # not identity: its z² overflows float32
            act = activations.make(output, "output")
            cost = costs.make(cost_name, output)
            log_norm = np.empty((rows, 1), np.float32)
            if isinstance(act, activations.Softmax):
                a = act.forward_log_norm(bk, z, np.empty_like(z), log_norm)
            else:
                a, log_norm = act.forward(bk, z, np.empty_like(z)), None
            for given in (None, log_norm):  # the cost alone, and with the softmax's own ln Σ e^z
                right = float(cost.fn(bk, z, a, y, given))
                wrong = float(cost.fn(bk, z, a, y[:, ::-1].copy(), given))
                per_row = 1.0 if cost_name == "quadratic" else 2e30  # e.g. ln Σe^z − z_y = 1e30 − (−1e30)
                assert right == 0.0 and wrong == pytest.approx(rows * per_row, rel=1e-3), (cost_name, right, wrong)
            delta = cost.delta(bk, z, a, y, np.empty_like(z), act, np.empty_like(z))
            assert 0 <= a.min() and a.max() <= 1 and np.isfinite(delta).all(), output
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        net = Network([2, 2], "relu", "softmax", "log_likelihood", dtype="float32")
        net.weights[0][...] = np.eye(2)
        assert net.loss(z, y) == 0.0 and np.isfinite(net.gradient(z, y)).all()



def test_divergence_in_memory_says_nothing_was_saved():
    t = trainer.Trainer(_cfg("train.epochs=2", 'optimizer.name="sgd"', "optimizer.lr=1e6"), write=False, quiet=True)
    with pytest.raises(Exception, match=r"non-finite loss at epoch 1, batch \d+; try a lower learning rate \(optimizer.lr = 1000000.0\) or optimizer.clip_norm; nothing was saved") as info:
        t.run()
    assert info.value.exit_code == 1
