"""Cursors: where a record stands in the store's one ordered feed.

Inside the gateway a cursor is the feed's sequence number (`feed_items.id`). Outside it is
an opaque string: `c` and the number in 13 base32hex digits (fixed width, so two cursors
also sort as strings the way the feed does). Clients keep and hand back cursors; they never
parse them or count with them, which leaves the gateway free to change what a cursor holds
(a version letter other than `c`) when several gateways share one database.
"""

from __future__ import annotations

import re
from typing import Generic, NamedTuple, TypeVar

from ..protocol.errors import RTMSError

_DIGITS = "0123456789abcdefghijklmnopqrstuv"  # base32hex: keeps the numbers' order
_WIDTH = 13  # 13 x 5 bits hold any 64-bit sequence number
_VERSION = "c"
_SHAPE = re.compile(rf"{_VERSION}[0-9a-v]{{{_WIDTH}}}")
MAX_SEQ = 2**63 - 1  # the largest id either database's BIGINT holds

R = TypeVar("R")


class MalformedCursor(RTMSError):
    """A cursor this gateway never gave out (mistyped, cut, or made up)."""


class Cursored(NamedTuple, Generic[R]):
    """A stored record and its place in the feed."""

    seq: int
    record: R


def format_cursor(seq: int) -> str:
    digits = []
    for _ in range(_WIDTH):
        seq, digit = divmod(seq, 32)
        digits.append(_DIGITS[digit])
    return _VERSION + "".join(reversed(digits))


def parse_cursor(text: str) -> int:
    """The sequence number a cursor stands for; MalformedCursor if it is not one of ours."""
    if len(text) != _WIDTH + 1 or not _SHAPE.fullmatch(text):
        raise MalformedCursor("not a cursor this gateway gave out")
    seq = int(text[1:], 32)
    if seq > MAX_SEQ:
        raise MalformedCursor("not a cursor this gateway gave out")
    return seq
