#!/usr/bin/python3
"""Independent oracle for `synthpert metrics`: sklearn on a predictions JSONL.

Computes what DESIGN.md section 4 defines, with sklearn doing the arithmetic:
classification_report(zero_division=0) over the three labels (an unparsed
prediction is mapped to a fourth class that no label reports, so it is wrong
for its true class and counts in no class's precision), and roc_auc_score for
the DE and direction AUROCs, per (cell line, gene) group and pooled.
Prints one JSON object with the same key names as our metrics JSON.
"""
import json
import sys

from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, roc_auc_score

LABELS = ["upregulated", "downregulated", "not differentially expressed"]
UNPARSED = "<unparsed>"


def scores(row):
    probs = row.get("probs")
    pred = row["prediction"]
    if probs is not None:
        up, down = probs["upregulated"], probs["downregulated"]
        de = up + down
        direction = up / (up + down) if up + down > 0 else 0.5
        return de, direction
    if pred is None:
        return 0.5, 0.5
    de = 0.0 if pred == LABELS[2] else 1.0
    direction = {LABELS[0]: 1.0, LABELS[1]: 0.0}.get(pred, 0.5)
    return de, direction


def auroc_block(rows):
    out = {}
    for kind in ("de", "dir"):
        ys, ss, groups = [], [], {}
        for r in rows:
            truly_de = r["label"] != LABELS[2]
            if kind == "dir" and not truly_de:
                continue
            de_s, dir_s = scores(r)
            y = (r["label"] == LABELS[0]) if kind == "dir" else truly_de
            s = dir_s if kind == "dir" else de_s
            ys.append(int(y))
            ss.append(s)
            g = groups.setdefault((r["cell_type"], r["gene"]), ([], []))
            g[0].append(int(y))
            g[1].append(s)
        per_gene = [roc_auc_score(y, s) for y, s in groups.values() if 0 < sum(y) < len(y)]
        out[kind + "_per_gene"] = sum(per_gene) / len(per_gene) if per_gene else None
        out[kind + "_genes"] = len(per_gene)
        out[kind + "_pooled"] = roc_auc_score(ys, ss) if 0 < sum(ys) < len(ys) else None
    return out


def metrics(rows):
    y_true = [r["label"] for r in rows]
    y_pred = [r["prediction"] if r["prediction"] is not None else UNPARSED for r in rows]
    rep = classification_report(y_true, y_pred, labels=LABELS, zero_division=0, output_dict=True)
    cm = confusion_matrix(y_true, y_pred, labels=LABELS)
    return {
        "n": len(rows),
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": rep["macro avg"]["f1-score"],
        "weighted_f1": rep["weighted avg"]["f1-score"],
        "unparsed": sum(p == UNPARSED for p in y_pred),
        "per_class": {
            l: {"precision": rep[l]["precision"], "recall": rep[l]["recall"], "f1": rep[l]["f1-score"],
                "support": int(rep[l]["support"])}
            for l in LABELS
        },
        "confusion": cm.tolist(),
        "auroc": auroc_block(rows),
    }


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    out = metrics(rows)
    cells = sorted({r["cell_type"] for r in rows})
    out["per_cell_type"] = {c: metrics([r for r in rows if r["cell_type"] == c]) for c in cells}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
