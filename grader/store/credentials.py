"""Passwords (argon2id), API tokens (random, stored as sha256) and badge tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from grader.store.models import ApiToken, Assignment, BadgeToken, User, utcnow

_password_hasher = PasswordHasher()
TOKEN_PREFIX = "gt_"  # makes a leaked token easy to find in logs and secret scanners
_DUMMY_HASH = _password_hasher.hash("not-a-real-password")  # verified when the email has no password


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate_staff(db: Session, email: str, password: str) -> User | None:
    """The user with this email and password, else None. Passwords are given to staff (course instructors and
    TAs) and admins only; what a user may then do is decided by grader/services/policy.py.

    Every call costs one argon2 verification, whether the email exists, has no password or is a student's, so
    response times do not reveal which emails have accounts."""
    user = db.scalar(select(User).where(User.email == email.strip().lower()))
    valid = verify_password((user.password_hash if user is not None else None) or _DUMMY_HASH, password)
    if user is None or not user.password_hash or not valid:
        return None
    return user


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(db: Session, user: User, label: str = "", expires_days: float | None = None, *,
                    expires_at: datetime | None = None) -> str:
    """Create a token for `user`, valid until revoked, for `expires_days` or until `expires_at`; the plain token
    is returned once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if expires_days is not None:
        expires_at = utcnow() + timedelta(days=expires_days)
    db.add(ApiToken(user_id=user.id, token_sha256=token_sha256(token), label=label, expires_at=expires_at))
    db.flush()
    return token


# Built once: every API request asks, and building the statement cost the API more than running it.
_USER_FOR_TOKEN = select(User).join(ApiToken, ApiToken.user_id == User.id).where(
    ApiToken.token_sha256 == bindparam("token_sha256"), ApiToken.revoked_at.is_(None),
    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now")))


def user_for_token(db: Session, token: str) -> User | None:
    """The user a valid (unrevoked, unexpired) token belongs to; one query, as every API request asks it."""
    return db.scalar(_USER_FOR_TOKEN, {"token_sha256": token_sha256(token), "now": utcnow()})


def token_expired_at(db: Session, token: str) -> datetime | None:
    """When the (otherwise valid, unrevoked) token expired; None when it is unknown, revoked or not expired."""
    row = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == token_sha256(token), ApiToken.revoked_at.is_(None),
                                           ApiToken.expires_at.is_not(None), ApiToken.expires_at <= utcnow()))
    return row.expires_at if row else None


def revoke_access(db: Session, user: User, label: str | None = None) -> int:
    """Revoke every API token of `user` and end its dashboard sessions, or (with `label`) only the tokens of that
    label; returns the number of tokens revoked."""
    query = update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    if label is not None:
        query = query.where(ApiToken.label == label)
    revoked = db.execute(query.values(revoked_at=utcnow())).rowcount
    if label is None:
        user.session_version += 1
    db.flush()
    return revoked


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
