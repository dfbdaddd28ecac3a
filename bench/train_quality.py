#!/usr/bin/python3
"""The Python reference for bench/train_quality.sh: XGBoost with balanced
sample weights on the same split nids trained and was evaluated on.

    train_quality.py TRAIN.csv TEST.csv NIDS_PREDICTIONS.csv

TRAIN/TEST: header, then numeric features and 'label' last; NIDS_PREDICTIONS:
label,predicted for the test rows, in TEST's order.  Prints macro F1 and
per-class F1 of both.
"""
import sys
import time

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_sample_weight


def main():
    train = pd.read_csv(sys.argv[1])
    test = pd.read_csv(sys.argv[2])
    nids = pd.read_csv(sys.argv[3])
    y_train = train.pop("label").astype(str)
    y_test = test.pop("label").astype(str)
    X_train = train.replace([np.inf, -np.inf], np.nan).astype(np.float32)
    X_test = test.replace([np.inf, -np.inf], np.nan).astype(np.float32)
    classes = sorted(set(y_train))
    index = {c: i for i, c in enumerate(classes)}
    t0 = time.time()
    # XGBClassifier's defaults (1.7): 100 rounds, depth 6, eta 0.3; hist
    model = xgb.XGBClassifier(tree_method="hist", n_jobs=1, random_state=42)
    model.fit(X_train, y_train.map(index), sample_weight=compute_sample_weight("balanced", y_train))
    seconds = time.time() - t0
    pred = [classes[i] for i in model.predict(X_test)]
    ref_f1 = f1_score(y_test, pred, average=None, labels=classes, zero_division=0)
    nids_f1 = f1_score(nids["label"].astype(str), nids["predicted"].astype(str), average=None,
                       labels=classes, zero_division=0)
    ref_macro = f1_score(y_test, pred, average="macro", labels=classes, zero_division=0)
    nids_macro = f1_score(nids["label"].astype(str), nids["predicted"].astype(str), average="macro",
                          labels=classes, zero_division=0)
    print("%-28s %8s %12s %9s" % ("class", "support", "python F1", "nids F1"))
    for c, a, b in zip(classes, ref_f1, nids_f1):
        print("%-28s %8d %12.4f %9.4f" % (c, (y_test == c).sum(), a, b))
    print("%-28s %8d %12.4f %9.4f" % ("macro F1", len(y_test), ref_macro, nids_macro))
    print("nids - python macro F1: %+.4f   (python trained in %.1f s, one thread)" % (nids_macro - ref_macro, seconds))


if __name__ == "__main__":
    main()
