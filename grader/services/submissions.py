"""Submissions: accepting an upload (file checks, daily quota, lateness, result reuse, a new run), listing them,
regrading one, setting its score by hand."""

from __future__ import annotations

import hashlib
import logging
import symtable
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.services import access, extensions
from grader.services.errors import Invalid, LimitReached, TooLarge
from grader.services.policy import Action
from grader.settings import get_settings
from grader.store import rations
from grader.store import runs as run_store
from grader.store.models import Assignment, GradingRun, Submission, User, utcnow
from grader.store.overrides import record_override

# CPython 3.11's parser is not safe to run from several threads at once ("AST constructor recursion depth
# mismatch" under a burst of uploads); the API parses in its thread pool, so one parse at a time.
_PARSE_LOCK = threading.Lock()
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """A stored submission and its run: queued (publish it after commit), or finished from an identical file."""

    submission: Submission
    run: GradingRun
    reused: bool

    @property
    def to_publish(self) -> list[tuple[int, str]]:
        return [] if self.reused else [(self.run.id, self.run.queue)]


def python_text(raw: bytes) -> str:
    """The upload as text, if it is a Python source file; else Invalid saying what is wrong."""
    if not raw.strip():
        raise Invalid("The file is empty. Upload your spatial.py.")
    if b"\x00" in raw:
        raise Invalid("This is a binary file, not Python source. Upload your spatial.py as text.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Invalid(f"The file is not UTF-8 text (byte {error.start} cannot be decoded). "
                      "Upload your spatial.py as saved by your editor.") from error
    try:
        with _PARSE_LOCK:
            # The parser and the scope rules, without building the AST as Python objects: 40% less CPU per upload
            # than ast.parse, and it also refuses what would fail at import anyway (`nonlocal` at module level).
            symtable.symtable(text, "spatial.py", "exec")
    except SyntaxError as error:
        raise Invalid(f"spatial.py does not parse as Python: {error.msg} at line {error.lineno}. "
                      "Fix it and submit again (this upload did not count).") from error
    except (RecursionError, ValueError) as error:
        raise Invalid("spatial.py could not be parsed as Python (it nests too deeply).") from error
    except Exception:  # noqa: BLE001 - SystemError, MemoryError: the parser failed, not the file
        # Only a file's own fault may refuse it. The pre-check is a courtesy (the sandbox reports syntax errors
        # at import), so an upload it could not check is kept and graded rather than lost.
        logger.warning("syntax pre-check failed for a reason other than the file; upload kept", exc_info=True)
    return text


def check_daily_quota(db: Session, assignment: Assignment, user: User, now: datetime) -> None:
    if rations.submissions_today(db, assignment, user, now) < assignment.daily_submission_limit:
        return
    resets = rations.day_start(now) + timedelta(days=1)
    raise LimitReached(f"You have used today's {assignment.daily_submission_limit} submissions for "
                       f"{assignment.slug}. The limit resets at {resets:%Y-%m-%d %H:%M} UTC.",
                       resets_at=resets, retry_after_seconds=max(1, int((resets - now).total_seconds())))


def accept_upload(db: Session, assignment: Assignment, user: User, *, filename: str, content: bytes,
                  repo: str = "", commit: str = "") -> Accepted:
    """Check the file and the quota, store the submission (lateness judged now), then reuse or queue a run."""
    limit = get_settings().submission_max_bytes
    if len(content) > limit:
        raise TooLarge(f"The file is larger than {limit // 1024} KiB; spatial.py should be far smaller.")
    python_text(content)
    now = utcnow()
    check_daily_quota(db, assignment, user, now)
    days_late = extensions.raw_late_days(extensions.due_date_for(db, assignment, user), now)
    submission = Submission(assignment=assignment, user=user, filename=(filename or "spatial.py")[:200],
                            content=content, size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest(),
                            repo=repo.strip(), commit=commit.strip(), created_at=now, late=days_late > 0,
                            late_days=days_late)
    db.add(submission)
    db.flush()
    if days_late:  # late-day tokens may cover it
        extensions.recompute_student(db, assignment.course, user, actor_id=user.id, reason="late-day tokens")
    source_run = run_store.reusable_run(db, submission)
    if source_run is not None:
        return Accepted(submission, run_store.reuse_run(db, submission, source_run, user.id), reused=True)
    return Accepted(submission, run_store.new_run(db, submission, kind="submit", requested_by=user.id), reused=False)


def list_for(db: Session, assignment: Assignment, user: User, limit: int) -> list[Submission]:
    """Newest first: everyone's for the course's staff, the caller's own for anyone else."""
    query = select(Submission).where(Submission.assignment_id == assignment.id)
    if not access.may(db, user, assignment.course, Action.READ_SUBMISSION):
        query = query.where(Submission.user_id == user.id)
    return list(db.scalars(query.order_by(Submission.id.desc()).limit(limit)))


def regrade(db: Session, submission: Submission, user: User) -> GradingRun:
    """A new run of the submission; its score counts (and is audited) when it finishes. Publish it after commit."""
    return run_store.new_run(db, submission, kind="regrade", requested_by=user.id)


def override(db: Session, submission: Submission, user: User, *, score: float, reason: str) -> GradingRun:
    """Set the score by hand: a signed run carrying the reason, recorded in the audit log."""
    return record_override(db, submission, score=score, reason=reason, actor_id=user.id)
