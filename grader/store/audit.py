"""The append-only, hash-chained audit log of score changes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.store.models import AuditLog, GradingRun, utcnow

GENESIS_HASH = "0" * 64


def _naive_utc_iso(moment: datetime) -> str:
    # SQLite returns naive datetimes and Postgres aware ones: the hash is over the naive UTC form.
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat()


def _entry_hash(prev_hash: str, created_at: str, actor_id: int | None, action: str, entity: str, entity_id: int,
                data: dict[str, Any]) -> str:
    body = json.dumps([prev_hash, created_at, actor_id, action, entity, entity_id, data], sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def append(db: Session, *, actor_id: int | None, action: str, entity: str, entity_id: int,
           data: dict[str, Any]) -> AuditLog:
    """Add an entry chained to the last one. Concurrent writers are serialised by the unique hash column."""
    last = db.scalar(select(AuditLog).order_by(AuditLog.id.desc()).limit(1).with_for_update())
    prev_hash = last.hash if last else GENESIS_HASH
    created_at = utcnow().replace(microsecond=0)
    entry = AuditLog(created_at=created_at, actor_id=actor_id, action=action, entity=entity, entity_id=entity_id,
                     data=data, prev_hash=prev_hash,
                     hash=_entry_hash(prev_hash, _naive_utc_iso(created_at), actor_id, action, entity, entity_id, data))
    db.add(entry)
    db.flush()
    return entry


def verify_chain(db: Session) -> tuple[bool, int | None]:
    """(True, None) when every entry chains to the previous one; else (False, id of the first broken entry)."""
    prev_hash = GENESIS_HASH
    for entry in db.scalars(select(AuditLog).order_by(AuditLog.id)):
        expected = _entry_hash(prev_hash, _naive_utc_iso(entry.created_at), entry.actor_id, entry.action, entry.entity, entry.entity_id,
                               entry.data)
        if entry.prev_hash != prev_hash or entry.hash != expected:
            return False, entry.id
        prev_hash = entry.hash
    return True, None


def record_score_change(db: Session, run: GradingRun, *, actor_id: int | None, action: str) -> None:
    """Audit a score change of the run's submission against the run it replaces."""
    earlier = [r for r in run.submission.runs if r.id != run.id and r.applied and r.finished and r.id < run.id]
    previous = earlier[-1].score if earlier else None
    if action == "regrade" and previous == run.score:
        return
    append(db, actor_id=actor_id, action=action, entity="submission", entity_id=run.submission_id,
           data={"run_id": run.id, "old_score": previous, "new_score": run.score, "signature": run.signature})
