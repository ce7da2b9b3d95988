"""Hypothesis strategies that build any protocol model from its declared field types."""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec
from hypothesis import strategies as st

_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_json_scalars = st.none() | st.booleans() | _ints | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return st.builds(tp, **{f.name: strategy_for(f.type) for f in msgspec.structs.fields(tp)})
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(a) for a in typing.get_args(tp)))
    if origin is typing.Annotated:  # Int: an int with 64-bit bounds (the bounds _ints keeps)
        return strategy_for(typing.get_args(tp)[0])
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return _ints
    if tp is str:
        return st.text(max_size=40)
    if tp is bytes:
        return st.binary(max_size=40)
    if tp is Any:
        return _json
    if origin is list:
        (item,) = typing.get_args(tp)
        return st.lists(strategy_for(item), max_size=3)
    if origin is dict:
        key, value = typing.get_args(tp)
        return st.dictionaries(strategy_for(key), strategy_for(value), max_size=3)
    raise NotImplementedError(f"no strategy for {tp!r}")


# Ids as a hostile or broken peer may send them (meeting UUIDs, stream ids): path
# traversal, absolute paths, NUL and other control characters, very long, any text.
_id_pieces = st.sampled_from(["..", ".", "/", "\\", "\x00", "\r\n", "\x1b[2J", "\x7f", "~", "-", "%2F",
                              "pwned", "victim", "abs", "==", "+", " "])
hostile_ids = st.one_of(
    st.sampled_from(["..", ".", "../../x/pwned", "/abs/path", "\x00", "a\r\nb", "\x01\x02\x1f", "x" * 10_240,
                     "../" * 50 + "etc/passwd"]),
    st.lists(_id_pieces, min_size=1, max_size=12).map("".join),
    st.text(min_size=1, max_size=60),
    st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1, max_size=20),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "/", "..", "\x00", "é"]), st.integers(300, 10_240)),
)
