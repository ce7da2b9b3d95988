"""The real PostgreSQL server the tests use (RTMS_TEST_POSTGRES_URL): each test gets a
schema of its own, dropped afterwards; the shared server itself is never stopped."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.engine import make_url

URL = os.environ.get("RTMS_TEST_POSTGRES_URL")
needs_postgres = [pytest.mark.postgres, pytest.mark.skipif(not URL, reason="RTMS_TEST_POSTGRES_URL is not set")]


def url_via(port: int) -> str:
    """The test server's URL, reached through a local port (a TcpProxy's)."""
    assert URL is not None
    return make_url(URL).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def target() -> tuple[str, int]:
    """The server's host and port, for a proxy to forward to."""
    assert URL is not None
    parsed = make_url(URL)
    return parsed.host or "127.0.0.1", parsed.port or 5432


@asynccontextmanager
async def own_schema() -> AsyncIterator[str]:
    import asyncpg

    assert URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = make_url(URL).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(plain)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def admin_connection():  # type: ignore[no-untyped-def]
    """A plain asyncpg connection to the test server (to lock, inspect, terminate)."""
    import asyncpg

    assert URL is not None
    return await asyncpg.connect(make_url(URL).set(drivername="postgresql").render_as_string(hide_password=False))
