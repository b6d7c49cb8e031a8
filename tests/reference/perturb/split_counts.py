#!/usr/bin/python3
"""Independent count of PerturbQA split sizes and classes, straight from the CSVs.

Usage: split_counts.py DATA_DIR. Prints JSON:
  {"default:CELL": {"train": {label: n}, "test": {label: n}}, "holdout:CELL": {...},
   "inconsistent": {CELL: n}}
with the three-class rule of DESIGN.md section 3.
"""
import csv
import json
import os
import sys

CELLS = ["k562", "rpe1", "hepg2", "jurkat"]


def load(data_dir, cell):
    with open(os.path.join(data_dir, cell + "-dir.csv"), newline="") as f:
        direction = {(r["pert"], r["gene"]): r["label"] for r in csv.DictReader(f)}
    rows, inconsistent = [], 0
    with open(os.path.join(data_dir, cell + "-de.csv"), newline="") as f:
        for r in csv.DictReader(f):
            key = (r["pert"], r["gene"])
            if r["label"] == "0":
                label = "not differentially expressed"
            elif key in direction:
                label = "upregulated" if direction[key] == "1" else "downregulated"
            else:
                label = "not differentially expressed"
                inconsistent += 1
            rows.append((r["split"], label))
    return rows, inconsistent


def count(rows):
    out = {}
    for _, label in rows:
        out[label] = out.get(label, 0) + 1
    return out


def main():
    data = {c: load(sys.argv[1], c) for c in CELLS}
    out = {"inconsistent": {c: data[c][1] for c in CELLS}}
    for c in CELLS:
        rows = data[c][0]
        out["default:" + c] = {"train": count([r for r in rows if r[0] == "train"]),
                               "test": count([r for r in rows if r[0] == "test"])}
        others = [r for o in CELLS if o != c for r in data[o][0]]
        out["holdout:" + c] = {"train": count(others), "test": count(rows)}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
