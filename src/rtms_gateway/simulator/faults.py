"""Zoom's failure cases, on demand: what the simulator can do wrong, and when.

A fault is written `kind[@seconds][=argument]`: `drop-media@3`, `silent@2=70`,
`reject@0=3`. Without `@` it happens 2 s into streaming. `random_faults` draws some for a
meeting from a seed, so a failing run can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    DROP_SIGNALING = "drop-signaling"  # the signaling socket dies (no close frame)
    DROP_MEDIA = "drop-media"  # one media socket dies
    SILENT = "silent"  # nothing at all (data, keep-alives) for `argument` seconds, sockets open
    REJECT = "reject"  # the next signaling handshake is refused with status `argument`
    MALFORMED = "malformed"  # frames that are not JSON, or JSON of the wrong shape
    TRUNCATED = "truncated"  # a valid frame cut short
    UNKNOWN_TYPE = "unknown-type"  # well-formed frames of message types that do not exist
    DUPLICATE = "duplicate"  # the last frames of every socket sent again
    INTERRUPTED_WEBHOOK = "interrupted-webhook"  # `*.rtms_interrupted` posted, sockets untouched
    MOVE = "move"  # a new `*.rtms_started` for the live stream, with new server URLs
    SLOW_READER = "slow-reader"  # the server stops reading the client for `argument` seconds


DEFAULT_AT_S = 2.0
DEFAULT_ARGUMENT = {FaultKind.SILENT: 70.0, FaultKind.REJECT: 3.0, FaultKind.SLOW_READER: 5.0}
# Faults that a random draw may pick: every one a client should ride out.
RANDOM_KINDS = tuple(k for k in FaultKind if k is not FaultKind.REJECT)


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    at_s: float = DEFAULT_AT_S  # seconds after streaming started
    argument: float | None = None

    @property
    def value(self) -> float | None:
        return self.argument if self.argument is not None else DEFAULT_ARGUMENT.get(self.kind)

    def __str__(self) -> str:
        arg = f"={self.argument:g}" if self.argument is not None else ""
        return f"{self.kind.value}@{self.at_s:g}{arg}"


def parse_fault(text: str) -> Fault:
    """`kind[@seconds][=argument]` -> Fault; ValueError naming what is wrong."""
    spec, _, argument = text.partition("=")
    name, _, at = spec.partition("@")
    try:
        kind = FaultKind(name.strip())
    except ValueError:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(k.value for k in FaultKind)})") from None
    try:
        return Fault(kind, float(at) if at else DEFAULT_AT_S, float(argument) if argument else None)
    except ValueError:
        raise ValueError(f"fault {text!r}: time and argument are numbers (kind@seconds=argument)") from None


def random_faults(seed: int, index: int, count: int, duration_s: float) -> list[Fault]:
    """`count` faults for meeting `index`, at times inside its first two thirds."""
    rng = random.Random(f"rtms-faults:{seed}:{index}")
    latest = max(1.0, duration_s * 2 / 3)
    faults = []
    for _ in range(count):
        kind = rng.choice(RANDOM_KINDS)
        argument = None
        if kind is FaultKind.SILENT:
            argument = round(rng.uniform(1.0, 4.0), 1)
        elif kind is FaultKind.SLOW_READER:
            argument = round(rng.uniform(0.5, 3.0), 1)
        faults.append(Fault(kind, round(rng.uniform(0.5, latest), 2), argument))
    return sorted(faults, key=lambda f: f.at_s)
