"""FastAPI dependencies as Annotated aliases: `def read(submission_id: int, db: SessionDep, user: CurrentUser)`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import BackgroundTasks, Depends, HTTPException, Path, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from grader.store import credentials
from grader.store.db import session_scope
from grader.store.models import GradingRun, User, as_utc
from grader.tasks import publish_all


def get_db() -> Iterator[Session]:
    """A request's session, committed after the route returned (the one place API writes are committed)."""
    with session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]

ROW_ID_MAX = 2**31 - 1  # ids are Postgres `integer`s: a larger number is a 422, not a database error
RowId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="a row id")]

_bearer = HTTPBearer(auto_error=False, description="An API token issued by the course (students) or "
                                                   "`POST /api/v1/auth/token` (instructors).")


def current_user(db: SessionDep,
                 bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User:
    user = credentials.user_for_token(db, bearer.credentials.strip()) if bearer else None
    if user is None:
        expired = credentials.token_expired_at(db, bearer.credentials.strip()) if bearer else None
        message = ("Missing or invalid API token. Send `Authorization: Bearer <token>` with the token your course "
                   "gave you.")
        if expired is not None:
            message = (f"Your API token expired on {as_utc(expired):%Y-%m-%d %H:%M} UTC. Get a new one with your "
                       "password (POST /api/v1/auth/token), or ask your instructor for one.")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, message,
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"' if expired else "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def optional_user(db: SessionDep,
                  bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User | None:
    """The caller when a valid token came with the request, else None (for routes anyone may call)."""
    return credentials.user_for_token(db, bearer.credentials.strip()) if bearer else None


OptionalUser = Annotated[User | None, Depends(optional_user)]


def publish_after_response(background: BackgroundTasks, runs: list[GradingRun]) -> None:
    """Queue the runs once the response went out, i.e. after the request's session committed them, so a worker
    always finds the row."""
    pairs = [(run.id, run.queue) for run in runs]
    if pairs:
        background.add_task(publish_all, pairs)
