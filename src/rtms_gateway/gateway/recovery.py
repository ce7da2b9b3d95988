"""Starting again after a crash: finish the files of streams that ended while we were
down, and rejoin the streams whose reconnection window is still open.

Every stream the gateway holds has its `updated_at_ms` refreshed every few seconds, so
after a SIGKILL the store knows which streams were live and how long ago. Those within
Zoom's window are rejoined with their files carried on (same time zero, appended); the
others are marked lost and their files completed (WAV headers repaired, H.264 muxed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..client.lifecycle import StreamState
from ..client.spec import StreamSpec
from ..protocol.constants import Product
from ..sinks.audio import repair_wav
from ..sinks.media_files import finish_file
from ..sinks.paths import MediaPathError, loggable, media_path
from ..sinks.records import MediaFile
from ..sinks.store import Store
from .manager import StreamManager
from .pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    rejoined: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    wavs_repaired: int = 0
    files_finished: int = 0


async def recover(data_dir: Path, store: Store, pipeline: Pipeline, manager: StreamManager, *,
                  window_s: float) -> Recovery:
    done = Recovery()
    now = int(time.time() * 1000)
    rejoin: list[tuple[StreamSpec, int]] = []
    for record, product, updated_at_ms in await store.streams_to_rejoin():
        if now - updated_at_ms <= window_s * 1000 and record.server_urls:
            spec = StreamSpec(Product(product), record.meeting_uuid, record.rtms_stream_id,
                              record.server_urls)
            rejoin.append((spec, updated_at_ms))
        else:
            done.given_up.append(record.rtms_stream_id)
            await store.mark_stream(record.rtms_stream_id, state=StreamState.LOST.value,
                                    stopped_at_ms=updated_at_ms,
                                    status_reason="the gateway was down longer than Zoom's "
                                                  "reconnection window")
            await store.mark_meeting_stopped(record.meeting_uuid, updated_at_ms, None)
    rejoining = {spec.rtms_stream_id for spec, _ in rejoin}

    # A crash leaves WAV headers short of the audio that follows them. Only files that
    # are inside the data directory once resolved: a link leading out is left alone.
    for found in data_dir.glob("*/*.wav"):
        try:
            wav = media_path(data_dir, found.relative_to(data_dir))
            await asyncio.to_thread(repair_wav, wav)
            done.wavs_repaired += 1
        except (OSError, ValueError, MediaPathError) as exc:
            log.warning("could not repair %s: %s", loggable(found, 200), exc)

    carried: dict[str, list[MediaFile]] = {}
    for f in await store.incomplete_media_files():
        if f.rtms_stream_id in rejoining:
            carried.setdefault(f.rtms_stream_id, []).append(f)
            continue
        try:
            path = media_path(data_dir, f.path)
            if f.format == "wav" and path.exists():
                f.bytes = path.stat().st_size
        except MediaPathError as exc:
            log.warning("media file %s left as it is: %s", f.id, exc)
        await store.upsert_media_file(await asyncio.to_thread(finish_file, data_dir, f))
        done.files_finished += 1

    for spec, _ in rejoin:
        files = carried.get(spec.rtms_stream_id, [])
        if files and pipeline.media is not None:
            pipeline.media.resume(spec.rtms_stream_id, files[0].origin_ms, files)
        if manager.rejoin(spec):
            done.rejoined.append(spec.rtms_stream_id)
    if done.rejoined or done.given_up or done.files_finished:
        log.info("recovery: %d streams rejoined, %d past their window, %d WAV headers checked, "
                 "%d files finished", len(done.rejoined), len(done.given_up), done.wavs_repaired,
                 done.files_finished)
    return done
