"""Many rows into one table in one statement: those a unique column already holds are
skipped, and the rows written give back the columns asked for.

Every batch of records runs this a few times (its records, their feed items), so its cost
is per transaction. On SQLite the statement is rendered here and runs straight on the
driver's cursor (`driver_cursor`): a transaction of one transcript segment cost about
0.9 ms of CPU through SQLAlchemy's execution, where the same statements on `sqlite3`
itself cost about 0.25 ms. Values go through each column type's own bind conversion, as
SQLAlchemy would send them. On other databases the same insert is an SQLAlchemy
statement, built once.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect

# SQLite allows 32,766 bound values in a statement (since 3.32); a long batch is cut below it.
_SQLITE_MAX_VALUES = 32_000


def insert_new(conn: Connection, insert: Callable[[Table], Any], table: Table,
               rows: Sequence[dict[str, Any]], *, unique: str,
               returning: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Insert `rows` (each with the same keys) into `table`, skipping any whose `unique`
    value is stored already; the `returning` columns of those written, in no set order."""
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        stmt = _statement(insert, table, unique, returning)
        return [tuple(r) for r in conn.execute(stmt, list(rows))]
    columns = tuple(rows[0])
    head, one, tail, convert = _sqlite_insert(conn.dialect, table, columns, unique, returning)
    out: list[tuple[Any, ...]] = []
    per = max(1, _SQLITE_MAX_VALUES // len(columns))
    with driver_cursor(conn) as cursor:
        for at in range(0, len(rows), per):
            chunk = rows[at:at + per]
            values: list[Any] = []
            for row in chunk:
                values.extend(row[c] if f is None else f(row[c]) for c, f in convert)
            cursor.execute(head + ",".join([one] * len(chunk)) + tail, values)
            out.extend(tuple(r) for r in cursor.fetchall())
    return out


@contextlib.contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """A cursor of the driver under `conn`, in `conn`'s transaction, closed after use."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    finally:
        cursor.close()


@functools.cache
def _statement(insert: Callable[[Table], Any], table: Table, unique: str, returning: tuple[str, ...]) -> Any:
    """The SQLAlchemy statement, built once per dialect: building it costs more than running it."""
    return insert(table).on_conflict_do_nothing(index_elements=[unique]).returning(
        *(table.c[name] for name in returning))


@functools.cache
def _sqlite_insert(dialect: Dialect, table: Table, columns: tuple[str, ...], unique: str,
                   returning: tuple[str, ...]
                   ) -> tuple[str, str, str, tuple[tuple[str, Callable[[Any], Any] | None], ...]]:
    """The statement before its rows, one row's placeholders, the statement after them,
    and each column's bind conversion (None where a value goes as it is)."""
    quote = dialect.identifier_preparer.quote
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES "
    tail = f" ON CONFLICT ({quote(unique)}) DO NOTHING RETURNING {', '.join(quote(c) for c in returning)}"
    one = "(" + ",".join("?" * len(columns)) + ")"
    convert = tuple((c, table.c[c].type.dialect_impl(dialect).bind_processor(dialect)) for c in columns)
    return head, one, tail, convert
