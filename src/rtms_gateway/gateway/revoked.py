"""What the gateway does when Zoom revokes a stream (stop reason 8, STREAM_REVOKED, from
signaling or a `*.rtms_stopped` webhook): Zoom asks that its data be deleted at once.

With `RTMS_ON_REVOKED=delete` (the default) the erasure (`sinks.revoke`) waits for the
stream's files to be finished, then runs in order with the pipeline's records (so whatever
was still queued for the stream, in memory or in the journal, is written first and erased
with the rest); the files go once the rows have. With `keep` the revocation is logged and
nothing is erased.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from pathlib import Path

from ..protocol.errors import StoreUnavailable
from ..sinks.revoke import Revocations, remove_files
from .pipeline import Pipeline

log = logging.getLogger(__name__)

REMEMBERED = 10_000  # streams already handled (signaling and the webhook both tell of one)


class RevokedStreams:
    def __init__(self, revocations: Revocations, pipeline: Pipeline, data_dir: Path, *,
                 erase: bool = True) -> None:
        self.revocations = revocations
        self.pipeline = pipeline
        self.data_dir = data_dir
        self.erase = erase
        self.counters = {"streams_revoked": 0, "streams_erased": 0}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def revoked(self, rtms_stream_id: str, meeting_uuid: str | None, stop_reason: int) -> None:
        """Zoom revoked the stream (the stream manager calls this once the stream ended)."""
        if rtms_stream_id in self._seen:
            return
        self._seen[rtms_stream_id] = None
        while len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        self.counters["streams_revoked"] += 1
        if not self.erase:
            log.warning("stream %s revoked by Zoom (stop reason %d); its data is kept "
                        "(RTMS_ON_REVOKED=keep)", rtms_stream_id, stop_reason)
            return
        log.warning("stream %s revoked by Zoom (stop reason %d); erasing its data",
                    rtms_stream_id, stop_reason)
        task = asyncio.get_running_loop().create_task(
            self._erase(rtms_stream_id, meeting_uuid, stop_reason), name=f"erase-{rtms_stream_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _erase(self, rtms_stream_id: str, meeting_uuid: str | None, stop_reason: int) -> None:
        await self.pipeline.files_finished()  # the stream's files indexed: erased with the rest
        done = asyncio.get_running_loop().create_future()

        async def erase() -> None:
            try:
                erased = await self.revocations.erase_stream(
                    rtms_stream_id, meeting_uuid, stop_reason=stop_reason,
                    now_ms=int(time.time() * 1000))
            except StoreUnavailable:
                raise  # the pipeline runs it again once the store is back
            except BaseException:
                done.set_result(None)  # refused: the pipeline logs it and goes on
                raise
            removed = await asyncio.to_thread(remove_files, self.data_dir, erased.media_files)
            self.counters["streams_erased"] += 1
            log.warning("stream %s erased: %d records, %d feed items, %d pending deliveries, "
                        "%d media files%s", rtms_stream_id, erased.records, erased.feed_items,
                        erased.deliveries, removed,
                        "; its meeting is gone" if erased.meeting_gone else "")
            done.set_result(None)

        # In order with the records: retried by the pipeline while the store is away.
        self.pipeline.run_in_order(erase)
        await done

    async def settled(self) -> None:
        """Until every erasure asked for so far is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
