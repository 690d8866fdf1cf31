"""Small real datasets shipped inside the package, so demos and tests need no network.

They are copies of the UCI datasets that scikit-learn also ships (its BSD-licensed
``sklearn/datasets/data``): the optical digits (Alpaydin & Kaynak), the Wisconsin
diagnostic breast cancer data (Wolberg, Street & Mangasarian) and the diabetes data
of Efron et al., "Least Angle Regression" (2004).
"""

from importlib import resources

import numpy as np


def _load(name):
    with resources.files("fastnn").joinpath("data", name).open("rb") as f:
        with np.load(f, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}


def load_digits():
    """8x8 images of handwritten digits: ``X`` (1797, 64) floats in 0..16, ``y`` labels 0..9."""
    d = _load("digits.npz")
    return d["X"].astype(np.float64), d["y"].astype(np.int64)


def load_breast_cancer(return_feature_names=False):
    """Breast cancer diagnosis: ``X`` (569, 30) floats, ``y`` 0 (malignant) / 1 (benign)."""
    d = _load("breast_cancer.npz")
    out = (d["X"], d["y"].astype(np.int64))
    return out + (list(d["feature_names"]),) if return_feature_names else out


def load_diabetes(return_feature_names=False):
    """Diabetes progression regression: ``X`` (442, 10) unscaled floats, ``y`` (442,) floats."""
    d = _load("diabetes.npz")
    out = (d["X"], d["y"])
    return out + (list(d["feature_names"]),) if return_feature_names else out
