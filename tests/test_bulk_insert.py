"""`bulk_insert.insert_new`: many rows in one statement, those stored already skipped, the
columns of those written returned, on SQLite (on the driver's cursor) and PostgreSQL (an
SQLAlchemy statement) alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from rtms_gateway.sinks import bulk_insert, schema
from rtms_gateway.sinks import store_rows as convert
from rtms_gateway.sinks.store_open import transact

from .store_cases import seg
from .stores import DATABASES, a_store

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=DATABASES)
async def opened(request, tmp_path):
    async with a_store(request.param, tmp_path) as opened:
        yield opened


def insert_of(store):
    return postgresql.insert if store.engine.dialect.name == "postgresql" else sqlite.insert


async def test_rows_stored_already_are_skipped_and_the_rows_written_return_their_columns(opened):
    store = opened.store
    t = schema.transcript_segments
    rows = [convert.segment_row(seg(i, "m1", f"line {i}")) for i in range(5)]
    rows[3]["raw"] = {"extra": [1, "two"]}  # a JSON column goes through its own conversion

    def write(chosen):
        return lambda conn: bulk_insert.insert_new(conn, insert_of(store), t, chosen, unique="dedup_key",
                                                  returning=("dedup_key", "text"))

    first = await transact(store.engine, write(rows[:3]))
    assert sorted(first) == sorted((r["dedup_key"], r["text"]) for r in rows[:3])
    again = await transact(store.engine, write(rows))  # three stored already: two new
    assert sorted(again) == sorted((r["dedup_key"], r["text"]) for r in rows[3:])
    assert await transact(store.engine, write([])) == []
    async with store.engine.connect() as conn:
        stored = (await conn.execute(select(t.c.dedup_key, t.c.raw).order_by(t.c.timestamp))).all()
    assert [k for k, _ in stored] == [r["dedup_key"] for r in rows]
    assert stored[3].raw == {"extra": [1, "two"]}


async def test_a_batch_past_sqlites_bound_values_is_written_in_pieces(opened, monkeypatch):
    monkeypatch.setattr(bulk_insert, "_SQLITE_MAX_VALUES", 40)  # 2 rows of 15 columns a statement
    store = opened.store
    rows = [convert.segment_row(seg(i, "m2", f"line {i}")) for i in range(7)]
    written = await transact(store.engine, lambda conn: bulk_insert.insert_new(
        conn, insert_of(store), schema.transcript_segments, rows, unique="dedup_key", returning=("dedup_key",)))
    assert sorted(k for k, in written) == sorted(r["dedup_key"] for r in rows)
