"""Flower's SuperNode, checking for new messages every --poll-interval seconds instead of 3.

Flower 1.42's SuperNode sleeps a fixed 3 s each time it finds no message for its node
(and 0.5 s at a time while it waits for the ClientApp's reply), with no setting to
change it: a round's message waits on average 1.5 s, and the slowest of several
devices nearly 3 s, before anyone starts training.  This runs Flower's own
`flower-supernode` with those waits capped at the interval.  A shorter interval
costs one small request to the server per interval per idle device: 1 s suits a
fleet of hundreds; raise it for thousands.  Its object pulls retry after 20 ms instead
of 1 s (fedge.object_pulls).

Run by `fedge client`; by hand:
    python -m fedge.supernode --poll-interval 1 [flower-supernode options]
"""

from __future__ import annotations

import sys
import time
from typing import Any

import flwr.supernode.start_client_internal as supernode_loop
from flwr.supernode.cli import flower_supernode

from fedge import object_pulls


class CappedSleep:
    """The `time` module as the SuperNode's loop sees it, every sleep at most `cap` seconds."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.cap))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def main(argv: list[str]) -> int | None:
    if len(argv) < 2 or argv[0] != "--poll-interval":
        raise SystemExit("usage: python -m fedge.supernode --poll-interval SECONDS [flower-supernode options]")
    supernode_loop.time = CappedSleep(float(argv[1]))
    object_pulls.install()
    sys.argv = ["flower-supernode", *argv[2:]]
    return flower_supernode()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
