"""Celery app and tasks: claim a run, grade its stage through the flow (grader/pipeline.py), record, hand off.

Tasks carry run ids only; the store decides whether there is anything to do.

Two queues: `correctness` (fast, seconds per job) and `training` (slow, CIFAR-10). A run moves from the first
to the second by being published again after its correctness stage was recorded.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from functools import lru_cache
from typing import Any

from celery import Celery

from grader import pipeline
from grader.kits import runner_for
from grader.queues import QUEUE_NAMES, TRAINING_QUEUE, queue_for_stage
from grader.result import GradingResult
from grader.settings import get_settings
from grader.spec import Spec, parse_spec
from grader.store import faults, rations
from grader.store import runs as run_store
from grader.store import sweep as sweep_store
from grader.store.db import session_scope
from grader.store.models import utcnow

log = logging.getLogger(__name__)


def broker_url() -> str:
    """BROKER_URL, else kombu's filesystem transport under data_dir (no server needed)."""
    return get_settings().broker_url or "filesystem://"


def _transport_options() -> dict[str, Any]:
    settings = get_settings()
    options: dict[str, Any] = {"visibility_timeout": settings.broker_visibility_timeout_seconds}
    if broker_url().startswith("filesystem"):
        folder = settings.data_dir / "broker"
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        options.update(data_folder_in=str(folder), data_folder_out=str(folder), store_processed=False,
                       processed_folder=str(folder / "processed"),
                       control_folder=str(folder / "control"))  # kombu defaults to ./control
    return options


def configure(app: Celery) -> None:
    """(Re)apply the settings to the app, e.g. after tests changed BROKER_URL."""
    settings = get_settings()
    if app.conf.broker_url and app.conf.broker_url != broker_url():
        # Connections to the previous broker live in kombu's process-wide pools, keyed by broker.
        from kombu import pools

        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None
    app.conf.update(
        broker_url=broker_url(),
        task_acks_late=True,  # a job is acknowledged after it ran: a worker that dies leaves it in the broker
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # one job at a time per process, so a long job never hides a short one
        broker_transport_options=_transport_options(),
        task_ignore_result=True,  # results live in the store, not in a result backend
        # The (disabled) result backend is stateless: one for the process. Celery otherwise builds one per thread,
        # and building one scans every installed package's entry points; the API publishes from its thread pool,
        # whose idle threads retire, so it paid that scan again and again during a burst of uploads.
        result_backend_thread_safe=True,
        task_default_queue="correctness",
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={"sweep-stuck-runs": {"task": "grader.sweep", "schedule": settings.sweep_interval_seconds,
                                            "options": {"queue": "correctness", "expires": 60}}},
    )


def make_celery() -> Celery:
    app = Celery("grader", include=["grader.tasks", "grader.similarity_task"])
    configure(app)
    return app


celery_app = make_celery()


TIME_LIMIT_MARGIN_SECONDS = 120.0  # image pull, container start and judging beyond the job's own wall limit


def job_seconds(queue: str) -> float:
    """The longest a job of `queue` may take, its sandbox wall limit plus the margin: past it the job hangs."""
    settings = get_settings()
    wall = settings.training_wall_seconds if queue == TRAINING_QUEUE else settings.correctness_wall_seconds
    return wall + TIME_LIMIT_MARGIN_SECONDS


def publish(run_id: int, queue: str) -> None:
    """Wake a worker of `queue` for the run (committed before; losing this message only delays it). Celery kills
    the job at its queue's hard time limit; the soft limit, a little earlier, lets it give the run back."""
    limit = job_seconds(queue)
    grade_run.apply_async(args=[run_id], queue=queue, time_limit=limit + 30, soft_time_limit=limit)


def broker_depths() -> dict[str, int] | None:
    """Messages waiting in the broker per work queue, or None when the broker cannot say (then the sweep falls
    back to each run's deadline)."""
    try:
        with celery_app.connection_for_read() as connection:
            channel = connection.default_channel
            # kombu's virtual transports (Redis, filesystem) count a queue's messages directly; a passive
            # declare would fail exactly when it matters, after a restart forgot the queue's binding.
            return {queue: int(channel._size(queue)) for queue in QUEUE_NAMES}
    except Exception:  # noqa: BLE001 - a broker that is down or cannot count: the deadlines still hold
        log.warning("could not read the broker's queue depths", exc_info=True)
        return None


def publish_all(pairs: list[tuple[int, str]]) -> None:
    for run_id, queue in pairs:
        try:
            publish(run_id, queue)
        except Exception:  # the broker is down: the sweep publishes it again later
            log.warning("could not publish run %s to %s; the sweep will retry", run_id, queue, exc_info=True)


class _LeaseKeeper(threading.Thread):
    """Renews the run's lease while the stage runs, so the sweep can tell a slow job from a dead worker; never past
    the job's own deadline (its queue's time limit), so a hung job is handed to another worker."""

    def __init__(self, claim: run_store.Claim) -> None:
        super().__init__(daemon=True, name=f"lease-{claim.run_id}")
        self.claim, self.stopped = claim, threading.Event()
        self.ends = time.monotonic() + job_seconds(queue_for_stage(claim.stage))

    def run(self) -> None:
        while not self.stopped.wait(get_settings().run_heartbeat_seconds):
            if time.monotonic() > self.ends:
                log.warning("run %s: past its job's deadline, the lease is no longer renewed", self.claim.run_id)
                return
            try:
                with session_scope() as db:
                    if not run_store.renew_lease(db, self.claim):
                        return
            except Exception:
                log.warning("lease renewal of run %s failed", self.claim.run_id, exc_info=True)


PROGRESS_EVENT_SECONDS = 1.0  # stored progress of a running run: at most one supersedable event per second


def _supersedable(event: dict[str, Any]) -> bool:
    """Progress events whose newest one says all an older one did: per-batch training progress, and the correctness
    stage's "run N of M started" (a job reports each of its ~90 runs within a second or two)."""
    return event.get("type", "progress") == "progress" and (event.get("batch") is not None
                                                             or event.get("stage") == "correctness")


class _EventRecorder:
    """Stores pipeline events as RunEvent rows. Supersedable progress at most once a second: each stored event is a
    transaction, and storing every correctness run's start was most of a grade's store traffic. The newest event
    held back is stored when its second is up, so a case that runs long is the one shown while it runs. The first
    second after a stage starts counts too: a job that ends within it never stores a progress event.

    `stage_started` waits with the progress of that first second and is stored in the same transaction as what
    comes next (the held-back progress when the second is up, any other event, or the result): the run's `running`
    status, stored when it was claimed, already says it started, and a transaction of its own for it was one of
    the three a correctness grade cost (issue 14).

    `stage_finished` (and whatever follows it) is not stored on its own: it goes into the transaction that records
    the stage's result (`finished_events`), which comes right after it."""

    def __init__(self, claim: run_store.Claim) -> None:
        self.claim, self.last_progress = claim, 0.0
        self.lock = threading.Lock()
        self.started: dict[str, Any] | None = None  # a stage_started held back until the next stored event
        self.pending: dict[str, Any] | None = None  # the newest supersedable progress held back
        self.timer: threading.Timer | None = None
        self.finished: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:  # held while storing, so a held-back event never lands after a newer one
            if _supersedable(event):
                self._progress(event)
            elif self.finished or event.get("type") == "stage_finished":
                self._cancel()  # an older progress event must not land after this one
                self.finished += self._take_started() + [event]
            elif event.get("type") == "stage_started":
                self._cancel()
                self.started, self.last_progress = event, time.monotonic()
                self._hold()
            else:
                self._cancel()
                self._store(*self._take_started(), event)

    def _progress(self, event: dict[str, Any]) -> None:
        if self.last_progress + PROGRESS_EVENT_SECONDS > time.monotonic():
            self.pending = event
            self._hold()
            return
        self._cancel()
        self.last_progress = time.monotonic()
        self._store(*self._take_started(), event)

    def _hold(self) -> None:
        """Stores what is held back when the current second since the last stored progress is up."""
        if self.timer is None:
            self.timer = threading.Timer(max(0.0, self.last_progress + PROGRESS_EVENT_SECONDS - time.monotonic()),
                                         self._flush)
            self.timer.daemon = True
            self.timer.start()

    def _take_started(self) -> list[dict[str, Any]]:
        started, self.started = self.started, None
        return [started] if started is not None else []

    def finished_events(self) -> list[tuple[str, dict[str, Any]]]:
        """The events from `stage_finished` on, as (type, data), for the transaction that records the result."""
        with self.lock:
            events, self.finished = self.finished, []
        return [_event_row(event) for event in events]

    def close(self) -> None:
        """Drops what is held back (the stage has ended: its result, or the fault's status, supersedes it)."""
        with self.lock:
            self._cancel()
            self.started, self.finished = None, []

    def _cancel(self) -> None:
        """Drops held-back progress (a newer event supersedes it); a held stage_started stays."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.pending = None, None

    def _flush(self) -> None:
        with self.lock:
            held = self._take_started() + ([self.pending] if self.pending is not None else [])
            self.pending, self.timer = None, None
            if held:
                self.last_progress = time.monotonic()
                self._store(*held)

    def _store(self, *events: dict[str, Any]) -> None:
        """Stores `events` in one transaction, in order."""
        try:
            with session_scope() as db:
                for event in events:
                    run_store.add_claimed_event(db, self.claim, *_event_row(event))
        except Exception:
            log.warning("could not store an event of run %s", self.claim.run_id, exc_info=True)


def _event_row(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return str(event.get("type", "progress"))[:16], {key: value for key, value in event.items() if key != "type"}


_runner_cache: dict[str, Any] = {}


def _sandbox_runner(spec: Spec):
    """The sandbox backend of this worker process, chosen once per course kit (docker, else bwrap; see
    sandbox.select): assignments with an uploaded kit get a runner whose jobs see that kit."""
    key = spec.kit or "runner"
    if key not in _runner_cache:
        _runner_cache[key] = runner_for(spec, get_settings())
        if key == "runner":
            _keep_correctness_jobs_warm(_runner_cache[key])
    return _runner_cache[key]


def _keep_correctness_jobs_warm(runner) -> None:
    """Containers started ahead for correctness jobs under the default limits (docker only; sandbox/docker_warm.py)."""
    settings = get_settings()
    if settings.sandbox_warm_containers > 0 and hasattr(runner, "keep_warm"):
        from sandbox.runner import SandboxJob

        runner.keep_warm(SandboxJob("correctness", b"", limits=settings.sandbox_limits()),
                         settings.sandbox_warm_containers)


def _grade_stage(claim: run_store.Claim, recorder: _EventRecorder) -> tuple[GradingResult, float, str, str]:
    """Run the claimed stage through the flow, after the stages recorded before: (result, seconds, image digest,
    backend)."""
    spec = _spec_of(claim)
    runner = _sandbox_runner(spec)
    started = time.monotonic()
    result = pipeline.grade_stage(claim.source, claim.stage, spec=spec, runner=runner,
                                  earlier=claim.partial_result, on_event=recorder)
    image_digest = str(result.extra.get("image_digest") or getattr(runner, "image_id", "") or "")
    return result, time.monotonic() - started, image_digest, str(getattr(runner, "name", ""))


def _spec_of(claim: run_store.Claim) -> Spec:
    return _parsed_spec(claim.spec_toml)


@lru_cache(maxsize=16)
def _parsed_spec(spec_toml: str) -> Spec:
    """The spec of an assignment's text (cached: a grade needs it twice and a burst grades one assignment, at
    ~0.4 ms a parse; a Spec is never changed once parsed, and an edited spec is a new text)."""
    return parse_spec(spec_toml, source="assignment spec")


def record_and_advance(claim: run_store.Claim, result: GradingResult, seconds: float, image_digest: str, backend: str,
            recorder: _EventRecorder) -> str | None:
    """Store the stage's result and move the run on; returns the queue to publish it to (None: finished)."""
    with session_scope() as db:
        def training_ration(stage: str) -> str:
            if queue_for_stage(stage) != TRAINING_QUEUE:
                return ""
            run = db.get(run_store.GradingRun, claim.run_id)  # only then: most runs end after correctness
            return rations.training_ration_blocker(db, run, utcnow()) if run is not None else ""

        result, next_stage = pipeline.advance(_spec_of(claim), result, claim.stage, stages=claim.stages,
                                              refuse=training_ration, on_event=recorder)
        return run_store.record_stage(db, claim, result, next_stage, duration_s=seconds, image_digest=image_digest,
                                      backend=backend, events=recorder.finished_events())


@celery_app.task(name="grader.grade_run", bind=True, max_retries=None)
def grade_run(self, run_id: int) -> str:
    """Grade the current stage of a run, if it is still queued; safe to deliver any number of times."""
    worker = f"{socket.gethostname()}:{self.request.hostname or ''}"
    try:
        with session_scope() as db:
            claim = run_store.claim_run(db, run_id, worker)
    except Exception as error:
        if not faults.is_infrastructure_fault(error):
            raise
        log.warning("run %s: store unavailable, the sweep will publish it again: %s", run_id, error)
        return "store unavailable"
    if claim is None:
        return "nothing to do"
    lease = _LeaseKeeper(claim)
    lease.start()
    recorder = _EventRecorder(claim)
    try:
        result, seconds, image_digest, backend = _grade_stage(claim, recorder)
        next_queue = record_and_advance(claim, result, seconds, image_digest, backend, recorder)
    except Exception as error:
        return _after_fault(claim, error)
    except (SystemExit, KeyboardInterrupt):
        # The worker is stopping (billiard turns SIGTERM into SystemExit in a pool process): the runner already
        # removed the sandbox on the way out; the run waits in its queue for the next worker, not for its lease.
        with session_scope() as db:
            run_store.give_back(db, claim, "The grading machine was restarted; your file is queued again.")
        raise
    finally:
        lease.stopped.set()
        recorder.close()
    if next_queue:
        publish_all([(run_id, next_queue)])
        return f"stage {claim.stage} done"
    return "finished"


def close_warm_sandboxes() -> None:
    from sandbox.docker_warm import close_all

    close_all()


def _after_fault(claim: run_store.Claim, error: Exception) -> str:
    """An infrastructure fault delays the run (the sweep publishes it after its back-off); anything else is a bug in
    the grader and ends the run unscored. Neither ever becomes the student's grade."""
    from celery.exceptions import SoftTimeLimitExceeded

    infrastructure = faults.is_infrastructure_fault(error) or isinstance(error, SoftTimeLimitExceeded)
    try:
        with session_scope() as db:
            if infrastructure:
                _runner_cache.clear()  # choose the backend afresh: the engine may have restarted or gone
                close_warm_sandboxes()  # the old runner's waiting containers go with it
                waiting = run_store.release(db, claim, f"{type(error).__name__}: {error}")
            else:
                run_store.fail(db, claim, "The grader hit an internal problem while grading this file. This is "
                                          "not your fault and it does not count; an instructor has been told and "
                                          "can regrade it.")
    except Exception:  # the store itself is down: the lease runs out and the sweep hands the run on
        log.warning("run %s: could not record the fault", claim.run_id, exc_info=True)
        return "fault not recorded"
    if infrastructure:
        log.warning("run %s: infrastructure fault, %s: %s", claim.run_id, "delayed" if waiting else "given up", error)
        return "delayed" if waiting else "given up"
    log.error("run %s: the grader failed", claim.run_id, exc_info=error)
    return "error"


@celery_app.task(name="grader.sweep")
def sweep() -> int:
    """Publish again the runs stuck past their deadline (worker died, back-off over) or lost by the broker."""
    depths = broker_depths()
    with session_scope() as db:
        pairs = sweep_store.sweep(db, broker_depths=depths)
    publish_all(pairs)
    return len(pairs)
