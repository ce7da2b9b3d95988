"""Audio payloads to 16-bit PCM, so every codec lands in the same time-aligned WAV.

L16 is PCM already; G.711 (A-law only, per the protocol) is a 256-entry table; OPUS and
G.722 go through PyAV's decoders. Where no decoder is available, `pcm_decoder` answers
None and the caller keeps the packets as received.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..protocol.constants import Codec
from ..protocol.errors import RTMSError

log = logging.getLogger(__name__)

PcmDecoder = Callable[[bytes], bytes]


class UndecodableAudio(RTMSError):
    """A payload its codec's decoder cannot read (a corrupt or truncated frame)."""

CODEC_NAMES = {Codec.L16: "l16", Codec.G711: "g711", Codec.G722: "g722", Codec.OPUS: "opus",
               Codec.JPG: "jpg", Codec.PNG: "png", Codec.H264: "h264"}


def _alaw_sample(code: int) -> int:
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    elif segment == 1:
        value += 0x108
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


_ALAW_PCM = [_alaw_sample(c).to_bytes(2, "little", signed=True) for c in range(256)]


def decode_alaw(payload: bytes) -> bytes:
    table = _ALAW_PCM
    return b"".join([table[c] for c in payload])


class _AvDecoder:
    """One PyAV decoder per track: OPUS and G.722 frames depend on the ones before."""

    def __init__(self, name: str, sample_rate: int, channels: int) -> None:
        import av

        self._av = av
        ctx = av.CodecContext.create(name, "r")
        if not isinstance(ctx, av.AudioCodecContext):
            raise TypeError(f"{name} is not an audio decoder")
        self.ctx = ctx
        self.ctx.sample_rate = sample_rate
        self.ctx.layout = "stereo" if channels == 2 else "mono"
        self.bytes_per_sample = 2 * channels
        self.resampler = av.AudioResampler(format="s16", layout=self.ctx.layout.name, rate=sample_rate)

    def __call__(self, payload: bytes) -> bytes:
        out: list[bytes] = []
        try:
            for frame in self.ctx.decode(self._av.Packet(payload)):
                for pcm in self.resampler.resample(frame):
                    out.append(bytes(pcm.planes[0])[: pcm.samples * self.bytes_per_sample])
        except self._av.FFmpegError as exc:
            raise UndecodableAudio(f"{self.ctx.name} frame not decodable: {exc.strerror}") from None
        return b"".join(out)


def pcm_decoder(codec: Codec, sample_rate: int, channels: int) -> PcmDecoder | None:
    """A payload -> little-endian 16-bit PCM function for `codec`, or None if none here."""
    if codec == Codec.L16:  # little-endian on the wire, as in WAV
        return bytes
    if codec == Codec.G711:
        return decode_alaw
    name = {Codec.OPUS: "opus", Codec.G722: "g722"}.get(codec)
    if name is None:
        return None
    try:
        return _AvDecoder(name, sample_rate, channels)
    except (ImportError, ValueError) as exc:  # PyAV missing, or built without this decoder (UnknownCodecError)
        log.info("no %s decoder (%s); keeping the packets as received", name, exc)
        return None
