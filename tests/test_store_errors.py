"""The store's two kinds of error, decided at its edge (sinks/store_errors.py). The cases a
test can provoke for real are in test_store.py (SQLite) and test_store_postgres.py; here
the SQLSTATE classes a shared server cannot be pushed into, read from asyncpg's own
exception classes, and the rule for an error nothing names."""

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from rtms_gateway.protocol.errors import RecordRefused, RTMSError, StoreError, StoreUnavailable
from rtms_gateway.sinks.store import Store
from rtms_gateway.sinks.store_errors import classify, translate


@pytest.mark.parametrize("error, kind", [
    (asyncpg.exceptions.TooManyConnectionsError, StoreUnavailable),  # 53300
    (asyncpg.exceptions.DiskFullError, StoreUnavailable),  # 53100
    (asyncpg.exceptions.SerializationError, StoreUnavailable),  # 40001
    (asyncpg.exceptions.DeadlockDetectedError, StoreUnavailable),  # 40P01
    (asyncpg.exceptions.AdminShutdownError, StoreUnavailable),  # 57P01
    (asyncpg.exceptions.CannotConnectNowError, StoreUnavailable),  # 57P03
    (asyncpg.exceptions.QueryCanceledError, StoreUnavailable),  # 57014
    (asyncpg.exceptions.LockNotAvailableError, StoreUnavailable),  # 55P03
    (asyncpg.exceptions.ConnectionDoesNotExistError, StoreUnavailable),  # 08003
    (asyncpg.exceptions.UndefinedTableError, StoreUnavailable),  # 42P01: someone must fix the schema
    (asyncpg.exceptions.InsufficientPrivilegeError, StoreUnavailable),  # 42501
    (asyncpg.exceptions.ProgramLimitExceededError, RecordRefused),  # 54000: index row size
    (asyncpg.exceptions.CharacterNotInRepertoireError, RecordRefused),  # 22021: NUL
    (asyncpg.exceptions.StringDataRightTruncationError, RecordRefused),  # 22001
    (asyncpg.exceptions.NumericValueOutOfRangeError, RecordRefused),  # 22003
    (asyncpg.exceptions.NotNullViolationError, RecordRefused),  # 23502
    (asyncpg.exceptions.UniqueViolationError, RecordRefused),  # 23505
])
def test_postgres_errors_are_read_by_sqlstate_class(error, kind):
    wrapped = sa_exc.DBAPIError("INSERT ...", {}, error("the server's words"))
    found, label = classify(wrapped)
    assert found is kind and error.sqlstate in label and "the server's words" not in label


def test_driver_errors_before_the_database_saw_anything():
    assert classify(OverflowError("Python int too large"))[0] is RecordRefused
    assert classify(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))[0] is RecordRefused
    assert classify(ConnectionRefusedError(111, "refused"))[0] is StoreUnavailable
    assert classify(TimeoutError())[0] is StoreUnavailable
    assert classify(sa_exc.TimeoutError("QueuePool limit reached"))[0] is StoreUnavailable
    # asyncpg lost track of a connection the server ended in the middle of an operation
    lost = AsyncAdapt_asyncpg_dbapi.InternalClientError("cannot switch to state 15",
                                                         asyncpg.exceptions.InternalClientError("x"))
    assert classify(sa_exc.InternalError("INSERT ...", {}, lost))[0] is StoreUnavailable
    assert classify(RuntimeError("?")) == (None, "RuntimeError")
    assert issubclass(StoreError, RTMSError)


async def test_an_error_nothing_names_is_decided_by_whether_the_database_answers(tmp_path):
    there = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    gone = await Store.open(f"sqlite:///{tmp_path / 'gone' / 'db.sqlite3'}")
    await gone.engine.dispose()
    (tmp_path / "gone").rename(tmp_path / "went")
    try:
        refused = await translate(RuntimeError("something odd"), there.engine)
        away = await translate(RuntimeError("something odd"), gone.engine)
        assert isinstance(refused, RecordRefused) and isinstance(away, StoreUnavailable)
        assert str(refused) == "unclassified RuntimeError" and refused.detail == "something odd"
    finally:
        await there.close()
        await gone.close()
