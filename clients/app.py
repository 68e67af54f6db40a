"""Flower ClientApp: routes each server message to `fedge.client` and wraps the reply."""

from collections.abc import Callable

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedge import client, dispatch, fast_arrays, object_pulls, secagg, shared_contexts
from fedge.config import RunConfig
from fedge.privacy import RunConfigDpMod
from fedge.refusal import REFUSAL
from fedge.wire import wire_mod

torch.set_num_threads(1)  # one core per client: simulation runs one client per core
dispatch.install()  # inside Flower's simulation engine only (see fedge.dispatch)
shared_contexts.install()  # there too: one run config for all virtual clients (see fedge.shared_contexts)
object_pulls.install()  # retry a missing object after 20 ms, not 1 s (see fedge.object_pulls)
fast_arrays.install()  # .npy headers cached per dtype and shape (see fedge.fast_arrays)


class _ModuleClientApp(ClientApp):
    """Pickles as a reference to this module's `app`.

    Flower's simulation engine sends the ClientApp along with every message to a Ray
    actor; pickled by value (mods, handlers) that cost its process 0.44 ms a call,
    by reference 0.03 ms, and the actor unpickles the same module-level app.
    """

    def __reduce__(self) -> tuple[Callable[[], ClientApp], tuple[()]]:
        return _module_app, ()


def _module_app() -> ClientApp:
    return app


app = _ModuleClientApp(mods=[wire_mod, secagg.RunConfigSecAggMod(), RunConfigDpMod()])  # outermost first


def _source(context: Context) -> client.DataSource:
    return client.data_source(context.node_config, RunConfig.from_flower(context.run_config))


@app.query()
def query(msg: Message, context: Context) -> Message:
    if REFUSAL in msg.content:
        return Message(client.refusal_reply(msg.content, _source(context), context.node_config), reply_to=msg)
    return Message(client.query_reply(_source(context)), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg = RunConfig.from_flower(context.run_config)
    handler = secagg.train_reply if secagg.is_legacy_train(msg.content) else client.train_reply
    return Message(handler(msg.content, _source(context), cfg), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    cfg = RunConfig.from_flower(context.run_config)
    return Message(client.evaluate_reply(msg.content, _source(context), cfg), reply_to=msg)
