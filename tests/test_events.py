"""Events: each product subscribes to every event it offers (RTMS_EVENTS narrows that),
before Zoom sends any, and each event is named by its product's table. Against the
simulator, which sends an event only to a subscriber and replays none (as Zoom)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from rtms_gateway.config import load_settings
from rtms_gateway.gateway.convert import timeline_records
from rtms_gateway.protocol.constants import (
    AUTOMATIC_EVENTS,
    EventType,
    Product,
    ZccEventType,
    event_name,
    offered_events,
    parse_events,
)
from rtms_gateway.protocol.errors import StartupError
from rtms_gateway.protocol.messages import Event, EventUpdate
from rtms_gateway.simulator import build_meeting
from rtms_gateway.sinks.feed import FeedKind, event_item
from rtms_gateway.sinks.records import GatewayEvent

from .gateway_harness import GatewayWithSimulator, make_settings

ZCC_NAMES = {e.name.lower() for e in ZccEventType}

# ---- the tables ---------------------------------------------------------------------------


def test_each_product_is_offered_its_own_table_and_never_the_automatic_events():
    for product in (Product.MEETING, Product.WEBINAR, Product.SESSION):
        assert offered_events(product) == (2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14)
    assert offered_events(Product.CONTACT_CENTER) == tuple(range(8, 30))
    for product in Product:
        assert not set(offered_events(product)) & AUTOMATIC_EVENTS


def test_an_event_number_is_named_by_its_products_table():
    assert event_name(Product.MEETING, 8) == "participant_video_on"
    assert event_name("webinar", 5) == "sharing_start"
    assert event_name(Product.CONTACT_CENTER, 8) == "consumer_answered"
    assert event_name("contact_center", 29) == "conference_participant_left"
    assert event_name("contact_center", 1) == "first_packet_timestamp"  # the automatic ones, everywhere
    assert event_name(Product.MEETING, 29) == "event_29"
    assert event_name(Product.CONTACT_CENTER, 99) == "event_99"


def test_rtms_events_takes_names_for_their_product_and_numbers_for_every_product():
    chosen = parse_events(" participant_join, SHARING_STOP ,consumer_answered,9 ")
    for product in (Product.MEETING, Product.WEBINAR, Product.SESSION):
        assert chosen[product] == (EventType.PARTICIPANT_JOIN, EventType.SHARING_STOP, 9)
    assert chosen[Product.CONTACT_CENTER] == (ZccEventType.CONSUMER_ANSWERED, ZccEventType.CONSUMER_END)
    assert parse_events("20")[Product.MEETING] == ()  # a Contact Center number only
    assert parse_events("20")[Product.CONTACT_CENTER] == (20,)


@pytest.mark.parametrize("value, said", [
    ("participant_join,no_such_event", "unknown event 'no_such_event'"),
    ("1", "sent automatically"),
    ("participant_join,7", "sent automatically"),
    ("media_connection_interrupted", "sent automatically"),
    ("0", "unknown event '0'"),
    ("30", "unknown event '30'"),
    ("\u00b2", "unknown event"),  # a digit to str.isdigit, not a number
    (" , ", "no event given"),
])
def test_a_bad_rtms_events_is_refused_at_start_saying_why(monkeypatch, tmp_path, value, said):
    with pytest.raises(ValueError, match=said):
        parse_events(value)
    monkeypatch.setenv("ZOOM_CLIENT_ID", "id")
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", "secret")
    monkeypatch.setenv("ZOOM_SECRET_TOKEN", "token")
    monkeypatch.setenv("RTMS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RTMS_EVENTS", value)
    with pytest.raises(StartupError) as refused:
        load_settings()
    assert "RTMS_EVENTS" in str(refused.value) and said in str(refused.value)


def test_unset_rtms_events_means_every_event_each_product_offers(tmp_path):
    assert make_settings(tmp_path).product_events is None
    narrowed = make_settings(tmp_path, RTMS_EVENTS="3,4").product_events
    assert narrowed is not None and narrowed[Product.MEETING] == (3, 4)


def test_contact_center_events_take_who_from_participant_info_and_feed_as_contact_center():
    info = {"channel_id": "2", "participant_mode": "callee", "user_id": "agent-7", "display_name": "Ada",
            "queue_name": "Support"}
    msg = EventUpdate(event=Event(event_type=ZccEventType.USER_HOLD, event_ts=1_700_000_000_123,
                                  participant_info=info))
    (row,) = timeline_records("m", "s", msg, product=Product.CONTACT_CENTER.value)
    assert (row.user_id, row.user_name, row.timestamp, row.product) == ("agent-7", "Ada", 1_700_000_000_123,
                                                                      "contact_center")
    assert row.payload is not None and row.payload["participant_info"] == info
    # a caller without a user id is known by their channel, as their audio and transcripts are
    caller = EventUpdate(event=Event(event_type=8, event_ts=5, participant_info={"channel_id": "1"}))
    assert timeline_records("m", "s", caller, product="contact_center")[0].user_id == "1"
    assert event_item(8, "contact_center") == (FeedKind.PARTICIPANT, "contact_center.consumer_answered")
    assert event_item(8, "meeting") == (FeedKind.PARTICIPANT, "participant.video_on")
    assert event_item(2, "contact_center") == (FeedKind.SPEAKER, "speaker.changed")


# ---- against the simulator -------------------------------------------------------------------


async def _stored_events(run, uuid: str) -> list[dict]:
    """The meeting's stored EVENT_UPDATE events (the gateway's own, session states and
    audio metadata, left out)."""
    async with run.http() as http:
        answer = await http.get(f"/api/meetings/{quote(uuid, safe='')}/events")
        answer.raise_for_status()
        gateway_own = {int(e) for e in GatewayEvent}
        return [e for e in answer.json()["events"] if e["event_type"] not in gateway_own]


async def test_a_meeting_stores_sharing_video_and_chat_group_events_and_the_first_joins(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        assert not run.simulator.config.replay_joins  # as Zoom: what is missed is gone
        handle = run.simulator.start_meeting(build_meeting(31, 0, duration_s=4.0))
        record = await handle.wait(30)
        await run.settle()
        assert record.outcome == "completed", record.summary_line()
        assert record.subscribed == set(offered_events(Product.MEETING))

        script = handle.script
        events = await _stored_events(run, script.owner_id)
        assert {e["event_type"] for e in events} == set(record.events)  # all that was sent, stored
        names = {e["event"] for e in events}
        assert names >= {"participant_join", "participant_leave", "active_speaker_change", "sharing_start",
                         "sharing_stop", "participant_video_on", "participant_video_off", "chat_group_create",
                         "chat_group_members_add", "chat_group_delete"}
        # The joins Zoom sends as the stream starts were subscribed to in time.
        first_join = next(s.event for s in script.events if s.event.event_type == EventType.PARTICIPANT_JOIN)
        joined = {e["user_id"] for e in events if e["event"] == "participant_join"}
        assert {p.user_id for p in first_join.participants or ()} <= joined
        sharer = next(e for e in events if e["event"] == "sharing_start")
        assert (sharer["user_id"], sharer["user_name"]) == (script.shares[0].speaker.user_id,
                                                           script.shares[0].speaker.user_name)
        items = await run.gateway.store.feed(meeting_uuid=script.owner_id)
        assert {"sharing.started", "sharing.stopped", "participant.video_on"} <= {i.type for i in items}


async def test_a_contact_center_stream_stores_its_events_by_their_names_with_caller_and_agent(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(build_meeting(32, 0, product=Product.CONTACT_CENTER, duration_s=4.0))
        record = await handle.wait(30)
        await run.settle()
        assert record.outcome == "completed", record.summary_line()
        assert record.subscribed == set(range(8, 30))

        script = handle.script
        caller, agent = script.participants
        events = [e for e in await _stored_events(run, script.owner_id) if e["event_type"] in range(8, 30)]
        assert {e["event"] for e in events} == ZCC_NAMES  # the simulator plays every one
        assert not {e["event"] for e in events} & {"participant_video_on", "chat_group_create"}
        by_name = {e["event"]: e for e in events}
        assert (by_name["consumer_answered"]["user_id"], by_name["consumer_answered"]["user_name"]) == \
            (caller.user_id, caller.user_name)
        assert (by_name["user_hold"]["user_id"], by_name["user_hold"]["user_name"]) == \
            (agent.user_id, agent.user_name)
        assert by_name["user_hold"]["payload"]["participant_info"]["participant_mode"] == "callee"
        items = await run.gateway.store.feed(meeting_uuid=script.owner_id)
        types = {i.type for i in items if i.kind is FeedKind.PARTICIPANT}
        assert {"contact_center.consumer_answered", "contact_center.transfer_completed"} <= types
        assert "participant.video_on" not in types


async def test_rtms_events_narrows_what_each_product_subscribes_to(tmp_path):
    chosen = "participant_join,sharing_start,sharing_stop,consumer_answered,9"
    async with GatewayWithSimulator(tmp_path, RTMS_EVENTS=chosen) as run:
        meeting = run.simulator.start_meeting(build_meeting(33, 0, duration_s=3.0))
        call = run.simulator.start_meeting(build_meeting(33, 1, product=Product.CONTACT_CENTER, duration_s=3.0))
        met, called = await meeting.wait(30), await call.wait(30)
        await run.settle()
        assert met.subscribed == {3, 5, 6, 9}
        assert called.subscribed == {8, 9}
        stored = {e["event_type"] for e in await _stored_events(run, meeting.script.owner_id)}
        assert stored == set(met.events)
        assert {3, 5, 6} <= stored - {int(e) for e in AUTOMATIC_EVENTS} <= {3, 5, 6, 9}
        names = {e["event"] for e in await _stored_events(run, call.script.owner_id)}
        assert names - {e.name.lower() for e in AUTOMATIC_EVENTS} == {"consumer_answered", "consumer_end"}
