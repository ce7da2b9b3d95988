"""Media payloads and the per-socket feeds the pacer drives.

Audio is the hot path (50 packets/s per stream): every distinct packet body is encoded
once into a `FrameTemplate` (JSON with a hole for the timestamp), so sending a packet is
one bytes formatting and one socket write. Video and screen share are low-rate and go
through a `VideoSource`; the placeholder source sends a fixed tiny JPEG or a solid-colour
PNG per participant, and H.264 sources plug in behind the same interface.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

import msgspec

from ..protocol.constants import (
    Codec,
    DataOption,
    MediaType,
    SampleRate,
    TranscriptLanguage,
)
from ..protocol.messages import (
    AudioData,
    AudioMetadata,
    AudioParams,
    ChatContent,
    ChatData,
    Event,
    EventUpdate,
    MediaContent,
    Message,
    ShareData,
    TranscriptContent,
    TranscriptData,
    TranscriptParams,
    VideoData,
    VideoParams,
    encode,
)
from .records import SentCounts, TimestampJitter
from .scenario import CHUNK_MS, TONE_AMPLITUDE, ChatLine, MeetingScript, Speaker, Utterance

MAX_CATCH_UP = 100  # packets one pump may send when the loop ran late
_AUDIO = int(MediaType.AUDIO)
_TEMPLATE_CACHE_LIMIT = 256


class Sink(Protocol):
    """Where a feed writes: a media socket."""

    def send(self, data: bytes) -> None: ...


# ---- audio samples ----------------------------------------------------------------------


@lru_cache(maxsize=256)
def tone_chunk(tone_hz: int, sample_rate_hz: int, channels: int) -> bytes:
    """One 20 ms chunk of a participant's tone as 16-bit little-endian PCM (see scenario)."""
    n = sample_rate_hz * CHUNK_MS // 1000
    samples = array("h")
    for i in range(n):
        value = round(TONE_AMPLITUDE * math.sin(2 * math.pi * tone_hz * i / sample_rate_hz))
        samples.extend([value] * channels)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def silence_chunk(sample_rate_hz: int, channels: int) -> bytes:
    return bytes(sample_rate_hz * CHUNK_MS // 1000 * channels * 2)


def _alaw(sample: int) -> int:
    """ITU-T G.711 A-law of one 16-bit sample (the reference g711.c algorithm)."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask, value = 0x55, -value - 1
    if value > 0xFFF:
        return 0x7F ^ mask
    segment = max(0, value.bit_length() - 5)
    mantissa = (value >> 1 if segment < 2 else value >> segment) & 0x0F
    return ((segment << 4) | mantissa) ^ mask


def encode_audio(pcm: bytes, codec: int) -> bytes:
    """Wire payload for `pcm` in a stateless codec: L16 as is, G.711 A-law encoded."""
    if codec == Codec.L16:
        return pcm
    if codec == Codec.G711:
        samples = array("h", pcm)
        if sys.byteorder == "big":
            samples.byteswap()
        return bytes(_alaw(s) for s in samples)
    raise ValueError(f"codec {codec} is encoded by a StreamingEncoder")


STREAMED_CODECS = (Codec.OPUS, Codec.G722)


class StreamingEncoder:
    """Real OPUS or G.722 packets (PyAV's libopus and g722 encoders), one per 20 ms."""

    def __init__(self, codec: int, rate: int, channels: int) -> None:
        import av

        self._av = av
        self.layout = "stereo" if channels == 2 else "mono"
        self.ctx = av.CodecContext.create("libopus" if codec == Codec.OPUS else "g722", "w")
        self.ctx.sample_rate, self.ctx.layout, self.ctx.format = rate, self.layout, "s16"
        self.ctx.open()
        self.bytes_per_sample = 2 * channels
        self.pts = 0

    def encode(self, pcm: bytes) -> bytes:
        samples = len(pcm) // self.bytes_per_sample
        frame = self._av.AudioFrame(format="s16", layout=self.layout, samples=samples)
        frame.planes[0].update(pcm)
        frame.sample_rate, frame.pts = self.ctx.sample_rate, self.pts
        self.pts += samples
        return b"".join(bytes(p) for p in self.ctx.encode(frame))


# ---- text and events ----------------------------------------------------------------


def transcript_language(u: Utterance, params: TranscriptParams | None, lid_warmup_ms: int) -> int:
    """The language Zoom labels an utterance with: the source language (`src_language`,
    English by default) for the first `lid_warmup_ms` of the stream, then the one detected;
    always the source language with `enable_lid: false`. A source of -1 (NONE) is
    detection from the start."""
    source = params.src_language if params is not None and params.src_language is not None \
        else int(TranscriptLanguage.ENGLISH)
    if source == TranscriptLanguage.NONE:
        return u.language
    lid = params is None or params.enable_lid is not False
    return u.language if lid and u.start_ms >= lid_warmup_ms else source


def transcript_message(u: Utterance, t0_ms: int, params: TranscriptParams | None, *, zcc: bool,
                       lid_warmup_ms: int = 0) -> TranscriptData:
    """One utterance as Zoom sends it: at its end, stamped with its start and end, in the
    language `transcript_language` says, with `attribute` when the script has one."""
    start = t0_ms + u.start_ms
    content = TranscriptContent(data=u.text, timestamp=start, start_time=start, end_time=t0_ms + u.end_ms,
                                language=transcript_language(u, params, lid_warmup_ms), attribute=u.attribute)
    if zcc:  # Contact Center names the channel, not the user
        content = msgspec.structs.replace(content, channel_id=u.speaker.channel_id, user_name=u.speaker.user_name)
    elif u.anonymous:  # user 0 and no name, as the mixed audio carries them
        content = msgspec.structs.replace(content, user_id=0)
    else:
        content = msgspec.structs.replace(content, user_id=u.speaker.user_id, user_name=u.speaker.user_name)
    return TranscriptData(content=content)


def chat_message(line: ChatLine, t0_ms: int) -> ChatData:
    """A structured chat message: session, operation, sender (and receiver for a direct
    message), thread parent and files where the line has them."""
    sender = line.sender
    receiver = line.receiver
    return ChatData(content=ChatContent(
        data=line.text, timestamp=t0_ms + line.at_ms, user_id=sender.user_id, user_name=sender.user_name,
        message_id=line.message_id, operation_type=int(line.operation),
        parent_message_id=line.parent_message_id,
        chat_session={"type": int(line.session_type), "id": line.chat_session_id},
        sender={"user_id": sender.user_id, "user_name": sender.user_name},
        receiver={"user_id": receiver.user_id, "user_name": receiver.user_name} if receiver is not None else None,
        files=[dict(f) for f in line.files] or None,
    ))


def interpreter_metadata(script: MeetingScript, params: AudioParams, timestamp: int) -> AudioMetadata:
    """META_DATA_AUDIO (23): the AI interpreter's language pairs, as the SDK's strings name
    the fields (the nesting is not documented)."""
    rate = {0: 8000, 1: 16000, 2: 32000, 3: 48000}.get(params.sample_rate or 1, 16000)
    english, spanish = int(TranscriptLanguage.ENGLISH), int(TranscriptLanguage.SPANISH)
    return AudioMetadata(content={"interpreter": {
        "lid": english, "timestamp": timestamp, "channel_num": 1, "sample_rate": rate,
        "channel": params.channel or 1,
        "target": [{"lid": spanish, "tone": 0, "voice_id": "sim-voice-1", "engine": "sim"}],
        "speaker": [{"lid": english, "user_id": p.user_id} for p in script.participants],
    }})


# What the `future_fields` setting adds: a field in the content (or event) object and one
# beside it in the frame, as a later release of Zoom's protocol may add them.
FUTURE_FIELDS: dict[str, Any] = {"future_field": {"since": "a later protocol", "values": [1, 2]}}
FUTURE_FRAME_FIELDS: dict[str, Any] = {"future_frame_field": 7}


def with_future_fields(msg: TranscriptData | ChatData | EventUpdate) -> bytes:
    """`msg` encoded with `FUTURE_FIELDS` in its payload object and `FUTURE_FRAME_FIELDS`
    beside it."""
    frame: dict[str, Any] = msgspec.to_builtins(msg)
    payload = "event" if isinstance(msg, EventUpdate) else "content"
    frame[payload].update(FUTURE_FIELDS)
    frame.update(FUTURE_FRAME_FIELDS)
    return msgspec.json.encode(frame)


def event_message(event: Event, now_ms: int) -> EventUpdate:
    """EVENT_UPDATE for a scripted event, stamped now unless it carries its own time.
    Contact Center events carry `event_ts` where the others carry `timestamp`."""
    if event.participant_info is not None:
        return EventUpdate(event=msgspec.structs.replace(event, event_ts=now_ms))
    return EventUpdate(event=msgspec.structs.replace(event, timestamp=event.timestamp or now_ms))


# ---- templates --------------------------------------------------------------------------

_SENTINELS = (1_000_000_000_000, 2_000_000_000_000)


class FrameTemplate:
    """A message pre-encoded around its timestamp: `render(ts)` is all a send costs."""

    __slots__ = ("head", "tail")

    def __init__(self, make: Callable[[int], Message]) -> None:
        a, b = (encode(make(t)) for t in _SENTINELS)
        i = next(k for k in range(len(a)) if a[k] != b[k])
        width = len(str(_SENTINELS[0]))
        self.head = a[:i]
        self.tail = a[i + width:]

    def render(self, timestamp: int) -> bytes:
        return b"%b%d%b" % (self.head, timestamp, self.tail)


# ---- feeds ------------------------------------------------------------------------------


class AudioFeed:
    """Paces one socket's audio: packets of `send_rate` ms, mixed (user_id 0, no name) or
    one packet per speaking participant (AUDIO_MULTI_STREAMS). With `jitter`, each packet's
    timestamp is off its slot by a few ms, its content still the slot's."""

    __slots__ = ("sink", "script", "t0", "t0_ms", "chunk", "per", "next_due", "rate", "channels",
                 "codec", "multi", "zcc", "counts", "jitter", "_cache", "_encoders")

    def __init__(self, sink: Sink, script: MeetingScript, params: AudioParams, t0: float,
                 t0_ms: int, start_ms: int, counts: SentCounts, *, zcc: bool = False,
                 jitter: TimestampJitter | None = None) -> None:
        self.sink = sink
        self.script = script
        self.t0 = t0
        self.t0_ms = t0_ms
        self.per = (params.send_rate or CHUNK_MS) // CHUNK_MS
        self.chunk = max(0, start_ms // CHUNK_MS)
        self.next_due = t0 + (self.chunk + self.per) * CHUNK_MS / 1000
        self.rate = SampleRate(SampleRate.SR_16K if params.sample_rate is None else params.sample_rate).hz
        self.channels = int(params.channel or 1)
        self.codec = int(params.codec or Codec.L16)
        self.multi = params.data_opt == DataOption.AUDIO_MULTI_STREAMS
        self.zcc = zcc
        self.counts = counts
        self.jitter = jitter
        self._cache: dict[tuple[object, ...], FrameTemplate] = {}
        # OPUS and G.722 frames depend on the ones before: one encoder per speaker (or the
        # mix), each packet encoded as it is sent, not taken from the template cache.
        self._encoders: dict[int, StreamingEncoder] | None = {} if self.codec in STREAMED_CODECS else None

    def pump(self, now: float) -> int:
        sent = 0
        while self.next_due <= now and sent < MAX_CATCH_UP:
            self._emit(self.chunk)
            self.chunk += self.per
            self.next_due = self.t0 + (self.chunk + self.per) * CHUNK_MS / 1000
            sent += 1
        return sent

    def _emit(self, chunk: int) -> None:
        at = chunk * CHUNK_MS
        ts = self.t0_ms + at
        speaker_at = self.script.speaker_at
        if self.per == 1:
            who: tuple[Speaker | None, ...] = (speaker_at(at),)
        else:
            who = tuple(speaker_at(at + j * CHUNK_MS) for j in range(self.per))
        jitter = self.jitter
        if self._encoders is not None:
            self._emit_encoded(ts, at, who)
            return
        if not self.multi:
            self.sink.send(self._template(None, who).render(ts if jitter is None else ts + jitter(_AUDIO, 0, at)))
            self.counts.audio_frames += 1
            return
        for speaker in dict.fromkeys(s for s in who if s is not None):
            stamp = ts if jitter is None else ts + jitter(_AUDIO, speaker.user_id, at)
            self.sink.send(self._template(speaker, who).render(stamp))
            self.counts.audio_frames += 1

    def _emit_encoded(self, ts: int, at: int, who: tuple[Speaker | None, ...]) -> None:
        assert self._encoders is not None
        for speaker in (dict.fromkeys(s for s in who if s is not None) if self.multi else (None,)):
            key = speaker.user_id if speaker is not None else 0
            encoder = self._encoders.get(key)
            if encoder is None:
                encoder = self._encoders[key] = StreamingEncoder(self.codec, self.rate, self.channels)
            payload = encoder.encode(self._pcm(speaker, who))
            if not payload:  # the encoder is still filling its look-ahead
                continue
            stamp = ts if self.jitter is None else ts + self.jitter(_AUDIO, key, at)
            self.sink.send(encode(AudioData(content=MediaContent(
                data=payload, timestamp=stamp, length=len(payload),
                **self._identity(speaker)))))  # type: ignore[arg-type]
            self.counts.audio_frames += 1

    def _pcm(self, speaker: Speaker | None, who: tuple[Speaker | None, ...]) -> bytes:
        quiet = silence_chunk(self.rate, self.channels)
        return b"".join(
            tone_chunk(s.tone_hz, self.rate, self.channels) if s is not None and (speaker is None or s == speaker)
            else quiet for s in who)

    def _identity(self, speaker: Speaker | None) -> dict[str, object]:
        if speaker is None:  # mixed stream: user 0 and no name, as Zoom sends it
            return {"user_id": 0}
        if self.zcc:
            return {"channel_id": speaker.channel_id}
        return {"user_id": speaker.user_id, "user_name": speaker.user_name}

    def _template(self, speaker: Speaker | None, who: tuple[Speaker | None, ...]) -> FrameTemplate:
        # keyed by user ids: cheaper to hash than the Speaker records
        key = (speaker.user_id if speaker else 0, *(s.user_id if s else 0 for s in who))
        template = self._cache.get(key)
        if template is None:
            if len(self._cache) >= _TEMPLATE_CACHE_LIMIT:
                self._cache.clear()
            template = self._cache[key] = self._build(speaker, who)
        return template

    def _build(self, speaker: Speaker | None, who: tuple[Speaker | None, ...]) -> FrameTemplate:
        payload = encode_audio(self._pcm(speaker, who), self.codec)
        ident = self._identity(speaker)
        return FrameTemplate(lambda ts: AudioData(content=MediaContent(
            data=payload, timestamp=ts, length=len(payload), **ident)))  # type: ignore[arg-type]


# ---- video and screen share -------------------------------------------------------------

class FrameEncoder(Protocol):
    """Produces one feed's frames, in order (H.264 frames depend on the ones before)."""

    def frame_bytes(self, speaker: Speaker, index: int) -> bytes: ...


class VideoSource(Protocol):
    """Makes the encoder of each video or share feed (see `video.TestPatternVideo`)."""

    def encoder(self, params: VideoParams) -> FrameEncoder: ...


class VideoFeed:
    """Paces one socket's video (active speaker or the subscribed participant) or share."""

    __slots__ = ("sink", "kind", "who", "params", "encoder", "t0", "t0_ms", "index", "period_ms",
                 "next_due", "counts", "jitter")

    def __init__(self, sink: Sink, kind: MediaType, params: VideoParams,
                 who: Callable[[int], Speaker | None], source: VideoSource, t0: float,
                 t0_ms: int, start_ms: int, counts: SentCounts, jitter: TimestampJitter | None = None) -> None:
        self.sink = sink
        self.kind = kind
        self.who = who
        self.params = params
        self.encoder = source.encoder(params)
        self.t0 = t0
        self.t0_ms = t0_ms
        self.period_ms = 1000 / (params.fps or 1)
        self.index = math.ceil(start_ms / self.period_ms)
        self.next_due = t0 + self.index * self.period_ms / 1000
        self.counts = counts
        self.jitter = jitter

    def pump(self, now: float) -> int:
        sent = 0
        while self.next_due <= now and sent < MAX_CATCH_UP:
            at = int(self.index * self.period_ms)
            speaker = self.who(at)
            if speaker is not None:
                shift = 0 if self.jitter is None else self.jitter(int(self.kind), speaker.user_id, at)
                self._emit(speaker, self.t0_ms + at + shift)
                sent += 1
            self.index += 1
            self.next_due = self.t0 + self.index * self.period_ms / 1000
        return sent

    def _emit(self, speaker: Speaker, ts: int) -> None:
        payload = self.encoder.frame_bytes(speaker, self.index)
        content = MediaContent(data=payload, timestamp=ts,
                               length=len(payload), user_id=speaker.user_id,
                               user_name=speaker.user_name)
        if self.kind == MediaType.VIDEO:
            self.sink.send(encode(VideoData(content=content)))
            self.counts.video_frames += 1
        else:
            self.sink.send(encode(ShareData(content=content)))
            self.counts.share_frames += 1
