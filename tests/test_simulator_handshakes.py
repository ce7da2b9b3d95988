"""Signaling and media handshakes: every acceptance and rejection path, over real TLS sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from rtms_gateway.protocol.constants import MediaType, Product
from rtms_gateway.simulator.scenario import ALL_SINGLE_MEDIA
from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.peers.minimal_client import MediaRequest, handshake_signature
from tests.serve_process import eventually

MEDIA_URL = "{base}/media/all/{sid}"


def _hello(handle: Any, msg_type: int = 1, **extra: Any) -> dict[str, Any]:
    s = handle.script
    key = s.product.id_key
    return {"msg_type": msg_type, "protocol_version": 1, "sequence": 7, key: s.owner_id,
            "rtms_stream_id": s.rtms_stream_id,
            "signature": handshake_signature(CLIENT_ID, CLIENT_SECRET, s.owner_id, s.rtms_stream_id), **extra}


async def _ask(sim: Any, url: str, payload: Any, *, stay: bool = False) -> tuple[dict[str, Any], int | None, Any]:
    """Send one handshake; returns the response, the close code (None if still open), the socket."""
    ws = await websockets.connect(url, ssl=sim.client_ssl_context(), subprotocols=["websocket"])
    await ws.send(payload if isinstance(payload, (str, bytes, list)) else json.dumps(payload))
    resp = json.loads(await asyncio.wait_for(ws.recv(), 5))
    if stay:
        return resp, None, ws
    await asyncio.wait_for(ws.wait_closed(), 5)
    return resp, ws.close_code, ws


async def _welcome_once_freed(sim: Any, url: str, payload: Any, busy_status: int) -> Any:
    """Ask until the server has let go of a socket the client closed (it answers
    `busy_status` until then); returns the socket it welcomed."""
    welcomed: list[Any] = []

    async def welcome() -> bool:
        resp, _, ws = await _ask(sim, url, payload, stay=True)
        if resp["status_code"] == 0:
            welcomed.append(ws)
            return True
        assert resp["status_code"] == busy_status, resp
        await ws.close()
        return False

    assert await eventually(welcome, 10), "the closed socket was never let go"
    return welcomed[0]


@pytest.fixture
async def meeting(start_simulator):
    sim = await start_simulator(connect_timeout=30)
    handle = sim.start_meeting(duration=30, media=MediaType.ALL)
    return sim, handle


def _media_url(sim: Any, handle: Any, kind: str = "all") -> str:
    return f"{sim.base_url}/media/{kind}/{handle.script.rtms_stream_id}"


async def test_signaling_ok_lists_every_offered_media_url(start_simulator):
    sim = await start_simulator()
    handle = sim.start_meeting(duration=30, media=MediaType.AUDIO | MediaType.TRANSCRIPT)
    resp, _, ws = await _ask(sim, handle.server_urls, _hello(handle, unknown_field={"x": 1}), stay=True)
    assert ws.subprotocol == "websocket"
    assert resp["msg_type"] == 2 and resp["status_code"] == 0 and resp["sequence"] == 7
    assert set(resp["media_server"]["server_urls"]) == {"audio", "transcript", "all"}
    assert all(u.startswith("wss://localhost:") for u in resp["media_server"]["server_urls"].values())
    first = json.loads(await ws.recv())
    assert first["msg_type"] == 6 and first["event"]["event_type"] == 1
    await ws.close()


async def test_bad_signature_is_status_3_then_close(meeting):
    sim, handle = meeting
    resp, code, _ = await _ask(sim, handle.server_urls, _hello(handle, signature="00" * 32))
    assert (resp["msg_type"], resp["status_code"], code) == (2, 3, 1000)
    assert "signature" in resp["reason"]
    resp, code, _ = await _ask(sim, _media_url(sim, handle), _hello(handle, 3, signature="ab", media_type=8))
    assert (resp["msg_type"], resp["status_code"]) == (4, 3)
    assert [(h.socket, h.status_code) for h in handle.record.handshakes] == [("signaling", 3), ("transcript", 3)]


async def test_signature_for_another_meeting_is_rejected(meeting):
    sim, handle = meeting
    other = "AAAAAAAAAAAAAAAAAAAAAA=="
    sig = handshake_signature(CLIENT_ID, CLIENT_SECRET, other, handle.script.rtms_stream_id)
    resp, _, _ = await _ask(sim, handle.server_urls, _hello(handle, meeting_uuid=other, signature=sig))
    assert resp["status_code"] == 3


async def test_unknown_stream_is_status_2(meeting):
    sim, handle = meeting
    resp, code, _ = await _ask(sim, handle.server_urls, _hello(handle, rtms_stream_id="f" * 32))
    assert (resp["status_code"], code) == (2, 1000)
    assert sim.stray_handshakes[-1].status_code == 2


@pytest.mark.parametrize("payload, field", [
    ({"msg_type": 1, "meeting_uuid": "x", "signature": "y"}, "rtms_stream_id"),
    ({"msg_type": 1, "meeting_uuid": "x", "rtms_stream_id": "z", "signature": 5}, "signature"),
    ("{not json", None),
])
async def test_undecodable_handshake_is_status_4_naming_the_field(meeting, payload, field):
    sim, handle = meeting
    resp, code, _ = await _ask(sim, handle.server_urls, payload)
    assert (resp["status_code"], code) == (4, 1000)
    if field:
        assert field in resp["reason"]


async def test_missing_meeting_id_is_status_4(meeting):
    sim, handle = meeting
    hello = _hello(handle)
    del hello["meeting_uuid"]
    resp, _, _ = await _ask(sim, handle.server_urls, hello)
    assert resp["status_code"] == 4 and "meeting_uuid" in resp["reason"]


@pytest.mark.parametrize("product", list(Product))
async def test_each_product_id_key_is_accepted(start_simulator, product):
    sim = await start_simulator()
    handle = sim.start_meeting(duration=30, product=product)
    resp, _, ws = await _ask(sim, handle.server_urls, _hello(handle), stay=True)
    assert resp["status_code"] == 0
    await ws.close()


async def test_duplicate_signaling_rejected_with_8(meeting):
    sim, handle = meeting
    _, _, first = await _ask(sim, handle.server_urls, _hello(handle), stay=True)
    resp, code, _ = await _ask(sim, handle.server_urls, _hello(handle))
    assert (resp["status_code"], code) == (8, 1000) and "duplicate" in resp["reason"]
    await first.close()
    # the old one is gone: a new signaling socket is welcome
    again = await _welcome_once_freed(sim, handle.server_urls, _hello(handle), busy_status=8)
    await again.close()


async def test_duplicate_signaling_can_evict_the_old_one(start_simulator):
    sim = await start_simulator(duplicate_signaling="evict")
    handle = sim.start_meeting(duration=30)
    _, _, first = await _ask(sim, handle.server_urls, _hello(handle), stay=True)
    resp, _, second = await _ask(sim, handle.server_urls, _hello(handle), stay=True)
    assert resp["status_code"] == 0
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(first.recv(), 5)
    assert first.close_code == 1008
    await second.close()


async def test_media_type_rules(meeting):
    sim, handle = meeting
    url = _media_url(sim, handle)
    for bad in (0, 64, -1):
        resp, _, _ = await _ask(sim, url, _hello(handle, 3, media_type=bad))
        assert resp["status_code"] == 14, bad
    resp, _, audio = await _ask(sim, url, _hello(handle, 3, media_type=1), stay=True)
    assert resp["status_code"] == 0
    resp, _, _ = await _ask(sim, url, _hello(handle, 3, media_type=9))  # audio again (+ transcript)
    assert resp["status_code"] == 16
    resp, _, _ = await _ask(sim, url, _hello(handle, 3, media_type=32))  # all, while audio is open
    assert resp["status_code"] == 16
    await audio.close()
    unified = await _welcome_once_freed(sim, url, _hello(handle, 3, media_type=32), busy_status=16)
    resp, _, _ = await _ask(sim, url, _hello(handle, 3, media_type=8))
    assert resp["status_code"] == 15
    await unified.close()


@pytest.mark.parametrize("bit, status", [(1, 9), (2, 10), (4, 11), (8, 12), (16, 13)])
async def test_media_not_offered(start_simulator, bit, status):
    sim = await start_simulator()
    handle = sim.start_meeting(duration=30, media=ALL_SINGLE_MEDIA & ~MediaType(bit))
    resp, _, _ = await _ask(sim, _media_url(sim, handle), _hello(handle, 3, media_type=bit))
    assert resp["status_code"] == status


REJECTED_PARAMS = [
    (1, {"audio": {"codec": 7}}, 22),
    (1, {"audio": {"content_type": 3}}, 19),
    (1, {"audio": {"content_type": 1, "codec": 1}}, 19),
    (1, {"audio": {"sample_rate": 9}}, 20),
    (1, {"audio": {"codec": 4, "sample_rate": 1}}, 20),
    (1, {"audio": {"channel": 3}}, 21),
    (1, {"audio": {"codec": 2, "sample_rate": 0, "channel": 2}}, 21),
    (1, {"audio": {"data_opt": 3}}, 23),
    (1, {"audio": {"send_rate": 30}}, 24),
    (1, {"audio": {"send_rate": 0}}, 24),
    (1, {"audio": {"codec": 4, "sample_rate": 3, "send_rate": 40}}, 24),
    (1, {"audio": {"sample_rate": "16k"}}, 18),
    (2, {"video": {"content_type": 2}}, 26),
    (2, {"video": {"codec": 1}}, 27),
    (2, {"video": {"resolution": 9}}, 28),
    (2, {"video": {"data_opt": 1}}, 29),
    (2, {"video": {"fps": 31}}, 30),
    (2, {"video": {"codec": 5, "fps": 10}}, 30),
    (2, {"video": []}, 25),
    (4, {"deskshare": {"content_type": 5}}, 32),
    (4, {"deskshare": {"codec": 3}}, 33),
    (4, {"deskshare": {"resolution": 0}}, 34),
    (4, {"deskshare": {"codec": 6, "fps": 2}}, 35),
    (4, {"deskshare": {"fps": "fast"}}, 31),
    (8, {"transcript": {"content_type": 2}}, 37),
    (8, {"transcript": {"src_language": 99}}, 43),
    (8, {"transcript": "english"}, 36),
    (16, {"chat": {"content_type": 1}}, 39),
    (16, {"chat": 5}, 38),
    (1, "params", 17),
]


async def test_media_params_rejections(meeting):
    sim, handle = meeting
    url = _media_url(sim, handle)
    for bits, params, status in REJECTED_PARAMS:
        resp, code, _ = await _ask(sim, url, _hello(handle, 3, media_type=bits, media_params=params))
        assert (resp["status_code"], code) == (status, 1000), (params, resp)
        assert resp["reason"]


ACCEPTED_PARAMS = [
    (1, {"audio": {"send_rate": 2000}}, {"audio": {"content_type": 2, "sample_rate": 1, "channel": 1, "codec": 1,
                                                   "data_opt": 1, "send_rate": 1000}}),
    (1, {"audio": {"codec": 4, "sample_rate": 3, "channel": 2, "data_opt": 2}},
     {"audio": {"content_type": 2, "sample_rate": 3, "channel": 2, "codec": 4, "data_opt": 2, "send_rate": 20}}),
    (1, {"audio": {"codec": 2, "sample_rate": 0, "content_type": 1}},
     {"audio": {"content_type": 1, "sample_rate": 0, "channel": 1, "codec": 2, "data_opt": 1, "send_rate": 20}}),
    (2, {"video": {"fps": 10}}, {"video": {"content_type": 3, "codec": 5, "resolution": 2, "fps": 5, "data_opt": 3}}),
    (2, {"video": {"codec": 7, "fps": 30, "resolution": 3}},
     {"video": {"content_type": 3, "codec": 7, "resolution": 3, "fps": 30, "data_opt": 3}}),
    (4, None, {"deskshare": {"content_type": 3, "codec": 5, "resolution": 3, "fps": 1}}),
    (8, None, {"transcript": {"content_type": 5, "src_language": 9, "enable_lid": True}}),
    (16, {"chat": {}, "audio": {"codec": 99}}, {"chat": {"content_type": 5}}),  # blocks for other media are ignored
]


async def test_media_params_accepted_with_defaults(start_simulator):
    sim = await start_simulator()
    for bits, params, expected in ACCEPTED_PARAMS:
        handle = sim.start_meeting(duration=30)
        extra = {} if params is None else {"media_params": params}
        resp, _, ws = await _ask(sim, _media_url(sim, handle), _hello(handle, 3, media_type=bits, **extra), stay=True)
        assert resp["status_code"] == 0 and resp["payload_encrypted"] is False, resp
        assert resp["media_params"] == expected, params
        await ws.close()


async def test_unknown_path_is_404(meeting):
    sim, _handle = meeting
    with pytest.raises(websockets.InvalidStatus) as err:
        await websockets.connect(f"{sim.base_url}/nowhere", ssl=sim.client_ssl_context())
    assert err.value.response.status_code == 404


@pytest.mark.parametrize("binary, fragmented", [(False, False), (True, False), (False, True), (True, True)])
async def test_client_frames_text_binary_fragmented(sim_and_client, binary, fragmented):
    sim, _client = await sim_and_client(binary_frames=binary, fragmented=fragmented,
                                       media=[MediaRequest("transcript", 8), MediaRequest("audio", 1)],
                                       sim={"keepalive_interval": 0.2})
    handle = sim.start_meeting(duration=30.0, media=MediaType.TRANSCRIPT | MediaType.AUDIO)
    # The meeting lasts until the client answered a keep-alive and a transcript went out.
    assert await eventually(lambda: sum(handle.record.keepalives_answered.values()) >= 1
                            and handle.record.sent.transcripts > 0, 20)
    handle.request_stop()
    record = await handle.wait(10)
    assert record.handshakes_complete and record.frames_rejected == 0
    assert record.subscribed == {2, 3, 4}
    assert record.outcome == "stopped: HOST_TRIGGERED"  # as asked, nothing went wrong before


async def test_meetings_run_under_any_ids_with_short_urls(sim_and_client):
    simulator, client = await sim_and_client(media=[MediaRequest("transcript", 8)])
    ids = [("..", "../../x/pwned"), ("/abs/path", "a/b\x00c\r\n"), ("u" * 10_240, "é" * 4_732)]
    handles = [simulator.start_meeting(duration=0.6, media=MediaType.TRANSCRIPT, seed=i,
                                       meeting_uuid=uuid, stream_id=stream_id)
               for i, (uuid, stream_id) in enumerate(ids)]
    for handle, (uuid, stream_id) in zip(handles, ids):
        assert (handle.script.owner_id, handle.script.rtms_stream_id) == (uuid, stream_id)
        assert handle.started_payload["meeting_uuid"] == uuid and handle.started_payload["rtms_stream_id"] == stream_id
        tail = handle.server_urls.split("/signaling/", 1)[1]
        assert len(handle.server_urls) < 400 and "/" not in tail and "." != tail[:1]
        record = await handle.wait(30)
        assert record.outcome == "completed" and record.handshakes_complete, record.summary_line()
        assert client.streams[stream_id].of_type(17, "transcript")
