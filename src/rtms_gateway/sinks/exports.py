"""Transcript exports: plain text, WebVTT, SRT and JSON.

Cue times are relative to the first segment's start. Zoom gives each utterance a
`start_time` and `end_time` (ms since the epoch); when the end is missing the cue runs to
the next start, or for a reading-speed estimate, and cues never run backwards.
"""

from __future__ import annotations

from typing import Any, Sequence

import msgspec

from .records import TranscriptSegment

TRANSCRIPT_FORMATS: dict[str, str] = {
    "txt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "json": "application/json",
}

_MS_PER_CHAR = 60  # reading speed used when Zoom gave no end time
_MIN_CUE_MS = 500


def transcript_document(meeting_uuid: str, segments: Sequence[TranscriptSegment]) -> dict[str, Any]:
    """The JSON transcript, as the API serves it and `export --format json` writes it."""
    return {"meeting_uuid": meeting_uuid, "segments": [segment_json(seg) for seg in segments]}


def segment_json(seg: TranscriptSegment) -> dict[str, Any]:
    return {"user_id": seg.user_id, "user_name": seg.user_name, "text": seg.text,
            "start_time": seg.start_time, "end_time": seg.end_time, "timestamp": seg.timestamp,
            "language": seg.language, "rtms_stream_id": seg.rtms_stream_id,
            "speaker_inferred": seg.speaker_inferred}


def cue_times(segments: Sequence[TranscriptSegment]) -> list[tuple[int, int]]:
    """(start, end) in ms from the first segment, monotonic and never negative."""
    if not segments:
        return []
    starts = [seg.start_time if seg.start_time is not None else seg.timestamp for seg in segments]
    origin = min(starts)
    out: list[tuple[int, int]] = []
    previous_start = 0
    for i, seg in enumerate(segments):
        start = max(starts[i] - origin, previous_start)
        if seg.end_time is not None and seg.end_time - origin > start:
            end = seg.end_time - origin
        elif i + 1 < len(segments) and starts[i + 1] - origin > start:
            end = starts[i + 1] - origin
        else:
            end = start + max(_MIN_CUE_MS, len(seg.text) * _MS_PER_CHAR)
        out.append((start, end))
        previous_start = start
    return out


def _clock(ms: int, sep: str) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    sec, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{sec:02d}{sep}{milli:03d}"


def _speaker(seg: TranscriptSegment) -> str:
    if seg.user_name:
        return seg.user_name
    return f"User {seg.user_id}" if seg.user_id not in (None, 0, "") else "Unknown speaker"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_txt(segments: Sequence[TranscriptSegment]) -> str:
    lines = [f"[{_clock(start, '.')[:8]}] {_speaker(seg)}: {seg.text}"
             for seg, (start, _) in zip(segments, cue_times(segments))]
    return "\n".join(lines) + ("\n" if lines else "")


def render_vtt(segments: Sequence[TranscriptSegment]) -> str:
    parts = ["WEBVTT", ""]
    for seg, (start, end) in zip(segments, cue_times(segments)):
        parts += [f"{_clock(start, '.')} --> {_clock(end, '.')}",
                  f"<v {_vtt_escape(_speaker(seg))}>{_vtt_escape(seg.text)}", ""]
    return "\n".join(parts)


def render_srt(segments: Sequence[TranscriptSegment]) -> str:
    parts: list[str] = []
    for n, (seg, (start, end)) in enumerate(zip(segments, cue_times(segments)), 1):
        parts += [str(n), f"{_clock(start, ',')} --> {_clock(end, ',')}", f"{_speaker(seg)}: {seg.text}", ""]
    return "\n".join(parts)


def render_json(meeting_uuid: str, segments: Sequence[TranscriptSegment]) -> str:
    return msgspec.json.encode(transcript_document(meeting_uuid, segments)).decode()


_RENDERERS = {"txt": render_txt, "vtt": render_vtt, "srt": render_srt}


def render_transcript(segments: Sequence[TranscriptSegment], fmt: str, *, meeting_uuid: str) -> str:
    if fmt == "json":
        return render_json(meeting_uuid, segments)
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown transcript format {fmt!r}; use one of {', '.join(TRANSCRIPT_FORMATS)}") from None
    return renderer(segments)
