"""API keys: how they are made, and the store of their hashes.

A key is `rtms_` plus 256 random bits (URL-safe base64). Only its SHA-256 is stored: the
key is far too random for a slow hash to add anything, and a fast one lets every request
find its key by one indexed lookup. The first characters are kept too, so a person can
tell keys apart in `keys list` without the store holding anything usable.
"""

from __future__ import annotations

import enum
import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ..protocol.errors import RecordRefused
from . import schema as s
from .store_errors import guarded
from .store_open import execute
from .store_part import StorePart

if TYPE_CHECKING:
    pass

KEY_PREFIX = "rtms_"
SHOWN_CHARS = 12  # `rtms_` and 7 more: enough to tell keys apart, useless to an attacker
KEY_FILE = "api-key"
FIRST_KEY_NAME = "admin"


class Scope(enum.StrEnum):
    """What a key may do: `read` every route that reads, `admin` also those that change."""

    READ = "read"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        return self is Scope.ADMIN or needed is Scope.READ


class KeyNameTaken(RecordRefused):
    """A key with that name exists (and is not revoked)."""


class ApiKey(msgspec.Struct, kw_only=True):
    name: str
    scope: Scope
    shown: str  # the key's first characters
    created_at_ms: int
    last_used_at_ms: int | None = None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


class KeyStore(StorePart):
    """The `api_keys` table. Revoked keys keep their row (when, by name) but never match."""

    # A key's `last_used_at_ms` is refreshed at most this often: reads must not turn into
    # a write each.
    TOUCH_EVERY_MS = 60_000

    @guarded
    async def create(self, name: str, scope: Scope) -> str:
        """A new key named `name`; returns the key itself, which is never seen again."""
        key = new_key()
        k = s.api_keys
        try:
            stmt = insert(k).values(name=name, scope=scope.value, key_hash=key_hash(key),
                                    shown=key[:SHOWN_CHARS], created_at_ms=_now_ms())
            await execute(self.engine, stmt)
        except IntegrityError:  # the live names are unique (a partial index)
            raise KeyNameTaken(f"a key named {name!r} exists; revoke it first or choose another name") from None
        return key

    @guarded
    async def list(self) -> list[ApiKey]:
        k = s.api_keys
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(k).where(k.c.revoked_at_ms.is_(None)).order_by(k.c.id))).mappings().all()
        return [ApiKey(name=r["name"], scope=Scope(r["scope"]), shown=r["shown"], created_at_ms=r["created_at_ms"],
                       last_used_at_ms=r["last_used_at_ms"]) for r in rows]

    @guarded
    async def revoke(self, name: str) -> bool:
        """Whether a key of that name was there to revoke."""
        k = s.api_keys
        stmt = update(k).where(k.c.name == name, k.c.revoked_at_ms.is_(None)).values(revoked_at_ms=_now_ms())
        return bool(await execute(self.engine, stmt))

    @guarded
    async def find(self, hashed: str) -> ApiKey | None:
        """The live key with this hash, its use noted (at most once a minute)."""
        k = s.api_keys
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(k).where(k.c.key_hash == hashed, k.c.revoked_at_ms.is_(None))))\
                .mappings().first()
        if row is None:
            return None
        now = _now_ms()
        if row["last_used_at_ms"] is None or now - row["last_used_at_ms"] > self.TOUCH_EVERY_MS:
            touch = update(k).where(k.c.id == row["id"]).values(last_used_at_ms=now)
            await execute(self.engine, touch)
        return ApiKey(name=row["name"], scope=Scope(row["scope"]), shown=row["shown"],
                      created_at_ms=row["created_at_ms"], last_used_at_ms=now)

    @guarded
    async def any_live(self) -> bool:
        k = s.api_keys
        async with self.engine.connect() as conn:
            return (await conn.execute(select(k.c.id).where(k.c.revoked_at_ms.is_(None)).limit(1))).first() is not None


async def ensure_first_key(keys: KeyStore, data_dir: Path) -> Path | None:
    """With no key anywhere, make an admin key and put it in `data_dir/api-key` (0600) for
    the person who started the gateway. Returns the file's path when it made one."""
    if await keys.any_live():
        return None
    name = FIRST_KEY_NAME
    while True:
        try:
            key = await keys.create(name, Scope.ADMIN)
            break
        except KeyNameTaken:  # a concurrent start made one: use a name of its own
            name = f"{FIRST_KEY_NAME}-{secrets.token_hex(3)}"
    path = data_dir / KEY_FILE
    write_private(path, key + "\n")
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read, replacing any file there at once."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_key_file(data_dir: Path) -> str | None:
    """The key `serve` wrote for its first start, if it is there."""
    try:
        return (data_dir / KEY_FILE).read_text("ascii").strip() or None
    except (FileNotFoundError, UnicodeDecodeError):
        return None
