"""Scripted meetings: deterministic, Zoom-looking ids, well-formed timelines."""

from __future__ import annotations

import re

from rtms_gateway.protocol.constants import EventType, MediaType, Product
from rtms_gateway.simulator.scenario import (
    ALL_SINGLE_MEDIA,
    build_meeting,
    build_meetings,
    present_at,
)


def test_deterministic_per_seed():
    a, b = build_meeting(5, 3, duration_s=10), build_meeting(5, 3, duration_s=10)
    assert a == b
    assert build_meeting(6, 3, duration_s=10).owner_id != a.owner_id


def test_zoom_looking_ids():
    scripts = build_meetings(1, 30, duration_s=5)
    for s in scripts:
        assert re.fullmatch(r"[A-Za-z0-9+/]{22}==", s.owner_id)
        assert re.fullmatch(r"[0-9a-f]{32}", s.rtms_stream_id)
        assert re.fullmatch(r"[0-9a-f]{32}", s.rtms_session_id)
    assert "/" in scripts[0].owner_id and "+" in scripts[0].owner_id
    assert len({s.rtms_stream_id for s in scripts}) == 30


def test_timeline_is_well_formed():
    for duration in (1.0, 3.0, 30.0):
        s = build_meeting(2, 0, duration_s=duration)
        assert s.utterances and s.utterances[-1].end_ms < s.duration_ms
        for a, b in zip(s.utterances, s.utterances[1:]):
            assert a.start_ms < a.end_ms <= b.start_ms  # no overlap
        for u in s.utterances:
            assert u.speaker in present_at(s, u.start_ms)
        assert s.events[0].at_ms == 0 and s.events[0].event.event_type == EventType.PARTICIPANT_JOIN
        assert all(c.sender in present_at(s, c.at_ms) for c in s.chat)


def test_offered_media_shapes_the_script():
    s = build_meeting(1, 0, offered=MediaType.TRANSCRIPT)
    assert not s.chat and not s.shares
    assert s.offered == MediaType.TRANSCRIPT
    assert build_meeting(1, 0, offered=MediaType.ALL).offered == ALL_SINGLE_MEDIA


def test_product_mix_and_payloads():
    scripts = build_meetings(0, 8, products=list(Product), duration_s=3)
    assert [s.product for s in scripts] == list(Product) * 2
    for s in scripts:
        started = s.started_payload("wss://h/x")
        assert started[s.product.id_key] == s.owner_id and started["server_urls"] == "wss://h/x"
        assert s.stopped_payload(6)["stop_reason"] == 6


def test_tones_are_whole_periods_per_chunk():
    s = build_meeting(3, 0)
    assert len({p.tone_hz for p in s.participants}) == len(s.participants)
    assert all(p.tone_hz % 50 == 0 for p in s.participants)
