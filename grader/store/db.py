"""Engine and sessions. `session_scope()` is the one place that commits; everything else only adds and flushes."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from grader.settings import get_settings


def database_url(raw: str | None = None) -> str:
    """The SQLAlchemy URL: DATABASE_URL with the psycopg 3 driver, else the embedded SQLite file under data_dir."""
    url = raw if raw is not None else get_settings().database_url
    if not url:
        data_dir = get_settings().data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{data_dir / 'grader.sqlite3'}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str | None = None) -> Engine:
    url = database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            # WAL lets the API read while a worker writes; foreign keys are off by default in SQLite.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    event.listen(engine, "checkout", _refuse_if_closed_by_server)
    return engine


def _refuse_if_closed_by_server(dbapi_connection, _record, _proxy) -> None:
    """A pooled connection the server has ended is replaced before use (the pool opens a new one).

    Instead of pool_pre_ping, whose ping was a round trip and a transaction of its own at every checkout: a third
    of the store's transactions in a burst (issue 14). A server that ends a connection (restart, an administrator's
    pg_terminate_backend, an idle timeout) sends its reason and closes the socket; an idle pooled connection has
    nothing else to receive, so a readable socket is one the server ended, seen without a round trip."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise exc.DisconnectionError("the connection was closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise exc.DisconnectionError("the server ended the connection")


@lru_cache
def get_engine() -> Engine:
    return make_engine()


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session committed when the block ends normally and rolled back when it raises."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def autocommit_connection() -> Iterator[Connection]:
    """A connection without a transaction, for one read that needs no other: its statement is its own round trip,
    where a session's read costs a BEGIN and a COMMIT besides."""
    with get_engine().connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


def reset_engine() -> None:
    """Forget the cached engine (after settings changed, e.g. in tests or a forked worker)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()
