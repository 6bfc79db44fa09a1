"""`python -m mpts_fast ...` runs the `mpts-fast` command. It is also the entry point for torchrun:

    torchrun --nproc-per-node=2 -m mpts_fast run -s coreset --dataset digits --rounds 3

Every rank runs the same command; rank 0 prints and writes results (the other ranks' stdout is discarded, their
errors still reach stderr). `@record` (torch.distributed.elastic) writes an exception raised on any rank to the error
file torchrun reads, so the job ends on every rank and torchrun names the failing rank and its message. Ctrl-C ends
every rank with exit status 130, rank 0 alone printing how to resume; torchrun itself then reports the signal with a
SignalException and exits 1 (torch's launcher, not this package, decides that status).
"""
from __future__ import annotations

import os
import signal
import sys

from torch.distributed.elastic.multiprocessing.errors import record


def _interrupt_once() -> None:
    """Ctrl-C reaches a torchrun worker twice: from the terminal (the whole foreground process group) and again from
    torchrun, which forwards the signal it got to its workers. The first raises KeyboardInterrupt (the command saves
    nothing more, rank 0 says how to resume, exit 130); from then on SIGINT is ignored by the OS (SIG_IGN, which
    interpreter shutdown keeps, unlike a Python handler), so the second cannot cut the handling short with a
    traceback or kill the exiting process with the signal instead of status 130."""

    def on_sigint(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


@record
def main() -> None:
    from mpts_fast import distributed
    from mpts_fast.cli.main import main as cli

    if distributed.launched():
        _interrupt_once()
        if os.environ.get("RANK", "0") != "0":
            sys.stdout = open(os.devnull, "w")  # one copy of every table and summary: rank 0's
    try:
        cli(prog_name="mpts-fast")
    except SystemExit as e:
        if not e.code:  # success: leave the process group cleanly (no destroy warnings on exit)
            distributed.teardown()
        raise


if __name__ == "__main__":
    main()
