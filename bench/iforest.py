#!/usr/bin/python3
"""bench/iforest.sh's peer: scikit-learn's IsolationForest on the same benign
training rows and features; ROC-AUC of both on the same test rows.  A second
scikit-learn line fits it on sign(v) log(1 + |v|) of the same features, the
scale nids draws its split points on, to show where nids' margin comes from.

    iforest.py TRAIN_BENIGN.csv TEST.csv NIDS_SCORES.csv
TEST has 'label' last; NIDS_SCORES has 'anomaly' in TEST's order.
"""
import sys

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

FLT_MAX = float(np.finfo(np.float32).max)


def prepare(df):
    # nids' mapping for infinities; scikit-learn refuses NaN, so 0 for missing
    return df.replace([np.inf], FLT_MAX).replace([-np.inf], -FLT_MAX).fillna(0).astype(np.float32)


def log_scale(df):
    return np.sign(df) * np.log1p(np.abs(df))


def main():
    train = prepare(pd.read_csv(sys.argv[1]))
    test = pd.read_csv(sys.argv[2])
    y = (test.pop("label").astype(str).str.upper() != "BENIGN").astype(int)
    nids = pd.read_csv(sys.argv[3])["anomaly"]
    test = prepare(test)
    aucs, log_aucs = [], []
    for seed in range(5):
        forest = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(train)
        aucs.append(roc_auc_score(y, -forest.score_samples(test)))
        forest = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(log_scale(train))
        log_aucs.append(roc_auc_score(y, -forest.score_samples(log_scale(test))))
    print("ROC-AUC benign vs attack on %d test flows (%d attacks):" % (len(y), y.sum()))
    print("  scikit-learn IsolationForest (5 seeds):             mean %.4f  min %.4f  max %.4f" % (np.mean(aucs), min(aucs), max(aucs)))
    print("  the same on sign(v) log(1 + |v|) of the features:   mean %.4f  min %.4f  max %.4f" % (np.mean(log_aucs), min(log_aucs), max(log_aucs)))
    print("  nids isolation forest (defaults, seed 42):          %.4f   (nids - sklearn mean: %+.4f)"
          % (roc_auc_score(y, nids), roc_auc_score(y, nids) - np.mean(aucs)))


if __name__ == "__main__":
    main()
