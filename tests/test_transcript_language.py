"""The transcript language settings against the simulator: what the gateway asks for is
what Zoom's side labels transcripts with, each stored segment keeps the language it was
labelled with, and a language Zoom refuses never gets as far as a handshake."""

from __future__ import annotations

from urllib.parse import quote

from rtms_gateway.protocol.constants import MediaType, StatusCode, TranscriptLanguage
from rtms_gateway.protocol.messages import MediaParams, TranscriptParams

from .gateway_harness import GatewayWithSimulator

GERMAN, JAPANESE = int(TranscriptLanguage.GERMAN), int(TranscriptLanguage.JAPANESE)
WARMUP_MS = 2000  # simulated: Zoom's detection takes over 30 s in; the script is 5 s long


async def _languages(run, handle):
    """What the simulator sent, what the store kept and what the API shows, per segment."""
    record = await handle.wait(30)
    await run.settle()
    assert record.outcome == "completed", record.summary_line()
    uuid = handle.script.owner_id
    stored = [(s.text, s.language) for s in await run.gateway.store.transcript(uuid)]
    async with run.http() as http:
        body = (await http.get(f"/api/meetings/{quote(uuid, safe='')}/transcript")).json()
    shown = [(s["text"], s["language"]) for s in body["segments"]]
    sent = [(t.data, t.language) for t in record.transcripts]
    assert stored == shown == sent
    return [language for _, language in sent]


async def test_the_language_reaches_zoom_and_detection_takes_over_after_the_warmup(tmp_path):
    async with GatewayWithSimulator(tmp_path, simulator={"lid_warmup_s": WARMUP_MS / 1000},
                                    RTMS_TRANSCRIPT_LANGUAGE="german") as run:
        handle = run.simulator.start_meeting(duration=5.0)
        languages = await _languages(run, handle)
        transcript_socket = handle.stream.session.served[MediaType.TRANSCRIPT]
        assert transcript_socket.params.transcript == TranscriptParams(
            content_type=5, src_language=GERMAN, enable_lid=True)  # what the simulator accepted
        utterances = handle.script.utterances
        assert languages == [GERMAN if u.start_ms < WARMUP_MS else u.language for u in utterances]
        assert languages[0] == GERMAN != languages[-1]  # German first, then as detected


async def test_without_detection_every_segment_stays_in_the_language_asked_for(tmp_path):
    async with GatewayWithSimulator(tmp_path, simulator={"lid_warmup_s": 0.0},
                                    RTMS_TRANSCRIPT_LANGUAGE="20", RTMS_TRANSCRIPT_LID="false") as run:
        handle = run.simulator.start_meeting(duration=4.0)
        languages = await _languages(run, handle)
        assert languages and set(languages) == {JAPANESE}
        assert {u.language for u in handle.script.utterances} != {JAPANESE}  # detection would differ


async def test_a_language_zoom_refuses_costs_the_transcript_socket_only(tmp_path):
    """Settings refuse such a language at start; should one get through all the same (a
    table out of date), Zoom's refusal (43) is recorded and the chat streams on."""
    async with GatewayWithSimulator(tmp_path) as run:
        run.gateway.manager.media_params = MediaParams(transcript=TranscriptParams(content_type=5, src_language=99))
        handle = run.simulator.start_meeting(duration=3.0)
        record = await handle.wait(30)
        await run.settle()
        refused = [h for h in record.handshakes if not h.ok]
        assert [(h.socket, h.status_code) for h in refused] == [
            ("transcript", StatusCode.INVALID_MEDIA_TRANSCRIPT_SOURCE_LANGUAGE)]
        stream = await run.gateway.store.stream(handle.script.rtms_stream_id)
        assert stream.status_code == StatusCode.INVALID_MEDIA_TRANSCRIPT_SOURCE_LANGUAGE
        assert "transcript" in (stream.status_reason or "")
        chats = await run.gateway.store.chat(handle.script.owner_id)
        assert len(chats) == len(record.chat) > 0
        assert await run.gateway.store.transcript(handle.script.owner_id) == []
