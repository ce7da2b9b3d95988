"""Participants of a meeting, from its stored timeline, transcript and chat.

Join/leave events give presence; active-speaker changes give talk time (a speaker holds
the floor until the next change, their leaving, or the end of the meeting).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..protocol.constants import EventType
from ..protocol.messages import UserId
from .exports import iso_names, with_iso
from .records import ChatMessage, TimelineEvent, TranscriptSegment, is_nobody

_TIMES = iso_names("joins", "leaves", "joined_at_ms", "left_at_ms")


@dataclass
class Participant:
    user_id: UserId | None
    user_name: str | None = None
    joins: list[int] = field(default_factory=list)  # ms since the epoch
    leaves: list[int] = field(default_factory=list)
    talk_time_ms: int = 0
    segments: int = 0
    chat_messages: int = 0

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["joined_at_ms"] = self.joins[0] if self.joins else None
        body["left_at_ms"] = self.leaves[-1] if self.leaves and len(self.leaves) >= len(self.joins) else None
        body["talk_time_s"] = round(self.talk_time_ms / 1000, 3)
        return with_iso(body, _TIMES)


def participants(events: Iterable[TimelineEvent], segments: Iterable[TranscriptSegment] = (),
                 chats: Iterable[ChatMessage] = (), *, end_ms: int | None = None) -> list[Participant]:
    people: dict[str, Participant] = {}

    def person(user_id: UserId | None, name: str | None) -> Participant:
        p = people.get(str(user_id))
        if p is None:
            p = people[str(user_id)] = Participant(user_id=user_id)
        if name and not p.user_name:
            p.user_name = name
        return p

    ordered = sorted(events, key=lambda e: e.timestamp)
    floor: tuple[Participant, int] | None = None  # who holds it, since when
    last = end_ms if end_ms is not None else (ordered[-1].timestamp if ordered else None)
    for ev in ordered:
        if is_nobody(ev.user_id):
            continue
        p = person(ev.user_id, ev.user_name)
        if ev.event_type == EventType.PARTICIPANT_JOIN:
            p.joins.append(ev.timestamp)
        elif ev.event_type == EventType.PARTICIPANT_LEAVE:
            p.leaves.append(ev.timestamp)
            if floor is not None and floor[0] is p:
                p.talk_time_ms += ev.timestamp - floor[1]
                floor = None
        elif ev.event_type == EventType.ACTIVE_SPEAKER_CHANGE:
            if floor is not None:
                floor[0].talk_time_ms += ev.timestamp - floor[1]
            floor = (p, ev.timestamp)
    if floor is not None and last is not None and last > floor[1]:
        floor[0].talk_time_ms += last - floor[1]
    for seg in segments:
        if seg.user_id is not None:
            person(seg.user_id, seg.user_name).segments += 1
    for chat in chats:
        if chat.sender_user_id is not None:
            person(chat.sender_user_id, chat.sender_name).chat_messages += 1
    return sorted(people.values(), key=lambda p: (p.joins[0] if p.joins else float("inf"), str(p.user_id)))
