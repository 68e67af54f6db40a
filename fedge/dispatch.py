"""Message dispatch in Flower's simulation engine, at one pass per sweep instead of one per client.

Flower 1.42's simulation runtime (`vce_api.add_messages_to_queue`) hands messages to
its workers in sweeps, every 0.1 s: for each of the N virtual clients it asks the
in-memory LinkState for that client's next message, and each ask scans (and re-checks
the expiry and federation of) every stored message.  A sweep costs N × stored
messages: with 10,000 clients and 100 messages a round that is a million checks,
seconds of every round, and enrolling all 10,000 clients costs 10^8.

`add_messages_to_queue` below is the same loop with one pass over the stored
messages per sweep: the same checks, the same rule (at most one message per client
per sweep, marked delivered).  It queues each sweep's messages together, for
`fedge.actor_calls.worker` (installed with it, in place of Flower's worker) to send
each worker's share to its Ray actor in one call.  It also sweeps as soon as the
ServerApp's grid has pushed messages instead of at the next tick, and it makes the
LinkState set `reply_stored` for every reply, which fedge's ServerApp (in the same
process) waits on between looks for replies: together 20-25 ms of every round.
`install()` puts these in place of Flower's; fedge's ClientApp calls it at import, which in a simulation
happens in the engine's process before the loop starts; in a device's process the
engine is not loaded and nothing changes.  Only the in-memory LinkState is handled
this way; any other goes on through Flower's own function.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from queue import Queue
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # fedge.launch reads KEEP_FLOWERS without importing Flower
    from flwr.app import Message

ENGINE_MODULE = "flwr.server.superlink.fleet.vce.vce_api"
KEEP_FLOWERS = "FEDGE_FLOWER_DISPATCH"  # "1": leave Flower's loop in place
SWEEP_SECONDS = 0.02  # Flower's: 0.1; a sweep is cheap now, so messages start sooner

reply_stored = threading.Event()  # set by the engine's LinkState on every stored reply (simulation only)
messages_pushed = threading.Event()  # set by the ServerApp's grid after each push of messages (simulation only)


def install() -> bool:
    """Replace the engine's dispatch loop if this process runs Flower's simulation engine
    (and `fedge simulate --flower-dispatch` did not ask to keep Flower's)."""
    engine = sys.modules.get(ENGINE_MODULE)
    if engine is None or hasattr(engine.add_messages_to_queue, "flower_loop") or os.environ.get(KEEP_FLOWERS):
        return False
    from flwr.superlink.grid.inmemory_grid import InMemoryGrid  # imports Flower: only where its engine runs

    from fedge.actor_calls import Sweep, worker

    flower_loop = engine.add_messages_to_queue

    def add_messages_to_queue(state: Any, queue: Queue[Message], nodes_mapping: dict[int, int],
                              f_stop: threading.Event) -> None:
        if not _is_in_memory(state):
            return flower_loop(state, queue, nodes_mapping, f_stop)
        _signal_replies(state)
        while not f_stop.is_set():
            messages_pushed.clear()  # before the sweep: messages pushed during it wake the next one
            messages = next_messages(state, nodes_mapping)
            if messages:
                queue.put(Sweep(messages))  # shared out among the workers by fedge.actor_calls.worker
            messages_pushed.wait(SWEEP_SECONDS)

    add_messages_to_queue.flower_loop = flower_loop  # type: ignore[attr-defined]
    engine.add_messages_to_queue = add_messages_to_queue
    engine.worker = worker
    InMemoryGrid.push_messages = _signalling_push(InMemoryGrid.push_messages)
    return True


def _signalling_push(flower_push: Callable[..., Any]) -> Callable[..., Any]:
    """The grid's push, then `messages_pushed`: the sweep after a push holds all its messages.

    The grid stores a push's messages one by one; a sweep woken by the first store
    took one to three of a round's ten, and every share then went out in calls of one.
    """
    def push_messages(self: Any, messages: Any) -> Any:
        message_ids = flower_push(self, messages)
        messages_pushed.set()
        return message_ids

    push_messages.flower_push = flower_push  # type: ignore[attr-defined]
    return push_messages


def next_messages(state: Any, nodes: dict[int, int]) -> list[Message]:
    """One sweep: the first undelivered, valid message of each client, marked delivered."""
    from flwr.supercore.date import now

    taken: dict[int, Message] = {}
    with state.lock:
        state._check_stored_messages(set(state.message_ins_store))  # drops expired and orphaned ones
        for message in state.message_ins_store.values():
            node = message.metadata.dst_node_id
            if node in nodes and node not in taken and message.metadata.delivered_at == "":
                taken[node] = message
        delivered_at = now().isoformat()
        for message in taken.values():
            message.metadata.delivered_at = delivered_at
    return list(taken.values())


def _signal_replies(state: Any) -> None:
    """Make `state` set `reply_stored` on every stored reply."""
    store = state.store_message_res

    def store_and_signal(message: Message) -> str | None:
        message_id = store(message)
        reply_stored.set()
        return message_id

    state.store_message_res = store_and_signal


def _is_in_memory(state: Any) -> bool:
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState

    return isinstance(state, InMemoryLinkState)
