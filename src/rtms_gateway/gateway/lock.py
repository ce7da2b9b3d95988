"""One gateway per data directory: an exclusive `flock` on `$RTMS_DATA_DIR/gateway.lock`.

Two gateways on one directory would each run crash recovery over the other's live files
and rejoin the other's streams. The lock is taken before anything in the directory is
touched and held until the gateway closes; the kernel lets go of it when the process dies
(a SIGKILL leaves no stale lock). The file holds the holder's PID, for the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..protocol.errors import StartupError

LOCK_FILE = "gateway.lock"


class DataDirLocked(StartupError):
    """Another gateway holds the data directory."""

    def __init__(self, data_dir: Path, holder: int | None) -> None:
        who = f"PID {holder}" if holder is not None else "a process whose PID it did not record"
        super().__init__(f"RTMS_DATA_DIR: {data_dir} is in use by another gateway ({who}); stop it, "
                         "or give this one its own RTMS_DATA_DIR")
        self.holder = holder


class DataDirLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Create the directory if need be and lock it, or raise DataDirLocked at once."""
        path = data_dir / LOCK_FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StartupError(f"RTMS_DATA_DIR: cannot write to {data_dir} ({exc.strerror}); "
                               "choose a writable directory") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(data_dir, holder) from None
        lock = cls(path, fd)
        if not os.access(data_dir, os.W_OK | os.X_OK):
            lock.release()
            raise StartupError(f"RTMS_DATA_DIR: cannot write to {data_dir} (permission denied); "
                               "choose a writable directory")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let go (the file stays: removing it would race with the next holder)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
