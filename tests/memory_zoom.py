"""Zoom's side of a stream over the in-memory transport, scripted with real protocol
messages: what the unit tests of the client stream and the stream manager share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rtms_gateway.client.lifecycle import Ended, LifecycleChange
from rtms_gateway.client.memory import MemoryTransport, ServerEnd
from rtms_gateway.protocol import messages as m
from rtms_gateway.protocol.constants import MsgType, StreamState

SIGNALING_URL = "wss://zoom.test/signaling"
AUDIO_URL = "wss://zoom.test/audio"
TRANSCRIPT_URL = "wss://zoom.test/transcript"
MEDIA_URLS = {"audio": AUDIO_URL, "transcript": TRANSCRIPT_URL}


async def until(condition: Callable[[], object], turns: int = 10_000) -> None:
    """Until `condition()` holds, letting the event loop run (no wall-clock time: every
    wait in these tests is on the virtual clock, so only loop turns are needed)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never came true")


async def accept_signaling(transport: MemoryTransport, urls: dict[str, str] = MEDIA_URLS,
                           status: int = 0) -> ServerEnd:
    """The next socket, answered as Zoom's signaling server answers a good handshake."""
    end = await transport.accept()
    request = await end.receive()
    assert isinstance(request, m.SignalingHandshakeReq), request
    server = m.MediaServer(server_urls=urls) if status == 0 else None
    end.send(m.SignalingHandshakeResp(status_code=status, reason="" if status == 0 else "refused",
                                      media_server=server))
    return end


async def accept_media(transport: MemoryTransport, status: int = 0) -> ServerEnd:
    """The next socket, answered as a media server answers its handshake."""
    end = await transport.accept()
    request = await end.receive()
    assert isinstance(request, m.DataHandshakeReq), request
    end.send(m.DataHandshakeResp(status_code=status, reason="" if status == 0 else "refused",
                                 media_params=request.media_params))
    return end


async def accept_stream(transport: MemoryTransport) -> tuple[ServerEnd, dict[str, ServerEnd]]:
    """Signaling and both media sockets (audio, transcript), each handshake accepted."""
    signaling = await accept_signaling(transport)
    media = [await accept_media(transport), await accept_media(transport)]
    return signaling, {end.url: end for end in media}


def transcript(text: str, timestamp: int = 1_700_000_000_000) -> m.TranscriptData:
    return m.TranscriptData(content=m.TranscriptContent(data=text, timestamp=timestamp,
                                                        user_id=16778240, user_name="Ada"))


def terminated(reason: int) -> m.StreamStateUpdate:
    return m.StreamStateUpdate(state=int(StreamState.TERMINATED), reason=reason)


def msg_types(frames: list[Any]) -> list[MsgType]:
    return [MsgType(frame.msg_type) for frame in frames]


class Recorder:
    """A stream's observer that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    def on_message(self, stream: object, msg: object) -> None:
        self.seen.append(msg)

    def on_lifecycle(self, stream: object, change: LifecycleChange) -> None:
        self.seen.append(change)

    @property
    def ended(self) -> bool:
        return bool(self.seen) and isinstance(self.seen[-1], Ended)
