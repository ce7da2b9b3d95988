import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from rtms_gateway.sinks import schema
from rtms_gateway.sinks.store import Store
from rtms_gateway.sinks.store_open import MIGRATIONS, async_url, dispose

from . import store_cases as cases


async def _open(tmp_path):
    return await Store.open(f"sqlite:///{tmp_path / 'db' / 'rtms.sqlite3'}")


@pytest.mark.parametrize("case", cases.ALL, ids=lambda c: c.__name__)
async def test_store_cases(tmp_path, case):
    store = await _open(tmp_path)
    try:
        await case(store)
    finally:
        await store.close()


def _head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


async def test_the_migrations_build_exactly_the_schema_the_code_declares(tmp_path):
    await (await _open(tmp_path)).close()
    engine = create_engine(f"sqlite:///{tmp_path / 'db' / 'rtms.sqlite3'}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": schema.include_name})
        differences = compare_metadata(context, schema.metadata)
    engine.dispose()
    assert differences == []


async def test_migrations_build_the_schema_and_reopen_keeps_data(tmp_path):
    store = await _open(tmp_path)
    await cases.seed(store)
    await store.write_batch(segments=[cases.seg(1)])
    await store.close()
    db = sqlite3.connect(tmp_path / "db" / "rtms.sqlite3")
    tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    model = {t for t in tables
             if schema.include_name(t, "table", {}) and not t.startswith("sqlite_")}
    assert model == set(schema.metadata.tables) | {"alembic_version"}
    assert schema.SEARCH_TABLE in tables  # the FTS5 table, beside the model
    assert db.execute("select version_num from alembic_version").fetchall() == [(_head(),)]
    assert db.execute("pragma journal_mode").fetchone() == ("wal",)
    db.close()
    store = await _open(tmp_path)  # upgrade on an up-to-date database is a no-op
    try:
        assert [s.text for s in await store.transcript(cases.UUID)] == [cases.seg(1).text]
        assert await store.ping()
    finally:
        await store.close()


def test_urls_name_the_async_drivers():
    assert async_url("sqlite:///a/b.db") == "sqlite+aiosqlite:///a/b.db"
    assert async_url("postgresql://u:p@h:5432/d") == "postgresql+asyncpg://u:p@h:5432/d"
    assert async_url("postgresql+asyncpg://h/d") == "postgresql+asyncpg://h/d"


async def test_migration_0003_brings_an_0002_database_up_to_date(tmp_path):
    await cases.case_migration_from_0002(f"sqlite:///{tmp_path / 'old.sqlite3'}")


async def test_migration_0005_gives_every_stored_record_its_place_in_the_feed(tmp_path):
    await cases.case_migration_from_0004(f"sqlite:///{tmp_path / 'old.sqlite3'}")


async def test_migration_0009_folds_stored_chat_rows_into_messages(tmp_path):
    await cases.case_migration_from_0007(f"sqlite:///{tmp_path / 'old.sqlite3'}")


async def test_a_locked_database_is_unavailable_and_a_gone_one_too(tmp_path):
    from rtms_gateway.protocol.errors import StoreUnavailable

    store = await _open(tmp_path)
    try:
        await cases.seed(store)
        lock = sqlite3.connect(tmp_path / "db" / "rtms.sqlite3", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailable, match="SQLITE_BUSY"):
                await store.write_batch(segments=[cases.seg(0)])
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert await store.write_batch(segments=[cases.seg(0)]) == 1
        await dispose(store.engine)  # no open connection left: the next one must open the file
        (tmp_path / "db").rename(tmp_path / "moved")
        with pytest.raises(StoreUnavailable, match="SQLITE_CANTOPEN"):
            await store.write_batch(segments=[cases.seg(1)])
        with pytest.raises(StoreUnavailable):
            await store.transcript(cases.UUID)
        (tmp_path / "moved").rename(tmp_path / "db")
        assert await store.write_batch(segments=[cases.seg(1)]) == 1
    finally:
        await store.close()
