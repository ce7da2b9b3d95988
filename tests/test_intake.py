"""Intake on its own: what it holds, whom it pauses, when it lets them go. No event loop,
no store: records in, `take`, `settled`."""

from __future__ import annotations

import pytest

from rtms_gateway.gateway.intake import Intake
from rtms_gateway.metrics import GatewayMetrics, value_of
from rtms_gateway.sinks.journal import JournalBatch
from rtms_gateway.sinks.records import ChatMessage, TimelineEvent, TranscriptSegment


class Stream:
    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.reading = True
        self.pauses = 0

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True


def seg(i: int, stream_id: str = "s") -> TranscriptSegment:
    return TranscriptSegment(meeting_uuid="m", rtms_stream_id=stream_id, user_id=1, user_name=None,
                             text=f"t{i}", timestamp=i)


def event(i: int) -> TimelineEvent:
    return TimelineEvent(meeting_uuid="m", rtms_stream_id="s", event_type=2, timestamp=i, user_id=i)


def intake(**watermarks: int) -> Intake:
    options = {"high_watermark": 100, "low_watermark": 10, "stream_high_watermark": 5, **watermarks}
    return Intake(GatewayMetrics.create(), **options)


def test_a_stream_at_its_watermark_is_paused_alone_until_what_it_holds_is_settled():
    i = intake()
    flood, calm = Stream("flood"), Stream("calm")
    for n in range(4):
        i.add_segment(flood, seg(n))
    i.add_chat(calm, ChatMessage(meeting_uuid="m", rtms_stream_id="calm", message_id="c", sender_user_id=1,
                                 sender_name=None, receiver_user_id=None, receiver_name=None,
                                 chat_session_type=None, text="hi", operation_type=None, timestamp=1))
    assert flood.reading and calm.reading
    i.add_segment(flood, seg(4))
    i.add_segment(flood, seg(5))  # past the mark: paused once, not again
    assert (flood.reading, flood.pauses, calm.reading) == (False, 1, True)
    assert value_of(i.metrics.paused) == 1
    batch = i.take()
    assert len(batch) == 7 and i.pending == 0
    assert not flood.reading, "taken is not yet committed: still paused"
    i.settled()
    assert flood.reading


def test_a_stream_that_fills_up_again_before_its_batch_settles_stays_paused():
    i = intake()
    flood = Stream("flood")
    for n in range(5):
        i.add_segment(flood, seg(n))
    i.take()
    for n in range(5, 10):  # while the writer commits the first five
        i.add_segment(flood, seg(n))
    i.settled()
    assert not flood.reading and flood.pauses == 1
    i.take()
    i.settled()
    assert flood.reading


def test_past_the_high_watermark_every_socket_pauses_until_the_low_watermark():
    i = intake(high_watermark=20, low_watermark=5, stream_high_watermark=1000)
    calls: list[str] = []
    i.pause, i.resume = (lambda: calls.append("pause")), (lambda: calls.append("resume"))
    streams = [Stream(f"s{n}") for n in range(4)]
    for n in range(25):
        i.add_segment(streams[n % 4], seg(n))
    assert calls == ["pause"] and i.paused
    batch = i.take()
    i.put_back(JournalBatch(segments=batch.segments[:8]))  # the store took only some
    i.settled()
    assert calls == ["pause"], "8 pending is above the low watermark"
    i.take()
    i.settled()
    assert calls == ["pause", "resume"] and not i.paused


def test_records_put_back_come_before_those_added_since():
    i = intake()
    s = Stream("s")
    i.add_segment(s, seg(1))
    i.add_events(s, [event(1), event(2)])
    taken = i.take()
    i.add_segment(s, seg(2))
    i.add_events(s, [event(3)])
    i.put_back(taken)
    again = i.take()
    assert [r.text for r in again.segments] == ["t1", "t2"]
    assert [r.timestamp for r in again.events] == [1, 2, 3]


def test_events_count_one_each_and_none_add_nothing():
    i = intake()
    s = Stream("s")
    woken: list[None] = []
    i.wake = lambda: woken.append(None)
    i.add_events(s, [])
    assert i.pending == 0 and woken == []
    i.add_events(s, [event(n) for n in range(6)])  # one message past the stream's mark
    assert i.pending == 6 and not s.reading and len(woken) == 1


@pytest.mark.parametrize("marks", [{"low_watermark": 100}, {"low_watermark": -1}, {"stream_high_watermark": 0}])
def test_watermarks_that_cannot_work_are_refused(marks):
    with pytest.raises(ValueError, match="watermarks"):
        intake(**marks)
