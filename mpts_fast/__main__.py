"""`python -m mpts_fast ...` runs the `mpts-fast` command. It is also the entry point for torchrun:

    torchrun --nproc-per-node=2 -m mpts_fast run -s coreset --dataset digits --rounds 3

Every rank runs the same command; rank 0 prints and writes results (the other ranks' stdout is discarded, their
errors still reach stderr). `@record` (torch.distributed.elastic) writes an exception raised on any rank to the error
file torchrun reads, so the job ends on every rank and torchrun names the failing rank and its message.
"""
from __future__ import annotations

import os
import sys

from torch.distributed.elastic.multiprocessing.errors import record


@record
def main() -> None:
    from mpts_fast import distributed
    from mpts_fast.cli.main import main as cli

    if distributed.launched() and os.environ.get("RANK", "0") != "0":
        sys.stdout = open(os.devnull, "w")  # one copy of every table and summary: rank 0's
    try:
        cli(prog_name="mpts-fast")
    except SystemExit as e:
        if not e.code:  # success: leave the process group cleanly (no destroy warnings on exit)
            distributed.teardown()
        raise


if __name__ == "__main__":
    main()
