"""Passwords (argon2id), API tokens (random, stored as sha256) and badge tokens."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.store.models import ApiToken, Assignment, BadgeToken, User

_password_hasher = PasswordHasher()
TOKEN_PREFIX = "gt_"  # makes a leaked token easy to find in logs and secret scanners


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(db: Session, user: User, label: str = "") -> str:
    """Create a token for `user`; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiToken(user_id=user.id, token_sha256=token_sha256(token), label=label))
    db.flush()
    return token


def user_for_token(db: Session, token: str) -> User | None:
    row = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == token_sha256(token), ApiToken.revoked_at.is_(None)))
    return row.user if row else None


def badge_token_for(db: Session, user: User, assignment: Assignment) -> BadgeToken:
    """The student's badge token for the assignment, created on first use."""
    badge = db.scalar(select(BadgeToken).where(BadgeToken.user_id == user.id, BadgeToken.assignment_id == assignment.id))
    if badge is None:
        badge = BadgeToken(user_id=user.id, assignment_id=assignment.id, token=secrets.token_urlsafe(24))
        db.add(badge)
        db.flush()
    return badge


def rotate_badge_token(db: Session, user: User, assignment: Assignment) -> BadgeToken:
    badge = badge_token_for(db, user, assignment)
    badge.token = secrets.token_urlsafe(24)
    db.flush()
    return badge
