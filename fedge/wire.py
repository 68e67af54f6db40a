"""The model on the wire as one flat array instead of one array per layer.

Flower moves every Array of a message as objects of their own (the Array and its
chunk, one request each between ServerApp, SuperLink, SuperNode and ClientApp), one
after the other: the six arrays of a 64-64 MLP make 15 objects per message, one flat
array makes 5.  fedge packs the "arrays" record of each message where it leaves and
unpacks it where it arrives, at the edges only: the server's exchange
(`fedge.federation`) and the ClientApp's outermost mod (`wire_mod`).  Strategies,
validation, DP and SecAgg+ mods and the handlers in between see the usual named arrays.

The server sends the layout (names and shapes, in order) in the message's config; a
reply comes back in the layout it was sent.  Anything that does not fit the layout
(a compressed update, a tampered reply) travels and arrives as it is, for validation
to judge.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from fedge.fast_arrays import array_record

ARRAYS = "arrays"
CONFIG = "config"
FLAT = "flat"
NAMES = "wire-names"
SHAPES = "wire-shapes"  # one "64,64"-style string per array
DTYPE = np.float32


@dataclass(frozen=True)
class Layout:
    """Names and shapes of a model's arrays, in the order they are packed."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, record: ArrayRecord) -> Layout | None:
        """The layout of `record`; None when it cannot be packed (not all float32)."""
        if not record or any(array.dtype != np.dtype(DTYPE).name for array in record.values()):
            return None
        return cls(tuple(record.keys()), tuple(tuple(array.shape) for array in record.values()))

    @classmethod
    def from_config(cls, config: ConfigRecord | None) -> Layout | None:
        if config is None or NAMES not in config:
            return None
        shapes = tuple(tuple(int(n) for n in s.split(",") if n) for s in config[SHAPES])
        return cls(tuple(config[NAMES]), shapes)

    def to_config(self) -> dict[str, list[str]]:
        return {NAMES: list(self.names), SHAPES: [",".join(map(str, shape)) for shape in self.shapes]}

    @functools.cached_property
    def offsets(self) -> tuple[int, ...]:
        """Where each array starts in the flat array, and (last) where the flat array ends."""
        return tuple(itertools.accumulate((math.prod(shape) for shape in self.shapes), initial=0))


def pack(record: ArrayRecord, layout: Layout) -> ArrayRecord:
    """One flat float32 array, when `record` holds exactly the layout's arrays."""
    if Layout.of(record) != layout:
        return record
    return array_record({FLAT: np.concatenate([array.numpy().ravel() for array in record.values()])})


def unpack(record: ArrayRecord, layout: Layout) -> ArrayRecord:
    """The named arrays again, when `record` is a packed copy of this layout."""
    if list(record.keys()) != [FLAT]:
        return record
    flat = record[FLAT].numpy()
    ends = layout.offsets
    if flat.dtype != DTYPE or flat.shape != (ends[-1],):
        return record
    return array_record({name: flat[start:end].reshape(shape)
                         for name, shape, start, end in zip(layout.names, layout.shapes, ends, ends[1:])})


def with_arrays(content: RecordDict, arrays: ArrayRecord) -> RecordDict:
    return RecordDict({**content, ARRAYS: arrays})


class Packer:
    """Server side: packs outgoing messages' arrays, unpacks the replies to them."""

    def __init__(self) -> None:
        self._packed: dict[int, tuple[ArrayRecord, ArrayRecord, Layout]] = {}  # id(arrays) -> (arrays, packed, layout)

    def outgoing(self, message: Message) -> Layout | None:
        """Pack `message` in place; return the layout its reply will come back in."""
        content = message.content
        if ARRAYS not in content or CONFIG not in content:
            return None
        arrays = content[ARRAYS]
        if id(arrays) not in self._packed:  # every message of a round carries the same model: pack it once
            layout = Layout.of(arrays)
            if layout is None:
                return None
            self._packed = {id(arrays): (arrays, pack(arrays, layout), layout)}
        _, packed, layout = self._packed[id(arrays)]
        config = ConfigRecord({**content[CONFIG], **layout.to_config()})
        message.content = RecordDict({**content, ARRAYS: packed, CONFIG: config})
        return layout

    @staticmethod
    def incoming(reply: Message, layout: Layout | None) -> None:
        """Unpack `reply` in place, if it is a packed reply of `layout`."""
        if layout is not None and not reply.has_error() and ARRAYS in reply.content:
            reply.content = with_arrays(reply.content, unpack(reply.content[ARRAYS], layout))


def wire_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Client mod, outermost: unpack what arrives, pack the reply the same way."""
    layout = Layout.from_config(msg.content.get(CONFIG)) if ARRAYS in msg.content else None
    if layout is None:
        return call_next(msg, context)
    msg.content = with_arrays(msg.content, unpack(msg.content[ARRAYS], layout))
    reply = call_next(msg, context)
    if not reply.has_error() and ARRAYS in reply.content:
        reply.content = with_arrays(reply.content, pack(reply.content[ARRAYS], layout))
    return reply
