"""Flower's object pulls, retried after 20 ms instead of 1 s.

In Flower 1.42 a message travels as a head and its objects.  Whoever pulls the objects
(the SuperNode from the SuperLink, the ClientApp from its SuperNode, the ServerApp from
the SuperLink) may ask before the sender has finished pushing them; each such miss
waits `PULL_INITIAL_BACKOFF` (1 s), doubling up to 10 s.  On loopback with 3 devices
that miss happened in about one round trip in three and cost ~1 s each time (measured
with FLWR_LOG_LEVEL=DEBUG: a ClientApp's run took 0.2-0.35 s or 1.1-1.3 s, nothing
between).  Every process fedge runs Flower in calls `install()`; the defaults of
Flower's own pull functions change, nothing else.
"""

from __future__ import annotations

from flwr.supercore.inflatable import inflatable_utils

INITIAL_BACKOFF = 0.02  # seconds before the first retry of an object that is not there yet
BACKOFF_CAP = 0.2  # retries at most this far apart: at most 5 small requests a second per missing object


def install() -> None:
    for pull in (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree):
        pull.__kwdefaults__.update(initial_backoff=INITIAL_BACKOFF, backoff_cap=BACKOFF_CAP)
