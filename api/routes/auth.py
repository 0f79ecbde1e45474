"""API tokens from email and password (staff and admins have passwords). Students receive theirs from the roster
import."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from api.deps import CurrentUser, SessionDep
from api.schemas import TokenCreate, TokenPublic, UserPublic
from grader.store import credentials

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/token", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, db: SessionDep) -> TokenPublic:
    """Issue a bearer token to a user who gives the right password (staff and admins have passwords)."""
    user = credentials.authenticate_staff(db, body.email, body.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Wrong email or password.")
    token = credentials.issue_api_token(db, user, body.label)
    return TokenPublic(token=token, user=UserPublic.model_validate(user))


@router.get("/me")
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
