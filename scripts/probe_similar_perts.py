#!/usr/bin/python3
"""Is there signal in {gene_similar} beyond the gene's own-line shares?

A probe, independent of the C++ code: for each cell line of PerturbQA's
default split, the test rows whose (pert, gene) pair was measured in no other
line's training rows (pair-transfer falls back to gene-majority there). Per
row, features from the training rows only:
  gene:    the gene's DE share, up share and row count under the line's perts;
  similar: of the row pert's 50 most similar perts with training rows in the
           line (Jaccard of DE (line, gene) sets over the other lines), those
           measured on the gene: their DE share, up share and count.
Gradient-boosted trees are fitted on the rows of half the line's test perts
and scored on the other half; printed: log-loss and macro-F1 at the best
up/down offsets on that half, for "gene" and "gene + similar".

Usage: /usr/bin/python3 scripts/probe_similar_perts.py [PERTURBQA_DIR]
Needs numpy, scipy and scikit-learn (Debian: python3-sklearn).
"""
import collections
import csv
import os
import sys

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss

LINES = ["k562", "rpe1", "hepg2", "jurkat"]
UP, DOWN, NDE = 0, 1, 2
NEIGHBOURS = 50


def load(data_dir, cell):
    direction = {}
    with open(f"{data_dir}/{cell}-dir.csv") as f:
        for r in csv.DictReader(f):
            direction[(r["pert"], r["gene"])] = int(r["label"])
    rows = []
    with open(f"{data_dir}/{cell}-de.csv") as f:
        for r in csv.DictReader(f):
            y = NDE
            if int(r["label"]) == 1 and (r["pert"], r["gene"]) in direction:
                y = UP if direction[(r["pert"], r["gene"])] == 1 else DOWN
            rows.append((cell, r["pert"], r["gene"], y, r["split"]))
    return rows


def macro_f1(y, pred):
    f = []
    for k in range(3):
        tp = np.sum((pred == k) & (y == k))
        wrong = np.sum((pred == k) != (y == k))
        f.append(0.0 if tp == 0 else 2 * tp / (2 * tp + wrong))
    return float(np.mean(f))


def best_offsets_f1(y, proba):
    logp = np.log(np.maximum(proba, 1e-9))
    grid = np.arange(-0.5, 1.5, 0.1)
    return max(macro_f1(y, np.argmax(logp + np.array([a, b, 0]), 1)) for a in grid for b in grid)


def main():
    data_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PERTURBQA_DIR", "../shared/perturbqa")
    rows = {c: load(data_dir, c) for c in LINES}
    train = [r for c in LINES for r in rows[c] if r[4] == "train"]
    perts = sorted({r[1] for c in LINES for r in rows[c]})
    pert_id = {p: i for i, p in enumerate(perts)}
    columns = {k: i for i, k in enumerate(sorted({(r[0], r[2]) for r in train}))}
    outcome = collections.defaultdict(dict)  # (line, gene) -> pert -> label
    gene_counts = collections.defaultdict(lambda: np.zeros(3))
    for c, p, g, y, _ in train:
        outcome[(c, g)][p] = y
        gene_counts[(c, g)][y] += 1
    for line in LINES:
        other = [r for r in train if r[0] != line]
        de = sp.csr_matrix(([1.0 if r[3] != NDE else 0.0 for r in other],
                            ([pert_id[r[1]] for r in other], [columns[(r[0], r[2])] for r in other])),
                           shape=(len(perts), len(columns)))
        both = (de @ de.T).toarray()
        size = np.asarray(de.sum(1)).ravel()
        union = size[:, None] + size[None, :] - both
        jaccard = np.where(union > 0, both / np.maximum(union, 1), 0)
        trained = np.array(sorted({pert_id[r[1]] for r in train if r[0] == line}))
        measured_elsewhere = {(r[1], r[2]) for r in other}
        test = [r for r in rows[line] if r[4] == "test" and (r[1], r[2]) not in measured_elsewhere]
        neighbours = {}
        feats, labels, row_perts = [], [], []
        for _, p, g, y, _ in test:
            if p not in neighbours:
                sim = jaccard[pert_id[p], trained]
                order = sorted(range(len(trained)), key=lambda k: (-sim[k], perts[trained[k]]))
                neighbours[p] = [perts[trained[k]] for k in order[:NEIGHBOURS] if sim[k] > 0 and perts[trained[k]] != p]
            counts = gene_counts.get((line, g), np.zeros(3))
            n = counts.sum()
            on_gene = outcome.get((line, g), {})
            got = [on_gene[q] for q in neighbours[p] if q in on_gene]
            n_de = sum(v != NDE for v in got)
            feats.append([(counts[UP] + counts[DOWN]) / n if n else -1, counts[UP] / max(counts[UP] + counts[DOWN], 1),
                          np.log1p(n), n_de / len(got) if got else -1,
                          sum(v == UP for v in got) / n_de if n_de else -1, len(got)])
            labels.append(y)
            row_perts.append(p)
        x, y, row_perts = np.array(feats), np.array(labels), np.array(row_perts)
        uniq = np.unique(row_perts)
        fit_perts = set(np.random.default_rng(1).permutation(uniq)[: len(uniq) // 2])
        fit = np.array([p in fit_perts for p in row_perts])
        out = []
        for name, cols in [("gene", [0, 1, 2]), ("gene + similar", [0, 1, 2, 3, 4, 5])]:
            model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05).fit(x[fit][:, cols], y[fit])
            proba = model.predict_proba(x[~fit][:, cols])
            out.append(f"{name}: log-loss {log_loss(y[~fit], proba, labels=[0, 1, 2]):.4f} "
                       f"macro-F1 {best_offsets_f1(y[~fit], proba):.4f}")
        print(f"{line} ({len(test)} rows, {np.mean(x[:, 5] > 0):.0%} with a similar pert measured): " + "; ".join(out))


if __name__ == "__main__":
    main()
