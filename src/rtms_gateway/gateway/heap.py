"""The cyclic garbage collector, set for a server that holds many long-lived objects.

A collection of the oldest generation walks every object Python tracks, with the event
loop stopped. Start-up alone leaves about 160,000 (modules, the schema, the app), and each
live subscriber adds a few hundred (its request's coroutines, closures, queue): with a
thousand subscribers a full collection took 100-200 ms, which every item in flight waited
out. So once the gateway is up, what start-up made is moved out of the collector's sight
(`gc.freeze`: it is never garbage), and the youngest generation is collected every 5,000
allocations instead of 700, which makes each older collection rarer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 5_000  # allocations between collections of the youngest generation
MIDDLE_THRESHOLD = 20  # young collections between collections of the middle one
OLD_THRESHOLD = 100  # middle collections before the oldest is even considered


def settle_after_start() -> None:
    """Collect what start-up left, freeze the rest, and collect less often from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
