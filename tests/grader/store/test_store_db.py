"""The engine's pool: a connection the server ended is replaced before use (without pool_pre_ping's ping)."""

from __future__ import annotations

import time

import psycopg
from sqlalchemy import text

from grader.store.db import make_engine
from tests.service_fixtures import PG_ADMIN_URL


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT pg_backend_pid()"))


def test_a_connection_the_server_ended_is_replaced_before_use(service_env):
    engine = make_engine(service_env["DATABASE_URL"])
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first  # a live pooled connection is used again
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone()[0]
        time.sleep(0.2)  # the server's goodbye reaches the pooled connection's socket
        second = _backend_pid(engine)  # no error: the ended connection was replaced at checkout
        assert second != first
    finally:
        engine.dispose()

