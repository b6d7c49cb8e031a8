#!/usr/bin/python3
"""Merges an 'ours' and a 'peer' measurement (each {"rows":[{"name","unit","value"}]})
into benchmarks/results/<benchmark>-<device>-<date>.{json,md} in the shape of
DESIGN.md section 6 item 9. Higher is better for every unit except those named in
--lower-is-better (time, memory), where ratio = peer / ours.

Usage: write_results.py --benchmark NAME --device DEV --command CMD --ours FILE --peer FILE
                        --peer-name NAME [--versions JSON] [--notes TEXT] [--lower-is-better s,bytes]
"""
import argparse
import datetime
import json
import os


def main():
    ap = argparse.ArgumentParser()
    for k in ("benchmark", "device", "command", "ours", "peer", "peer-name"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--versions", default="{}")
    ap.add_argument("--notes", default="")
    ap.add_argument("--lower-is-better", default="s,ms,us,bytes,GiB,MiB")
    ap.add_argument("--outdir", default=os.path.join(os.path.dirname(__file__), "results"))
    a = ap.parse_args()
    ours = {r["name"]: r for r in json.load(open(a.ours))["rows"]}
    peer = {r["name"]: r for r in json.load(open(a.peer))["rows"]}
    lower = set(a.lower_is_better.split(","))
    rows = []
    for name, r in ours.items():
        p = peer.get(name)
        ratio = None
        if p and p["value"] and r["value"]:
            ratio = (p["value"] / r["value"]) if r["unit"] in lower else (r["value"] / p["value"])
        rows.append({"name": name, "unit": r["unit"], "ours": r["value"],
                     "peer": p["value"] if p else None, "peer_name": a.peer_name, "ratio": ratio})
    date = datetime.date.today().isoformat()
    out = {"benchmark": a.benchmark, "device": a.device, "date": date,
           "versions": json.loads(a.versions), "command": a.command, "notes": a.notes, "rows": rows}
    os.makedirs(a.outdir, exist_ok=True)
    # The device's name as bench_util.h's slug() writes it ("NVIDIA H200" -> nvidia-h200).
    device = "-".join(w for w in "".join(c.lower() if c.isalnum() else " " for c in a.device).split())
    stem = os.path.join(a.outdir, f"{a.benchmark}-{device}-{date}")
    json.dump(out, open(stem + ".json", "w"), indent=2)
    with open(stem + ".md", "w") as f:
        f.write(f"# {a.benchmark} on {a.device}, {date}\n\n")
        f.write(f"Command: `{a.command}`\n\nVersions: {json.dumps(out['versions'])}\n\n")
        if a.notes:
            f.write(a.notes + "\n\n")
        f.write(f"| case | unit | ours | {a.peer_name} | ratio (>1: ours better) |\n|---|---|---|---|---|\n")
        for r in rows:
            # One decimal, or three significant digits below 10 (0.21 rows/s).
            fmt = lambda v: "n/a" if v is None else f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
            ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            f.write(f"| {r['name']} | {r['unit']} | {fmt(r['ours'])} | {fmt(r['peer'])} | {ratio} |\n")
    print(stem + ".json")


if __name__ == "__main__":
    main()
