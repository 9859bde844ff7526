"""Sweeps on Dask (fastbp.dist.sweep, `fastbp sweep`): every combination a run
directory, results tables and the best config, restarts that skip finished
runs, failed runs recorded, bad input refused before any run; and
FastBPClassifier in GridSearchCV on a Dask cluster.

Dask comes in the `dask` extra (in the `test` extra): missing, these tests
fail under CI and are skipped elsewhere. The clusters are small: threads in
this process (processes=False) where processes don't matter.
"""

import csv

import pytest

from fastbp import cli
from fastbp.errors import ConfigError
from optional_helpers import require

QUICK = ["train.epochs=2", "output.plots=false", "output.grad_norms=false", 'train.backend="numpy"']


@pytest.fixture(scope="module", autouse=True)
def dask_installed():
    require("distributed", "dask")


def _sweep(out, grid, **kw):
    from fastbp.dist import sweep

    kw.setdefault("workers", 2)
    return sweep.sweep(None, sweep.parse_grid(grid), overrides=QUICK, out=out, processes=False, progress=False,
                       log=lambda m: None, **kw)


def test_grid_values_split_outside_brackets():
    from fastbp.dist.sweep import parse_grid

    assert parse_grid(["optimizer.lr=0.05, 0.1", "model.sizes=[64,32,10],[64,64,10]", 'model.hidden="relu",tanh']) == {
        "optimizer.lr": ["0.05", "0.1"], "model.sizes": ["[64,32,10]", "[64,64,10]"], "model.hidden": ['"relu"', "tanh"]}
    for bad in ("optimizer.lr", "optimizer.lr=", "optimizer.lr=0.1,,0.2"):
        with pytest.raises(ConfigError):
            parse_grid([bad])


def test_a_sweep_runs_every_combination_and_ranks_them(tmp_path):
    runs = _sweep(tmp_path, ["optimizer.lr=0.05,0.2", "model.dropout=0.0,0.3"])
    assert len(runs) == 4 and all(r.result["status"] == "done" for r in runs)
    for r in runs:  # each a normal run directory
        assert {"config.toml", "summary.json", "last.npz"} <= {p.name for p in r.path.iterdir()}
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [row["optimizer.lr"] for row in rows] == ["0.05", "0.05", "0.2", "0.2"]
    assert all(0 < float(row["val_accuracy"]) <= 1 and float(row["test_accuracy"]) > 0 for row in rows)
    md = (tmp_path / "sweep.md").read_text().splitlines()
    vals = [float(line.split("|")[4].strip(" %")) for line in md[2:]]
    assert vals == sorted(vals, reverse=True)  # best validation accuracy first
    best = max(runs, key=lambda r: r.result["val_accuracy"])
    assert (tmp_path / "best.toml").read_text().endswith((best.path / "config.toml").read_text())


def test_seeds_and_a_restart_skips_finished_runs(tmp_path):
    runs = _sweep(tmp_path, ["optimizer.lr=0.1"], seeds=2)
    assert [r.values["train.seed"] for r in runs] == ["0", "1"]
    (runs[1].path / "summary.json").unlink()  # as if the sweep had been stopped during this run
    stamp = (runs[0].path / "summary.json").stat().st_mtime_ns
    again = _sweep(tmp_path, ["optimizer.lr=0.1"], seeds=2)
    assert (runs[0].path / "summary.json").stat().st_mtime_ns == stamp  # not run again
    assert (runs[1].path / "summary.json").exists()
    assert all(r.result["status"] == "done" for r in again)


def test_a_failed_run_is_recorded_and_the_others_go_on(tmp_path):
    # lr 1e6 diverges; the other run finishes
    runs = _sweep(tmp_path, ["optimizer.lr=0.1,1e6", 'optimizer.name="sgd"'])
    status = {r.values["optimizer.lr"]: r.result for r in runs}
    assert status["0.1"]["status"] == "done"
    assert status["1e6"]["status"] == "failed" and "diverged" in status["1e6"]["message"]
    md = (tmp_path / "sweep.md").read_text()
    assert md.index("| done |") < md.index("failed: training diverged")


def test_a_dead_worker_s_run_is_retried(tmp_path):
    """A process cluster; the run's first attempt kills its worker (os._exit)."""
    import cloudpickle

    import sweep_helpers

    cloudpickle.register_pickle_by_value(sweep_helpers)
    from fastbp.dist import sweep

    marker = tmp_path / "died-once"
    runs = sweep.sweep(None, sweep.parse_grid(["optimizer.lr=0.1"]), overrides=QUICK, out=tmp_path / "sweep",
                       workers=1, progress=False, log=lambda m: None,
                       task=sweep_helpers.die_once(str(marker)), retries=1)
    assert marker.exists() and runs[0].result["status"] == "done"


@pytest.mark.parametrize("args, want", [
    (["--grid", "optimizer.lrr=0.1,0.2"], "fastbp: error: sweep combination optimizer.lrr=0.1: unknown config key 'optimizer.lrr'"),
    (["--grid", "optimizer.lr=0.1,-2"], "fastbp: error: sweep combination optimizer.lr=-2: config key 'optimizer.lr' must be > 0"),
    (["--grid", "optimizer.lr=0.1", "--workers", "0"], "fastbp sweep: error: argument --workers"),
    (["--grid", "optimizer.lr=0.1", "--retries", "-1"], "fastbp sweep: error: argument --retries: expected a whole number >= 0"),
    (["--grid", "optimizer.lr=0.1", "--scheduler", "tcp://127.0.0.1:9"], "fastbp: error: cannot reach the Dask scheduler"),
])
def test_bad_input_is_one_line_and_no_run(tmp_path, capsys, args, want):
    try:
        code = cli.main(["sweep", "--out", str(tmp_path / "s"), "--quiet", *args])
    except SystemExit as exc:
        code = exc.code
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(want), err
    assert not (tmp_path / "s").exists()


def test_the_cli_sweep(tmp_path, capsys, monkeypatch):
    from fastbp.dist import sweep

    connect = sweep.connect
    monkeypatch.setattr(sweep, "connect", lambda workers=None, scheduler=None, processes=True: connect(
        workers, scheduler, processes=False))
    code = cli.main(["sweep", "--grid", "optimizer.lr=0.05,0.1", "--out", str(tmp_path), "--workers", "1",
                     *[a for s in QUICK for a in ("--set", s)]])
    assert code == 0
    out = capsys.readouterr().out
    assert "| optimizer.lr=" in out and "sweep: 2 of 2 runs done" in out
    assert (tmp_path / "best.toml").exists()


def test_grid_search_cv_on_a_dask_cluster():
    """FastBPClassifier's fits as tasks of a 2-worker LocalCluster, through joblib's dask backend."""
    import joblib
    from distributed import Client, LocalCluster
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    from fastbp.estimator import FastBPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    grid = GridSearchCV(FastBPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0, backend="numpy"),
                        {"learning_rate_init": [0.001, 0.01], "alpha": [1e-4, 1e-2]}, cv=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client, joblib.parallel_backend("dask"):
        grid.fit(X, y)
        assert client.scheduler_info()["workers"]
    assert len(grid.cv_results_["params"]) == 4 and grid.best_score_ > 0.8
