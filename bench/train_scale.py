#!/usr/bin/python3
"""bench/train_scale.sh's helper.

  train_scale.py make DATA ROWS OUT.csv   resample the real flows with 1% jitter
  train_scale.py train IN.csv ROUNDS THREADS  Python XGBoost, nids' default
                                              parameters, balanced weights
"""
import glob
import os
import resource
import sys
import time

import numpy as np
import pandas as pd


def make(data_dir, rows, out):
    files = sorted(glob.glob(data_dir + "/*.csv*")) if os.path.isdir(data_dir) else [data_dir]
    frames = [pd.read_csv(f, low_memory=False) for f in files]
    df = pd.concat(frames, ignore_index=True)
    label = df["Label"].astype(str).str.replace("\ufffd", "-").str.replace("\x96", "-")
    num = df.select_dtypes(include=[np.number]).drop(columns=["id", "Src Port", "Attempted Category"], errors="ignore")
    rng = np.random.default_rng(2017)
    idx = rng.integers(0, len(df), size=int(rows))
    X = num.values[idx].astype(np.float64)
    X *= 1 + 0.01 * (rng.random(X.shape) - 0.5)
    out_df = pd.DataFrame(X.astype(np.float32), columns=num.columns)
    out_df["Label"] = label.values[idx]
    out_df.to_csv(out, index=False, float_format="%.9g")
    print("%d rows x %d numeric features written" % (len(out_df), X.shape[1]))


def train(path, rounds, threads):
    import xgboost as xgb
    from sklearn.utils.class_weight import compute_sample_weight
    df = pd.read_csv(path)
    y = df.pop("Label").astype(str)
    X = df.replace([np.inf, -np.inf], np.nan).astype(np.float32).values
    classes = sorted(set(y))
    yi = y.map({c: i for i, c in enumerate(classes)}).values
    t0 = time.time()
    d = xgb.QuantileDMatrix(X, label=yi, weight=compute_sample_weight("balanced", y), max_bin=256, nthread=threads)
    # nids' defaults: keep in step with default_params in src/train_options.c
    params = {"objective": "multi:softprob", "num_class": len(classes), "tree_method": "hist",
              "max_depth": 6, "eta": 0.3, "max_bin": 256, "nthread": threads, "seed": 42}
    xgb.train(params, d, num_boost_round=rounds)
    t = time.time() - t0
    print("python_seconds %.2f" % t)
    print("python_peak_rss_mb %.0f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    print("matrix_mb %.0f" % (X.nbytes / 1e6))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    else:
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
