#!/usr/bin/env python3
"""PyTorch's own torchrun (torch.distributed.run), with one default changed where it cannot work.

Debian 13's PyTorch 2.6 is built without libuv, yet its TCPStore asks for libuv by default, so torchrun
fails at start: "RuntimeError: use_libuv was requested but PyTorch was build without libuv support". Where
that is so, the stores torchrun makes here use the classic server (use_libuv=False), as the lessons' own
stores do; everywhere else this is torchrun unchanged.

usage: python3 scripts/torchrun.py [torchrun's options] --no_python build/bin/13_distributed [options]
"""
import sys

import torch.distributed as dist


def libuv_missing():
    try:
        dist.TCPStore("127.0.0.1", 0, 1, True, use_libuv=True)
    except TypeError:
        return False  # a PyTorch before the libuv store (1.13): nothing to change
    except RuntimeError as e:
        return "libuv" in str(e)
    return False


if libuv_missing():
    class TCPStore(dist.TCPStore):  # noqa: D101
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("use_libuv", False)
            super().__init__(*args, **kwargs)

    dist.TCPStore = TCPStore

from torch.distributed.run import main  # noqa: E402  (after the change, so that torchrun's modules see it)

if __name__ == "__main__":
    sys.exit(main())
