"""Speaker attribution from the events timeline, and participants' talk time."""

from __future__ import annotations

from rtms_gateway.gateway.pipeline import transcript_record
from rtms_gateway.gateway.speakers import SpeakerTimeline, is_anonymous
from rtms_gateway.protocol.messages import Event, Participant, TranscriptContent, TranscriptData
from rtms_gateway.sinks.participants import participants
from rtms_gateway.sinks.records import TimelineEvent


def _timeline() -> SpeakerTimeline:
    t = SpeakerTimeline()
    t.on_event(Event(event_type=3, timestamp=0, participants=[Participant(user_id=1, user_name="Ana"),
                                                             Participant(user_id=2, user_name="Bo")]))
    t.on_event(Event(event_type=2, timestamp=1000, user_id=2))  # arrives out of order
    t.on_event(Event(event_type=2, timestamp=100, user_id=1))
    return t


def test_the_floor_holder_over_the_utterance_is_the_speaker():
    t = _timeline()
    assert t.speaker_during(50) is None
    assert t.speaker_during(100) == (1, "Ana")
    assert t.speaker_during(900, 2000) == (2, "Bo"), "active-speaker changes trail speech"
    assert t.speaker_during(100, 1100) == (1, "Ana")


def test_a_transcript_without_speaker_is_attributed_and_marked_inferred():
    t = _timeline()
    anonymous = TranscriptData(content=TranscriptContent(data="hi", timestamp=950, start_time=950,
                                                         end_time=1900, user_id=0))
    rec = transcript_record("m", "s", anonymous, t)
    assert (rec.user_id, rec.user_name, rec.speaker_inferred) == (2, "Bo", True)
    nameless = TranscriptData(content=TranscriptContent(data="yo", timestamp=5, user_id=1))
    rec = transcript_record("m", "s", nameless, t)
    assert (rec.user_id, rec.user_name, rec.speaker_inferred) == (1, "Ana", False)
    assert is_anonymous(-1, "") and is_anonymous(None, None) and not is_anonymous(0, "Ana")


def test_talk_time_runs_from_each_change_to_the_next_or_the_end():
    def ev(kind, ts, user):
        return TimelineEvent(meeting_uuid="m", rtms_stream_id="s", event_type=kind, timestamp=ts, user_id=user,
                             user_name={1: "Ana", 2: "Bo"}[user])

    events = [ev(3, 0, 1), ev(3, 0, 2), ev(2, 1000, 1), ev(2, 4000, 2), ev(4, 6000, 2), ev(4, 9000, 1)]
    people = {p.user_id: p.to_dict() for p in participants(events, end_ms=10_000)}
    assert people[1]["talk_time_s"] == 3.0 and people[2]["talk_time_s"] == 2.0
    assert people[2]["joined_at_ms"] == 0 and people[2]["left_at_ms"] == 6000
