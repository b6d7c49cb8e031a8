"""What the engine peers (peer_engine.py on CPU, peer_engine_hf.py on a GPU)
share with bench_engine: the flags, the medians and the JSON rows."""
import argparse


def parse_args(with_device=False):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--reps", type=int, default=5)
    if with_device:
        ap.add_argument("--device", default="cuda")
        ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    return ap.parse_args()


def batches(a):
    return [int(b) for b in a.batches.split(",")]


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def rows_for(batch, a, prefill, decode):
    """Rows named as bench_engine names them, from per-rep tokens/s lists."""
    return [{"name": f"prefill b{batch} t{a.prompt}", "unit": "tokens/s", "value": median(prefill)},
            {"name": f"decode b{batch} +{a.new}", "unit": "tokens/s", "value": median(decode)}]
