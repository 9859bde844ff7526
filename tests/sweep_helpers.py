"""A sweep task for tests/test_sweep.py that kills its worker process on its first attempt."""

import os


class die_once:  # noqa: N801 (used as a function)
    def __init__(self, marker):
        self.marker = marker

    def __call__(self, *args):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)  # the worker dies mid-run: Dask retries the task on a new one
        from fastbp.dist.sweep import run_one

        return run_one(*args)
