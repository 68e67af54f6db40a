"""One run config shared by every virtual client's Context in Flower's simulation engine.

Flower 1.42's engine keeps a Context per virtual client and, after each call, stores
the one the Ray actor sent back: an unpickled copy whose run config (fedge's ~40
settings) is a dict of its own.  That is 10.1 KiB kept per client ever called, against
1.8 KiB with one shared dict (`benchmarks/bench_engine_memory.py`); fedge calls every
client once to enrol it, so it grew with the total number of clients rather than with
the sampled ones.  The engine already refuses a Context whose run config differs from the
initial one, so after its check `install()` points the stored Context (and the
initial config) at one dict per run shared by all clients.  Nothing in the engine's
process writes to it: ClientApps run in Ray actors, on their own copies.
"""

from __future__ import annotations

import sys
from typing import Any

from fedge.dispatch import ENGINE_MODULE


def install() -> bool:
    """Share run configs if this process runs Flower's simulation engine; False if not (or done)."""
    if ENGINE_MODULE not in sys.modules:
        return False
    from flwr.compat.client.run_info_store import DeprecatedRunInfoStore

    flower_update = DeprecatedRunInfoStore.update_context
    if hasattr(flower_update, "flower_update"):
        return False
    shared: dict[int, dict[str, Any]] = {}  # run id -> the run config every client's Context holds

    def update_context(self: DeprecatedRunInfoStore, run_id: int, context: Any) -> None:
        flower_update(self, run_id, context)  # raises if the ClientApp changed the run config
        run_info = self.run_infos[run_id]
        run_config = shared.setdefault(run_id, run_info.initial_run_config)
        run_info.initial_run_config = context.run_config = run_config

    update_context.flower_update = flower_update  # type: ignore[attr-defined]
    DeprecatedRunInfoStore.update_context = update_context  # type: ignore[method-assign]
    return True
