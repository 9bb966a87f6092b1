"""Writes scikit-learn models converted by skl2onnx, and what onnxruntime computes with them.

maas serves the `ai.onnx.ml` operators skl2onnx emits by default (runtime/src/inference/ml.rs
adds the ones tract lacks); this script makes the models to check them against onnxruntime:

    python make_sklearn.py OUT_DIR

For each model it writes `OUT_DIR/<name>.onnx` and `OUT_DIR/<name>.json`:

    {"model": name, "input": input name, "rows": [[float32 as float, ...] x 20],
     "outputs": {"<output name>": [...], ...}, "classes": [...] (classifiers only),
     "versions": {"scikit-learn": ..., "skl2onnx": ..., "onnxruntime": ..., "numpy": ...}}

`outputs` are onnxruntime's, in the order of the session's outputs. A classifier's label
output is a list of ints; its probabilities (a ZipMap, a list of {class: p} dicts) become a
[N, C] list in the order of `classes`. A regressor's output is [N, 1].

Everything is seeded: the same versions write the same files. No version is pinned here.
"""

import json
import os
import sys

import numpy as np
import onnxruntime
import skl2onnx
import sklearn
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer

ROWS = 200
FEATURES = 6
TEST_ROWS = 20
SEED = 0


def datasets():
    """The training and test rows: 3-class and 2-class classification, and a regression."""
    x3, y3 = make_classification(
        n_samples=ROWS, n_features=FEATURES, n_informative=4, n_redundant=1, n_classes=3, random_state=SEED
    )
    x2, y2 = make_classification(n_samples=ROWS, n_features=FEATURES, n_informative=3, random_state=SEED + 1)
    xr, yr = make_regression(n_samples=ROWS, n_features=FEATURES, n_informative=4, noise=0.5, random_state=SEED)
    split = ROWS - TEST_ROWS
    return {name: (x[:split], y[:split], x[split:]) for name, (x, y) in
            {"multiclass": (x3, y3), "binary": (x2, y2), "regression": (xr, yr)}.items()}


def models():
    """(name, estimator, dataset) for every model written."""
    return [
        ("logistic_regression", LogisticRegression(max_iter=1000), "multiclass"),
        ("random_forest_classifier", RandomForestClassifier(n_estimators=5, max_depth=4, random_state=SEED),
         "multiclass"),
        ("gradient_boosting_classifier",
         GradientBoostingClassifier(n_estimators=5, max_depth=3, random_state=SEED), "multiclass"),
        ("random_forest_regressor", RandomForestRegressor(n_estimators=5, max_depth=4, random_state=SEED),
         "regression"),
        ("gradient_boosting_regressor", GradientBoostingRegressor(n_estimators=5, max_depth=3, random_state=SEED),
         "regression"),
        # Binary labels, so the linear classifier's two-class layout is exercised as well.
        ("binarizer_logistic_regression", make_pipeline(Binarizer(threshold=0.0), LogisticRegression()), "binary"),
        # Two-class tree ensembles: skl2onnx writes one score column (class 1's probability for
        # the forest, the raw score with one base value and LOGISTIC for the boosting).
        ("binary_random_forest_classifier",
         RandomForestClassifier(n_estimators=5, max_depth=4, random_state=SEED), "binary"),
        ("binary_gradient_boosting_classifier",
         GradientBoostingClassifier(n_estimators=5, max_depth=3, random_state=SEED), "binary"),
    ]


VERSIONS = {
    "scikit-learn": sklearn.__version__,
    "skl2onnx": skl2onnx.__version__,
    "onnxruntime": onnxruntime.__version__,
    "numpy": np.__version__,
}


def to_list(value, classes):
    """An onnxruntime output as JSON: a ZipMap's list of dicts becomes [N, C] in class order."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [[float(row[c]) for c in classes] for row in value]
    return np.asarray(value).tolist()


def write(out_dir, name, estimator, data):
    """Fits `estimator`, converts it with skl2onnx's defaults, runs onnxruntime, writes both files."""
    x_train, y_train, x_test = data
    estimator.fit(x_train, y_train)
    onx = skl2onnx.to_onnx(estimator, x_train[:1].astype(np.float32))
    path = os.path.join(out_dir, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())

    rows = x_test.astype(np.float32)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    results = session.run(None, {input_name: rows})
    classes = [c.item() for c in getattr(estimator, "classes_", [])]
    outputs = {out.name: to_list(value, classes) for out, value in zip(session.get_outputs(), results)}
    record = {"model": name, "input": input_name, "rows": rows.tolist(), "outputs": outputs}
    if classes:
        record["classes"] = classes
    record["versions"] = VERSIONS
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(record, f)
    ops = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in onx.graph.node})
    print(f"{name}: {', '.join(ops)}")


def main():
    """Writes every model of `models()` into the directory given as the only argument."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    print(", ".join(f"{k} {v}" for k, v in VERSIONS.items()))
    data = datasets()
    for name, estimator, dataset in models():
        write(out_dir, name, estimator, data[dataset])


if __name__ == "__main__":
    main()
