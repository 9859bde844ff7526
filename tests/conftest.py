import os
from pathlib import Path

import pytest

REAL_DATASETS = ("mnist", "fashion-mnist")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The root ($FASTBP_DATA) holding the real MNIST and Fashion-MNIST. Skips the test when they are
    missing, but fails it under CI (CI set and not 'false'/'0'), where they must be there."""
    from fastbp.data.locate import idx_files

    root = os.environ.get("FASTBP_DATA")
    if root and all(idx_files(Path(root) / name) for name in REAL_DATASETS):
        return Path(root)
    why = f"real data missing: FASTBP_DATA={root!r} does not hold {' and '.join(REAL_DATASETS)}"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(why)
    pytest.skip(why)
