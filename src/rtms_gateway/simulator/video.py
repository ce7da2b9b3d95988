"""Real video for the simulator: an H.264 test pattern, and JPG/PNG stills, at the
resolution and rate the client asked for (PyAV's libx264, mjpeg and png encoders).

Each video or share feed gets its own encoder: H.264 frames depend on the ones before, so
one feed is one continuous stream whose content follows the participant on screen. The
encoder is set up as a live sender would be (baseline profile, no B-frames, no delay):
every call yields exactly one Annex-B access unit, with SPS/PPS repeated at each key
frame (once a second), so a receiver can start at any key frame.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import cast

import av

from ..protocol.constants import Codec, Resolution
from ..protocol.messages import VideoParams
from .scenario import Speaker

DEFAULT_RESOLUTION = Resolution.HD


def frame_size(params: VideoParams) -> tuple[int, int]:
    return Resolution(params.resolution or DEFAULT_RESOLUTION).size


def speaker_colour(speaker: Speaker) -> tuple[int, int, int]:
    """A YUV colour of the participant's own, stable across runs."""
    return 96, (speaker.tone_hz * 7) % 200 + 28, (speaker.user_id >> 3) % 200 + 28


class H264Pattern:
    """Moving bars over the participant's colour, encoded as a live H.264 stream."""

    def __init__(self, params: VideoParams) -> None:
        self.width, self.height = frame_size(params)
        fps = params.fps or 25
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base, ctx.framerate, ctx.gop_size = Fraction(1, fps), Fraction(fps), fps
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                       "x264-params": f"keyint={fps}:min-keyint={fps}:repeat-headers=1:annexb=1:bframes=0"}
        ctx.open()
        self.ctx = ctx
        self.frame = av.VideoFrame(self.width, self.height, "yuv420p")
        self.count = 0

    def frame_bytes(self, speaker: Speaker, index: int) -> bytes:
        luma, u, v = self.frame.planes
        y, cb, cr = speaker_colour(speaker)
        luma.update(_bars(luma.line_size, index % 64, y) * self.height)
        u.update(bytes([cb]) * u.buffer_size)
        v.update(bytes([cr]) * v.buffer_size)
        self.frame.pts = self.count
        self.count += 1
        return b"".join(bytes(p) for p in self.ctx.encode(self.frame))


@lru_cache(maxsize=64)
def _bars(width: int, phase: int, level: int) -> bytes:
    return bytes(level + 100 * (((x + phase * 8) // 64) % 2) for x in range(width))


@lru_cache(maxsize=256)
def still_image(codec: Codec, width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """One JPG or PNG of the participant's colour at the requested size."""
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, value in zip(frame.planes, colour):
        plane.update(bytes([value]) * plane.buffer_size)
    name, pix_fmt = ("mjpeg", "yuvj420p") if codec == Codec.JPG else ("png", "rgb24")
    ctx = cast("av.VideoCodecContext", av.CodecContext.create(name, "w"))
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, pix_fmt, Fraction(1, 1)
    ctx.open()
    packets = ctx.encode(frame.reformat(format=pix_fmt)) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


class StillImages:
    def __init__(self, params: VideoParams) -> None:
        self.codec = Codec(params.codec or Codec.JPG)
        self.width, self.height = frame_size(params)

    def frame_bytes(self, speaker: Speaker, index: int) -> bytes:
        return still_image(self.codec, self.width, self.height, speaker_colour(speaker))


class TestPatternVideo:
    """The simulator's default video source: one encoder per feed."""

    __test__ = False  # not a pytest class

    def encoder(self, params: VideoParams) -> H264Pattern | StillImages:
        if params.codec == Codec.H264:
            return H264Pattern(params)
        return StillImages(params)
