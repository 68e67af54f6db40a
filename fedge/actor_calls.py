"""A worker's share of a dispatch sweep in one Ray actor call, in Flower's simulation engine.

Flower 1.42's engine hands every message to a worker thread (`vce_api.worker`), one
worker per Ray actor, which makes one actor call for it.  A bare call costs ~1 ms
here and ~0.55 ms of CPU on each side (engine and actor), as much as a small
client's local training.  fedge's dispatch loop (`fedge.dispatch`) queues each
sweep's messages together as a `Sweep`; the worker that takes it splits it into one
share per worker, keeps the first and queues the others for the other workers, and
sends its share to its actor in one call.  There the messages run one after the
other through the same ClientApp, each with its own client's Context.

For every message it does what Flower's worker does: the client's Context is taken
before and stored after, a ClientApp that raises gives that message an error reply
(the others in the share go on), every reply gets a new message id, and the
ClientApp's time is added to the run's metrics.  Installed with fedge.dispatch.
"""

from __future__ import annotations

import functools
import math
import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from logging import ERROR
from queue import Empty, Queue
from typing import Any
from uuid import uuid4

from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.client_app import ClientAppException, LoadClientAppError
from flwr.common import log
from flwr.common.constant import ErrorCode

MAX_SHARE = 16  # messages per actor call: keeps one call's payload small and the actors evenly loaded


@dataclass(frozen=True)
class Sweep:
    """The messages one dispatch sweep took (at most one per client), not yet shared out."""

    messages: list[Message]


@dataclass(frozen=True)
class Outcome:
    """One message's result in the actor: the reply, the ClientApp's seconds, and whether it ran
    without raising (only then is the client's Context stored, as Flower's worker does)."""

    reply: Message
    seconds: float
    ok: bool


def shares(messages: list[Message], workers: int) -> list[list[Message]]:
    """Consecutive, near-equal shares: one per worker, more when one would exceed MAX_SHARE."""
    count = min(len(messages), max(workers, math.ceil(len(messages) / MAX_SHARE)))
    return [messages[len(messages) * i // count:len(messages) * (i + 1) // count] for i in range(count)]


def worker(messageins_queue: Queue[Any], messageres_queue: Queue[Message], node_info_store: dict[int, Any],
           backend: Any, f_stop: Any, metrics: Any) -> None:
    """Flower's `vce_api.worker` (same arguments), with one actor call per share instead of per message."""
    while not f_stop.is_set():
        try:
            item = messageins_queue.get(timeout=1.0)
        except Empty:
            continue
        if isinstance(item, Sweep):
            share, *others = shares(item.messages, backend.num_workers)
            for other in others:
                messageins_queue.put(other)
        else:  # a share another worker queued, or one message from Flower's own loop
            share = item if isinstance(item, list) else [item]
        for reply in run_share(share, node_info_store, backend, metrics):
            reply.metadata.__dict__["_message_id"] = str(uuid4())  # as Flower's worker does
            messageres_queue.put(reply)


def run_share(share: list[Message], node_info_store: dict[int, Any], backend: Any, metrics: Any) -> list[Message]:
    """Each message's reply, from one call to an actor of the Ray backend's pool."""
    try:
        contexts = [node_info_store[m.metadata.dst_node_id].retrieve_context(run_id=m.metadata.run_id)
                    for m in share]
        results = _actor_call(backend, share, contexts)
    except Exception as ex:  # the call itself failed (its actor died, the ClientApp did not load): all of it
        log(ERROR, "fedge: a call of %s message(s) to a Ray actor failed: %s", len(share), ex)
        log(ERROR, traceback.format_exc())
        return [error_reply(message, ex) for message in share]
    replies = []
    for message, (outcome, context) in zip(share, results, strict=True):
        metrics.add_clientapp_runtime(outcome.seconds)
        reply = outcome.reply
        if outcome.ok:
            try:
                node_info_store[message.metadata.dst_node_id].update_context(message.metadata.run_id,
                                                                             context=context)
            except Exception as ex:  # Flower refuses a Context whose run config the ClientApp changed
                log(ERROR, "fedge: node %s: %s", message.metadata.dst_node_id, ex)
                reply = error_reply(message, ex)
        replies.append(reply)
    return replies


def _actor_call(backend: Any, share: list[Message], contexts: list[Context]) -> list[tuple[Outcome, Context]]:
    """What RayBackend.process_message does for one message, for a whole share.

    Each (message, Context) travels pickled on its own, and each result too, as with
    one call per message: pickled together, what messages share (a round sends one
    model object to every client) would arrive as one object, and the first client's
    mods could change it for the others.  This caught SecAgg+ failing every round.
    """
    calls = [pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL) for call in zip(share, contexts, strict=True)]
    pool = backend.pool
    future = pool.submit(lambda actor, load, payload, cid, _: actor.run.remote(load, payload, cid, None),
                         (functools.partial(share_runner, backend.app_fn), calls, "share", None))
    try:
        results, _ = pool.fetch_result_and_return_actor_to_pool(future)
    except Exception:
        pool.add_actor_back_to_pool(future)
        raise
    return [pickle.loads(result) for result in results]


def share_runner(load_app: Callable[[], ClientApp]) -> Callable[..., list[bytes]]:
    """In the actor: what Flower's `ClientAppActor.run` calls as its ClientApp, given a share."""
    app = load_app()

    def run_all(message: list[bytes], context: None) -> list[bytes]:
        """`message`: the share's pickled (message, Context) pairs; each result pickled the same way."""
        results = []
        for call in message:
            one_message, one_context = pickle.loads(call)
            outcome = run_one(app, one_message, one_context)
            results.append(pickle.dumps((outcome, one_context), protocol=pickle.HIGHEST_PROTOCOL))
        return results

    return run_all


def run_one(app: Callable[..., Message], message: Message, context: Context) -> Outcome:
    start = time.perf_counter()
    try:
        reply, ok = app(message=message, context=context), True
    except Exception as ex:  # as the actor wraps it for Flower's worker
        reply, ok = error_reply(message, ClientAppException(str(ex))), False
    return Outcome(reply, time.perf_counter() - start, ok)


def error_reply(message: Message, ex: Exception) -> Message:
    """The error reply Flower's worker makes when processing `message` raised `ex`."""
    if isinstance(ex, ClientAppException):
        code = ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    elif isinstance(ex, LoadClientAppError):
        code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION
    else:
        code = ErrorCode.UNKNOWN
    return Message(Error(code=code, reason=f"{type(ex)}:<'{ex}'>"), reply_to=message)
