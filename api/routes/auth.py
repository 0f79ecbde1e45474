"""API tokens from email and password (staff and admins have passwords). Students receive theirs from the roster
import."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, status

from api.deps import CurrentUser, SessionDep
from api.login_guard import client_address, login_throttle, wait_message
from api.schemas import TokenCreate, TokenPublic, UserPublic
from grader.settings import get_settings
from grader.store import credentials
from grader.store.models import utcnow

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/token", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, db: SessionDep, request: Request) -> TokenPublic:
    """Issue a bearer token to a user who gives the right password (staff and admins have passwords), valid for
    API_TOKEN_LOGIN_TTL_SECONDS (30 days; `expires_at` says until when); 10 failures per 15 minutes per account or
    client address, then 429."""
    throttle = login_throttle(request)
    attempt = throttle.attempt(body.email, client_address(request))
    if attempt.refused:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, wait_message(attempt.retry_after_seconds),
                            headers={"Retry-After": str(attempt.retry_after_seconds)})
    user = credentials.authenticate_staff(db, body.email, body.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Wrong email or password.")
    throttle.succeeded(attempt)
    expires_at = utcnow() + timedelta(seconds=get_settings().api_token_login_ttl_seconds)
    token = credentials.issue_api_token(db, user, body.label, expires_at=expires_at)
    return TokenPublic(token=token, user=UserPublic.model_validate(user), expires_at=expires_at)


@router.get("/me")
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
