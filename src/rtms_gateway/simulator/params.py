"""Server-side validation of a media handshake's `media_params` (protocol reference §5).

`accept_params` returns the parameters Zoom would echo in DATA_HAND_SHAKE_RESP (defaults
filled in) or the status code and reason of the first rule broken.
"""

from __future__ import annotations

from ..protocol.constants import (
    AUDIO_CODECS,
    MEDIA_KEY,
    SINGLE_MEDIA_TYPES,
    VIDEO_CODECS,
    AudioChannel,
    Codec,
    ContentType,
    DataOption,
    MediaType,
    Resolution,
    SampleRate,
    StatusCode,
    TranscriptLanguage,
)
from ..protocol.errors import RTMSError
from ..protocol.messages import (
    AudioParams,
    ChatParams,
    MediaParams,
    TranscriptParams,
    VideoParams,
)

MAX_SEND_RATE_MS = 1000
MAX_FPS = 30
# Image codecs are only allowed at low frame rates; above them H.264 is required.
VIDEO_IMAGE_MAX_FPS = 5
DESKSHARE_IMAGE_MAX_FPS = 1  # Zoom's docs; the enum comment says 5
DEFAULT_VIDEO_FPS = 5
DEFAULT_DESKSHARE_FPS = 1
_IMAGE_CODECS = (Codec.JPG, Codec.PNG)
_LANGUAGES = frozenset(int(x) for x in TranscriptLanguage)
_RATES = frozenset(int(x) for x in SampleRate)
_CHANNELS = frozenset(int(x) for x in AudioChannel)
_AUDIO_OPTS = frozenset({int(DataOption.AUDIO_MIXED_STREAM), int(DataOption.AUDIO_MULTI_STREAMS)})
_VIDEO_OPTS = frozenset(
    {int(DataOption.VIDEO_SINGLE_ACTIVE_STREAM), int(DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM)}
)

# Codecs other than L16 take one fixed combination (the audio matrix of §5).
_FIXED_AUDIO = {
    Codec.OPUS: (frozenset({int(SampleRate.SR_48K)}), _CHANNELS),
    Codec.G711: (frozenset({int(SampleRate.SR_8K)}), frozenset({int(AudioChannel.MONO)})),
    Codec.G722: (frozenset({int(SampleRate.SR_16K)}), frozenset({int(AudioChannel.MONO)})),
}


class MediaRefused(RTMSError):
    """A media handshake's parameters break a rule: the status Zoom answers and why."""

    def __init__(self, status: StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


NOT_OFFERED_STATUS = {
    MediaType.AUDIO: StatusCode.MEDIA_TYPE_AUDIO_NOT_SUPPORT,
    MediaType.VIDEO: StatusCode.MEDIA_TYPE_VIDEO_NOT_SUPPORT,
    MediaType.DESKSHARE: StatusCode.MEDIA_TYPE_DESKSHARE_NOT_SUPPORT,
    MediaType.TRANSCRIPT: StatusCode.MEDIA_TYPE_TRANSCRIPT_NOT_SUPPORT,
    MediaType.CHAT: StatusCode.MEDIA_TYPE_CHAT_NOT_SUPPORT,
}


def wanted_media(bits: int, offered: MediaType) -> MediaType:
    """The single media types a `media_type` asks for (`all`: everything offered);
    raises MediaRefused for an invalid bitmask or a type the stream does not offer."""
    if bits <= 0 or bits >= MediaType.ALL << 1:
        raise MediaRefused(StatusCode.MEDIA_TYPE_INVALID_VALUE, f"media_type {bits} is not a valid bitmask")
    if bits & MediaType.ALL:
        return offered
    wanted = MediaType.UNDEFINED
    for kind in SINGLE_MEDIA_TYPES:
        if bits & kind:
            if not offered & kind:
                raise MediaRefused(NOT_OFFERED_STATUS[kind], f"{MEDIA_KEY[kind]} is not offered for this stream")
            wanted |= kind
    return wanted


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value


def accept_audio(p: AudioParams | None) -> AudioParams:
    p = p or AudioParams()
    S = StatusCode
    content = _pick(p.content_type, ContentType.RAW_AUDIO)
    codec = _pick(p.codec, Codec.L16)
    rate = _pick(p.sample_rate, SampleRate.SR_16K)
    channel = _pick(p.channel, AudioChannel.MONO)
    opt = _pick(p.data_opt, DataOption.AUDIO_MIXED_STREAM)
    send_rate = _pick(p.send_rate, 20)
    if codec not in AUDIO_CODECS:
        raise MediaRefused(S.INVALID_MEDIA_AUDIO_CODEC, f"audio codec {codec} is not an audio codec")
    allowed_content = (ContentType.RAW_AUDIO,) if codec == Codec.L16 else (ContentType.RAW_AUDIO, ContentType.RTP)
    if content not in allowed_content:
        raise MediaRefused(S.INVALID_MEDIA_AUDIO_CONTENT_TYPE,
                             f"audio content_type {content} is not allowed with codec {Codec(codec).name}")
    if rate not in _RATES:
        raise MediaRefused(S.INVALID_MEDIA_AUDIO_SAMPLE_RATE, f"audio sample_rate {rate} is unknown")
    if channel not in _CHANNELS:
        raise MediaRefused(S.INVALID_MEDIA_AUDIO_CHANNEL, f"audio channel {channel} is unknown")
    if opt not in _AUDIO_OPTS:
        raise MediaRefused(S.INVALID_MEDIA_AUDIO_DATA_OPT, f"audio data_opt {opt} is not an audio option")
    if send_rate <= 0 or send_rate % 20:
        raise MediaRefused(S.INVALID_MEDIA_AUDIO_SEND_RATE,
                             f"audio send_rate {send_rate} must be a positive multiple of 20 ms")
    send_rate = min(send_rate, MAX_SEND_RATE_MS)
    fixed = _FIXED_AUDIO.get(Codec(codec))
    if fixed is not None:
        rates, channels = fixed
        name = Codec(codec).name
        if rate not in rates:
            raise MediaRefused(S.INVALID_MEDIA_AUDIO_SAMPLE_RATE, f"{name} needs sample_rate {sorted(rates)}")
        if channel not in channels:
            raise MediaRefused(S.INVALID_MEDIA_AUDIO_CHANNEL, f"{name} is mono only")
        if send_rate != 20:
            raise MediaRefused(S.INVALID_MEDIA_AUDIO_SEND_RATE, f"{name} needs send_rate 20")
    return AudioParams(content_type=content, sample_rate=rate, channel=channel, codec=codec,
                       data_opt=opt, send_rate=send_rate)


def _accept_visual(p: VideoParams | None, *, share: bool) -> VideoParams:
    p = p or VideoParams()
    S = StatusCode
    kind = "deskshare" if share else "video"
    codes = (
        (S.INVALID_MEDIA_DESKSHARE_CONTENT_TYPE, S.INVALID_MEDIA_DESKSHARE_CODEC,
         S.INVALID_MEDIA_DESKSHARE_RESOLUTION, S.INVALID_MEDIA_DESKSHARE_FPS)
        if share else
        (S.INVALID_MEDIA_VIDEO_CONTENT_TYPE, S.INVALID_MEDIA_VIDEO_CODEC,
         S.INVALID_MEDIA_VIDEO_RESOLUTION, S.INVALID_MEDIA_VIDEO_FPS)
    )
    image_max = DESKSHARE_IMAGE_MAX_FPS if share else VIDEO_IMAGE_MAX_FPS
    content = _pick(p.content_type, ContentType.RAW_VIDEO)
    resolution = _pick(p.resolution, Resolution.FHD if share else Resolution.HD)
    fps = _pick(p.fps, DEFAULT_DESKSHARE_FPS if share else DEFAULT_VIDEO_FPS)
    if content != ContentType.RAW_VIDEO:
        raise MediaRefused(codes[0], f"{kind} content_type {content} must be RAW_VIDEO")
    if p.codec is not None and p.codec not in VIDEO_CODECS:
        raise MediaRefused(codes[1], f"{kind} codec {p.codec} is not a video codec")
    if resolution not in {int(r) for r in Resolution}:
        raise MediaRefused(codes[2], f"{kind} resolution {resolution} is unknown")
    if not 1 <= fps <= MAX_FPS:
        raise MediaRefused(codes[3], f"{kind} fps {fps} must be 1..{MAX_FPS}")
    codec = p.codec
    if codec is None:
        codec = Codec.JPG
        fps = min(fps, image_max)  # no codec asked: Zoom falls back to JPG at its top rate
    elif codec in _IMAGE_CODECS and fps > image_max:
        raise MediaRefused(codes[3], f"{kind} fps {fps} needs H264 (JPG/PNG go up to {image_max})")
    opt = None
    if not share:
        opt = _pick(p.data_opt, DataOption.VIDEO_SINGLE_ACTIVE_STREAM)
        if opt not in _VIDEO_OPTS:
            raise MediaRefused(S.INVALID_MEDIA_VIDEO_DATA_OPT, f"video data_opt {opt} is not a video option")
    return VideoParams(content_type=content, codec=codec, resolution=resolution, fps=fps, data_opt=opt)


def accept_transcript(p: TranscriptParams | None) -> TranscriptParams:
    p = p or TranscriptParams()
    content = _pick(p.content_type, ContentType.TEXT)
    if content != ContentType.TEXT:
        raise MediaRefused(StatusCode.INVALID_MEDIA_TRANSCRIPT_CONTENT_TYPE,
                             f"transcript content_type {content} must be TEXT")
    language = _pick(p.src_language, TranscriptLanguage.ENGLISH)
    if language not in _LANGUAGES:
        raise MediaRefused(StatusCode.INVALID_MEDIA_TRANSCRIPT_SOURCE_LANGUAGE,
                             f"transcript src_language {language} is unknown")
    lid = True if p.enable_lid is None else p.enable_lid
    return TranscriptParams(content_type=content, src_language=language, enable_lid=lid)


def accept_chat(p: ChatParams | None) -> ChatParams:
    content = _pick((p or ChatParams()).content_type, ContentType.TEXT)
    if content != ContentType.TEXT:
        raise MediaRefused(StatusCode.INVALID_MEDIA_CHAT_CONTENT_TYPE, f"chat content_type {content} must be TEXT")
    return ChatParams(content_type=content)


def accept_params(served: MediaType, requested: MediaParams | None) -> MediaParams:
    """The accepted params for the single media types in `served`; raises MediaRefused."""
    r = requested or MediaParams()
    out = MediaParams()
    if served & MediaType.AUDIO:
        out.audio = accept_audio(r.audio)
    if served & MediaType.VIDEO:
        out.video = _accept_visual(r.video, share=False)
    if served & MediaType.DESKSHARE:
        out.deskshare = _accept_visual(r.deskshare, share=True)
    if served & MediaType.TRANSCRIPT:
        out.transcript = accept_transcript(r.transcript)
    if served & MediaType.CHAT:
        out.chat = accept_chat(r.chat)
    return out


# Status for a media_params block that failed to decode at all (wrong JSON types).
PARAMS_BLOCK_STATUS: dict[str, StatusCode] = {
    **{f"$.media_params.{MEDIA_KEY[kind]}": status for kind, status in (
        (MediaType.AUDIO, StatusCode.INVALID_MEDIA_AUDIO_PARAMS),
        (MediaType.VIDEO, StatusCode.INVALID_MEDIA_VIDEO_PARAMS),
        (MediaType.DESKSHARE, StatusCode.INVALID_MEDIA_DESKSHARE_PARAMS),
        (MediaType.TRANSCRIPT, StatusCode.INVALID_MEDIA_TRANSCRIPT_PARAMS),
        (MediaType.CHAT, StatusCode.INVALID_MEDIA_CHAT_PARAMS),
    )},
    "$.media_params": StatusCode.INVALID_MEDIA_PARAMS,
}


def status_for_field(field: str | None) -> StatusCode:
    """The status for an undecodable handshake, by the JSON path of the bad field."""
    if field:
        for prefix, status in PARAMS_BLOCK_STATUS.items():
            if field == prefix or field.startswith(prefix + ".") or field.startswith(prefix + "["):
                return status
    return StatusCode.INVALID_PAYLOAD
