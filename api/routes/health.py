"""Liveness, readiness (database, broker, sandbox engine) and Prometheus metrics."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import func, select, text

from api.deps import OptionalUser, SessionDep
from grader.queues import QUEUE_NAMES
from grader.settings import get_settings
from grader.store.models import RUN_STATUSES, GradingRun, Submission, User

router = APIRouter(tags=["health"])

SANDBOX_CHECK_TTL_SECONDS = 60.0  # selecting a sandbox touches the engine; readiness probes come every few seconds
DURATION_BUCKETS_SECONDS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_sandbox_cache: dict[str, object] = {"at": 0.0, "ok": False, "detail": ""}
_sandbox_lock = threading.Lock()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check_broker() -> tuple[bool, str]:
    from grader.tasks import celery_app

    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return True, connection.as_uri()
    except Exception as error:
        return False, f"{type(error).__name__}: {error}"


def _check_sandbox() -> tuple[bool, str]:
    with _sandbox_lock:
        if time.monotonic() - float(_sandbox_cache["at"]) < SANDBOX_CHECK_TTL_SECONDS:
            return bool(_sandbox_cache["ok"]), str(_sandbox_cache["detail"])
        ok, detail = _probe_sandbox()
        _sandbox_cache.update(at=time.monotonic(), ok=ok, detail=detail)
        return ok, detail


def _probe_sandbox() -> tuple[bool, str]:
    """Whether a backend could run a job now, without building anything (a probe must stay cheap)."""
    from sandbox.select import probe

    result = probe(get_settings())
    return result.ok, result.detail


def _details_allowed(user: User | None) -> bool:
    """Versions, addresses and queue figures help an attacker: public only when the setting says so."""
    return get_settings().health_details_public or (user is not None and user.is_admin)


@router.get("/readyz")
def readyz(db: SessionDep, user: OptionalUser) -> JSONResponse:
    """200 when the database, the broker and (where configured) the sandbox engine answer, else 503; which check
    failed, and why, only for admins (API token) or with HEALTH_DETAILS_PUBLIC."""
    checks = {}
    try:
        db.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "detail": db.get_bind().dialect.name}
    except Exception as error:
        checks["database"] = {"ok": False, "detail": f"{type(error).__name__}: {error}"}
    probes = [("broker", _check_broker)]
    if get_settings().readyz_check_sandbox:
        probes.append(("sandbox", _check_sandbox))
    for name, check in probes:
        ok, detail = check()
        checks[name] = {"ok": ok, "detail": detail}
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "not ready"}
    if _details_allowed(user):
        body["checks"] = checks
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(db: SessionDep, user: OptionalUser) -> PlainTextResponse:
    """Prometheus text format: queue depth, runs by status, grading durations per stage. For admins (scrape with
    an admin's API token as bearer) or anyone with HEALTH_DETAILS_PUBLIC."""
    if not _details_allowed(user):
        if user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Metrics need an admin's API token "
                                "(`Authorization: Bearer <token>`).", headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Metrics are for site admins.")
    lines = ["# HELP grader_queue_depth Runs waiting in a queue.", "# TYPE grader_queue_depth gauge"]
    depth = dict(db.execute(select(GradingRun.queue, func.count()).where(GradingRun.status == "queued")
                            .group_by(GradingRun.queue)).all())
    lines += [f'grader_queue_depth{{queue="{q}"}} {depth.get(q, 0)}' for q in QUEUE_NAMES]
    by_status = dict(db.execute(select(GradingRun.status, func.count()).group_by(GradingRun.status)).all())
    lines += ["# HELP grader_runs Grading runs by status.", "# TYPE grader_runs gauge"]
    lines += [f'grader_runs{{status="{s}"}} {by_status.get(s, 0)}' for s in RUN_STATUSES]
    lines += ["# HELP grader_submissions_total Submissions stored.", "# TYPE grader_submissions_total counter",
              f"grader_submissions_total {db.scalar(select(func.count(Submission.id))) or 0}"]
    durations: dict[str, list[float]] = {}
    recent = db.scalars(select(GradingRun.stage_seconds).where(GradingRun.finished_at.is_not(None))
                        .order_by(GradingRun.id.desc()).limit(10000))
    for stage_seconds in recent:
        for stage, seconds in (stage_seconds or {}).items():
            durations.setdefault(stage, []).append(float(seconds))
    lines += ["# HELP grader_stage_duration_seconds Wall time of a grading stage (last 10000 runs).",
              "# TYPE grader_stage_duration_seconds histogram"]
    for stage, values in sorted(durations.items()):
        for bound in DURATION_BUCKETS_SECONDS:
            lines.append(f'grader_stage_duration_seconds_bucket{{stage="{stage}",le="{bound}"}} '
                         f'{sum(v <= bound for v in values)}')
        lines.append(f'grader_stage_duration_seconds_bucket{{stage="{stage}",le="+Inf"}} {len(values)}')
        lines.append(f'grader_stage_duration_seconds_sum{{stage="{stage}"}} {sum(values):.3f}')
        lines.append(f'grader_stage_duration_seconds_count{{stage="{stage}"}} {len(values)}')
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8")
