"""scikit-learn estimators on fastbp's engine: drop-ins for MLPClassifier and MLPRegressor.

    from fastbp.estimator import FastBPClassifier as MLPClassifier  # the one-line swap
    from fastbp.estimator import FastBPRegressor as MLPRegressor

They take scikit-learn's parameters with the same meaning and, with
backend="numpy" and the same random_state, draw the same initial weights,
shuffles and validation split, so they end with scikit-learn's weights to
float rounding. The training itself is fastbp's: Network.forward/backward
(BP1-BP4) over each mini-batch and an optimiser over the flat parameter
buffer (_base.py mirrors scikit-learn's epoch loop around them).
"""

from ._classifier import FastBPClassifier
from ._regressor import FastBPRegressor

__all__ = ["FastBPClassifier", "FastBPRegressor"]
