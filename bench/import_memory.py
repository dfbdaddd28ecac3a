#!/usr/bin/env python3
"""Write a large XGBoost JSON document: the trees of a real model (a
fixture made by XGBoost, or any JSON model) repeated until the document has
about SIZE_MB megabytes.  Used by bench/import_memory.sh."""
import json
import sys

src, size_mb, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
doc = json.load(open(src))
model = doc["learner"]["gradient_booster"]["model"]
trees, info = model["trees"], model["tree_info"]
per_tree = len(json.dumps(trees[0], separators=(",", ":")))
copies = max(1, int(size_mb * 1e6 / per_tree / len(trees)))
model["trees"] = [dict(t, id=i) for i, t in enumerate(trees * copies)]
model["tree_info"] = info * copies
model["gbtree_model_param"]["num_trees"] = str(len(model["trees"]))
json.dump(doc, open(out, "w"), separators=(",", ":"))
print(len(model["trees"]))
