"""The similarity report's background task, on the training queue (long, CPU-bound, never urgent).

It takes a report id, is idempotent (a finished report is left alone) and writes its progress to the report row
as it goes, so the dashboard can show it."""

from __future__ import annotations

import logging
import time

from grader.queues import TRAINING_QUEUE
from grader.services import similarity_reports
from grader.store.db import session_scope
from grader.store.models import SimilarityReport, utcnow
from grader.tasks import celery_app

TASK_NAME = "grader.similarity_report"
PROGRESS_WRITE_SECONDS = 1.0  # at most one progress write a second
log = logging.getLogger(__name__)


def publish(report_id: int) -> None:
    celery_app.send_task(TASK_NAME, args=[report_id], queue=TRAINING_QUEUE)


def _write_progress(report_id: int, done: int, total: int) -> None:
    with session_scope() as db:
        report = db.get(SimilarityReport, report_id)
        if report is not None:
            report.done_pairs, report.total_pairs, report.status = done, total, "running"


def run_report(report_id: int) -> None:
    """Compute the report unless it is already done; a failure is recorded on the report, not retried."""
    with session_scope() as db:
        report = db.get(SimilarityReport, report_id)
        if report is None or report.status == "done":
            return
        report.status = "running"
    last_write = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last_write[0] >= PROGRESS_WRITE_SECONDS:
            last_write[0] = time.monotonic()
            _write_progress(report_id, done, total)

    try:
        with session_scope() as db:
            similarity_reports.compute(db, db.get(SimilarityReport, report_id), on_progress=progress)
    except Exception as error:  # noqa: BLE001 - the report says what went wrong; the worker goes on
        log.exception("similarity report %s failed", report_id)
        with session_scope() as db:
            report = db.get(SimilarityReport, report_id)
            report.status, report.finished_at = "failed", utcnow()
            report.message = f"The report could not be computed: {type(error).__name__}: {error}"[:2000]


@celery_app.task(name=TASK_NAME, acks_late=True)
def similarity_report(report_id: int) -> None:
    run_report(report_id)
