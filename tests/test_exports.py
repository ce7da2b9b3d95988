import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtms_gateway.sinks.cursors import Cursored, format_cursor
from rtms_gateway.sinks.exports import TRANSCRIPT_FORMATS, cue_times, iso_utc
from rtms_gateway.sinks.exports import render_transcript as render_rows
from rtms_gateway.sinks.records import TranscriptSegment

T0 = 1_700_000_000_000


def seg(start, end, text, name="Ann", user_id=16778240):
    return TranscriptSegment(meeting_uuid="m", rtms_stream_id="s", user_id=user_id, user_name=name, text=text,
                             timestamp=start, start_time=start, end_time=end, language=9, received_at_ms=0)


SEGMENTS = [
    seg(T0, T0 + 1500, "Hello <everyone> & welcome"),
    seg(T0 + 2000, T0 + 4250, "田中です。よろしく 👋", name="田中 花子"),
    seg(T0 + 3_600_000 + 61_001, None, "שלום", name=None, user_id=0),
]

def render_transcript(segments, fmt, *, meeting_uuid):
    """The transcript of `segments` stored in this order (their cursors 1, 2, ...)."""
    rows = [Cursored(n, s) for n, s in enumerate(segments, 1)]
    return render_rows(rows, fmt, meeting_uuid=meeting_uuid)


CUE = re.compile(r"(\d\d):(\d\d):(\d\d)[.,](\d\d\d) --> (\d\d):(\d\d):(\d\d)[.,](\d\d\d)")


def _ms(h, m, s, ms):
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)


def test_vtt_structure_timing_and_escaping():
    out = render_transcript(SEGMENTS, "vtt", meeting_uuid="m")
    assert out.startswith("WEBVTT\n\n")
    cues = [(_ms(*c[:4]), _ms(*c[4:])) for c in CUE.findall(out)]
    assert cues[:2] == [(0, 1500), (2000, 4250)]
    assert cues[2][0] == 3_661_001 and cues[2][1] > cues[2][0]
    assert "01:01:01.001 --> " in out
    assert "<v Ann>Hello &lt;everyone&gt; &amp; welcome" in out
    assert "<v 田中 花子>田中です。よろしく 👋" in out
    assert "<v Unknown speaker>שלום" in out


def test_srt_numbered_cues_with_commas():
    out = render_transcript(SEGMENTS, "srt", meeting_uuid="m")
    blocks = out.strip().split("\n\n")
    assert [b.split("\n")[0] for b in blocks] == ["1", "2", "3"]
    assert blocks[0].split("\n")[1] == "00:00:00,000 --> 00:00:01,500"
    assert blocks[1].split("\n")[2] == "田中 花子: 田中です。よろしく 👋"


def test_txt_and_json():
    txt = render_transcript(SEGMENTS, "txt", meeting_uuid="m").splitlines()
    assert txt[0] == "[00:00:00] Ann: Hello <everyone> & welcome"
    assert txt[2].startswith("[01:01:01] ")
    data = json.loads(render_transcript(SEGMENTS, "json", meeting_uuid="m"))
    assert data["meeting_uuid"] == "m" and len(data["segments"]) == len(SEGMENTS)
    assert data["segments"][1] == {
        "cursor": format_cursor(2), "user_id": 16778240, "user_name": "田中 花子",
        "text": "田中です。よろしく 👋",
        "start_time": T0 + 2000, "end_time": T0 + 4250, "timestamp": T0 + 2000, "language": 9,
        "rtms_stream_id": "s", "speaker_inferred": False,
        "start_time_iso": "2023-11-14T22:13:22.000Z", "end_time_iso": "2023-11-14T22:13:24.250Z",
        "timestamp_iso": "2023-11-14T22:13:22.000Z"}
    assert data["segments"][2]["end_time"] is None and data["segments"][2]["end_time_iso"] is None
    assert data["next"] is None


def test_empty_and_unknown_format():
    assert render_transcript([], "vtt", meeting_uuid="m") == "WEBVTT\n"
    assert render_transcript([], "txt", meeting_uuid="m") == ""
    assert json.loads(render_transcript([], "json", meeting_uuid="m")) == \
        {"meeting_uuid": "m", "segments": [], "next": None}
    with pytest.raises(ValueError):
        render_transcript(SEGMENTS, "docx", meeting_uuid="m")
    assert set(TRANSCRIPT_FORMATS) == {"txt", "vtt", "srt", "json"}


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 10**7), st.one_of(st.none(), st.integers(-10**4, 10**5)),
                          st.text(max_size=30)), max_size=20))
def test_any_segments_render_with_monotonic_cues(items):
    segments = [seg(T0 + start, None if dur is None else T0 + start + dur, text) for start, dur, text in items]
    times = cue_times(segments)
    assert all(0 <= a < b for a, b in times)
    assert all(times[i][0] <= times[i + 1][0] for i in range(len(times) - 1))
    for fmt in TRANSCRIPT_FORMATS:
        render_transcript(segments, fmt, meeting_uuid="m")


def test_times_in_iso_are_utc_to_the_millisecond_and_none_where_no_calendar_holds_them():
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(T0 + 123) == "2023-11-14T22:13:20.123Z"
    assert iso_utc(-1) == "1969-12-31T23:59:59.999Z"
    assert iso_utc(-30_631_132_800_000) == "0999-05-04T00:00:00.000Z"  # four digits, always
    assert iso_utc(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"
    assert iso_utc(253_402_300_800_000) is None
    assert iso_utc(-(2**63)) is None and iso_utc(2**63) is None
    assert iso_utc(None) is None
