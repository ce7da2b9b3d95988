"""One thread for a part's blocking file work, so the event loop never waits on a disk.

Jobs run one at a time in the order they were given, so writes to one file keep their
order. The queue is bounded by its users, who await each recurring job before giving the
next (the media writer's flush, the journal's append); one-off jobs (closing the tracks of
an ended stream) come at most one per track.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class DiskThread:
    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.queued = 0  # jobs given and not yet done

    def run(self, job: Callable[[], T]) -> asyncio.Future[T]:
        """Queue `job` (from the event loop); the future is its result."""
        self.queued += 1
        future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: asyncio.Future[T]) -> None:
        self.queued -= 1

    def close(self) -> None:
        """Blocking: let the jobs queued finish, then end the thread."""
        self._executor.shutdown(wait=True)
