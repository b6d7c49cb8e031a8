"""PyTorch's own torchrun (torch.distributed.run), for the launch tests.

Debian's torch 1.13 under Python 3.11 fails before starting any worker: its
argument default for --redirects/--tee is None where the launcher expects a
Std value (Std's enum lookup changed in 3.11). This passes Std.NONE for a
None and otherwise runs torchrun unchanged, so the tests exercise the real
agent: its rendezvous store on MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE and
the workers' environment.

Usage: python3 torchrun.py TORCHRUN_ARGS...
"""
import sys

from torch.distributed.elastic.multiprocessing import api as mp_api
import torch.distributed.elastic.multiprocessing as mp
from torch.distributed.run import main

_to_map = mp_api.to_map


def _to_map_or_none(value, nprocs):
    return _to_map(mp_api.Std.NONE if value is None else value, nprocs)


mp_api.to_map = _to_map_or_none
if hasattr(mp, "to_map"):
    mp.to_map = _to_map_or_none

if __name__ == "__main__":
    main(sys.argv[1:])
