"""Who is who, and who was speaking when, in one stream.

Zoom's mixed audio carries user 0 and no name, and transcripts at times arrive with no
speaker either. The events timeline knows better: join events name the participants and
active-speaker changes say who holds the floor. `SpeakerTimeline` keeps both so the
pipeline can fill in what a frame left out (and mark it as inferred).
"""

from __future__ import annotations

from bisect import bisect_right

from ..protocol.constants import EventType
from ..protocol.messages import Event, UserId
from ..sinks.records import is_nobody


def is_anonymous(user_id: UserId | None, user_name: str | None) -> bool:
    """True when a frame names nobody: no participant's id and no name."""
    return is_nobody(user_id) and not user_name


class SpeakerTimeline:
    __slots__ = ("_speakers", "_times", "names")

    def __init__(self) -> None:
        self.names: dict[UserId | None, str] = {}
        self._times: list[int] = []
        self._speakers: list[tuple[int, UserId | None, str | None]] = []

    def on_event(self, ev: Event) -> None:
        kind = ev.event_type
        if kind == EventType.PARTICIPANT_JOIN and ev.participants:
            for p in ev.participants:
                if p.user_name:
                    self.names[p.user_id] = p.user_name
        elif kind == EventType.ACTIVE_SPEAKER_CHANGE and not is_nobody(ev.user_id):
            if ev.user_name:
                self.names[ev.user_id] = ev.user_name
            at = ev.timestamp or 0
            # Events may arrive out of order across reconnects: keep the list sorted.
            index = bisect_right(self._times, at)
            self._times.insert(index, at)
            self._speakers.insert(index, (at, ev.user_id, ev.user_name or self.names.get(ev.user_id)))
        elif kind == EventType.SHARING_START and ev.user_name and not is_nobody(ev.user_id):
            self.names[ev.user_id] = ev.user_name

    def name_of(self, user_id: UserId | None) -> str | None:
        return self.names.get(user_id)

    def speaker_during(self, start_ms: int, end_ms: int | None = None) -> tuple[UserId | None, str | None] | None:
        """Who held the floor longest between `start_ms` and `end_ms` (an utterance), or
        at `start_ms`. Active-speaker changes trail the start of speech a little, so the
        whole span decides, not its first instant."""
        end_ms = max(end_ms or start_ms, start_ms)
        first = bisect_right(self._times, start_ms) - 1
        last = bisect_right(self._times, end_ms) - 1
        held: dict[UserId | None, int] = {}
        for i in range(max(first, 0), last + 1):
            begin = max(self._times[i], start_ms)
            until = min(self._times[i + 1] if i + 1 < len(self._times) else end_ms, end_ms)
            user_id = self._speakers[i][1]
            held[user_id] = held.get(user_id, 0) + max(until - begin, 0) + (until == begin == start_ms)
        if not held:
            return None
        user_id = max(held, key=held.__getitem__)
        return user_id, self.names.get(user_id)
