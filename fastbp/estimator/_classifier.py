"""FastBPClassifier: MLPClassifier's interface and results on fastbp's engine."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._base import BaseFastBP, estimator_init


class FastBPClassifier(ClassifierMixin, BaseFastBP):
    """Multi-layer perceptron classifier trained by fastbp's hand-written
    backprop: MLPClassifier's parameters, attributes and results.

    Parameters are MLPClassifier's (same names, defaults and meaning), plus:

    class_weight : dict, 'balanced' or None, default=None
        Weights per class, multiplied into sample_weight (as in
        LogisticRegression); 'balanced' uses n_samples / (n_classes ·
        bincount(y)). 'balanced' is refused by partial_fit, which sees one
        batch at a time.
    backend : 'numpy', 'cupy' or 'auto', default='auto'
        Where to train: 'auto' takes a usable CUDA GPU (cupy) if there is one.
    dtype : None, 'float32' or 'float64', default=None
        None trains in the input's dtype (float32 stays float32, anything
        else becomes float64), as MLPClassifier.

    The output layer is MLPClassifier's: softmax for 3+ classes, one logistic
    unit for two classes (and for one), one logistic unit per label for a
    multilabel indicator y. Attributes are MLPClassifier's public ones;
    coefs_ and intercepts_ are views into the network's flat parameter
    buffer with backend='numpy', host copies with 'cupy'.
    """

    _parameter_constraints: dict = {
        **BaseFastBP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    __init__ = estimator_init(extra={"class_weight": None})

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, dtype=self._dtypes(),
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous call to fit."
                        f" Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        return X, self._label_binarizer.transform(y).astype(bool), y

    def _fit_sample_weight(self, sample_weight, X, y, incremental):
        sample_weight = super()._fit_sample_weight(sample_weight, X, y, incremental)
        if self.class_weight is None:
            return sample_weight
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: it needs the class counts of the whole"
                " training set. Pass them as class_weight={label: weight, ...} instead."
            )
        per_class = compute_sample_weight(self.class_weight, y)
        return per_class if sample_weight is None else sample_weight * per_class

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validation_target(self, Y_val):
        return self._label_binarizer.inverse_transform(Y_val)

    def _stratify_error(self, Y, exc):
        """scikit-learn's message names the binarised column ('True'); name the labels too."""
        labels = self.classes_ if len(self.classes_) > 1 else self.classes_[:1]
        column = Y[:, 0]
        few = np.array([labels[-1] if v else labels[0] for v in (False, True) if 0 < np.count_nonzero(column == v) < 2])
        if not len(few):
            return None
        return (f"early_stopping: the validation split is stratified by class and needs at least 2 samples of each;"
                f" too few of the label(s) {few}. ({exc})")

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); `classes` (every label that will appear) is required on the first call."""
        self._validate_params()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """The predicted classes (labels as given to fit; an indicator matrix for multilabel y)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True, net=None):
        y_pred = self._forward_pass_fast(X, check_input, net)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None, net=None):
        return self._score_with(X, y, sample_weight, accuracy_score, net)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes) in the order of classes_."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return np.vstack([1 - y_pred, y_pred]).T if y_pred.ndim == 1 else y_pred

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
