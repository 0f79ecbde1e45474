"""Start a Celery worker: `python -m grader.worker [--queues correctness,training] [--concurrency N] [--beat]`.

Before taking jobs it removes sandbox containers left behind by a worker that died (their runs are re-queued by
the sweep, so nothing they were doing is lost). Stopping it (SIGTERM, Ctrl-C) ends the jobs it is running at once:
each pool process removes its job's sandbox before it exits, and the job goes back to the queue.
"""

from __future__ import annotations

import argparse
import logging

from celery.signals import task_prerun, worker_init, worker_shutting_down

from grader.settings import get_settings
from grader.tasks import celery_app

log = logging.getLogger(__name__)


@worker_init.connect
def _remove_orphaned_sandboxes(**_kwargs) -> None:
    settings = get_settings()
    if settings.sandbox_backend not in ("auto", "docker"):
        return
    try:
        from sandbox import docker_backend
        from sandbox.select import job_root

        removed = docker_backend.cleanup_orphans(docker_backend.connect(settings.sandbox_engine_timeout_seconds),
                                                 job_root(settings),
                                                 orphan_age_seconds=settings.sandbox_orphan_age_seconds)
        log.info("removed %d orphaned sandbox container(s)", removed)
    except Exception as error:  # no engine here: the sandbox selection refuses jobs later with a clear message
        log.warning("orphan cleanup skipped: %s", error)


@worker_init.connect
def _prepare_before_fork(**_kwargs) -> None:
    """In the main process, before the pool forks: what every pool process would otherwise load or compute on its
    first job (the stage's modules, the default spec's inputs and reference outputs, the ORM's mappers) is done
    once and inherited. Each pool process paid about 0.4 CPU s for it, 1.6 s per start of a four-process worker
    (issue 14). Nothing here opens a connection: sockets must not be shared across the fork."""
    try:
        prepare_before_fork()
    except Exception:  # noqa: BLE001 - only a saving: a pool process loads whatever is missing on its first job
        log.warning("could not prepare the grading code before forking the pool", exc_info=True)


def prepare_before_fork() -> None:
    from sqlalchemy.orm import configure_mappers

    import psycopg  # noqa: F401 - the driver, loaded by the first connection otherwise
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

    import grader.correctness.feedback  # noqa: F401 - judged on every job, imported by the stage lazily
    from grader.pipeline import STAGES
    from grader.spec import load_spec

    configure_mappers()
    spec = load_spec()
    stage = STAGES["correctness"].load()
    stage.max_score(spec)  # prepares the runs (inputs and reference outputs) of the default spec's seed
    stage.prepared_job_inputs(spec.correctness.seed, spec.correctness.case_seconds, spec.catalogue_options)
    if get_settings().sandbox_backend in ("auto", "docker"):
        import sandbox.docker_warm  # noqa: F401 - and the Docker SDK with it
        import sandbox.select  # noqa: F401


@worker_shutting_down.connect
def _interrupt_running_jobs(**_kwargs) -> None:
    """A stopping worker does not wait for its jobs (a training job runs for up to its 45-minute wall clock, longer
    than any stop grace period): its pool processes are told to stop now. Billiard turns SIGTERM into SystemExit
    there, so the runner's `finally` removes the job's sandbox on the way out; the run is put back in its queue."""
    from sandbox.interrupts import terminate_children

    terminate_children()


@task_prerun.connect
def _finish_cleanup_on_a_second_sigterm(**_kwargs) -> None:
    """In the pool process, before each job: after billiard's SIGTERM handler has begun the clean-up, a second
    SIGTERM (the worker's and a process-group kill's) is ignored instead of killing the process half-way."""
    import functools
    import signal

    from sandbox.docker_warm import close_all
    from sandbox.interrupts import ignore_repeats_after

    # Billiard's own handler ends the process with os._exit, past any Celery shutdown signal: the containers kept
    # started ahead are removed here first (a job's runner removes its own as the interruption unwinds through it).
    ignore_repeats_after(signal.SIGTERM, before=functools.partial(close_all, idle_only=True))


def worker_argv(queues: str, concurrency: int, beat: bool, hostname: str | None = None) -> list[str]:
    argv = ["worker", "--queues", queues, "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--pool", "prefork", "--without-gossip", "--without-mingle"]
    if beat:
        schedule = get_settings().data_dir / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", "--schedule", str(schedule)]
    if hostname:
        argv += ["--hostname", hostname]
    return argv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", default="correctness,training")
    parser.add_argument("--concurrency", type=int, default=get_settings().worker_concurrency)
    parser.add_argument("--beat", action="store_true", help="also run the periodic sweep (one worker per site)")
    parser.add_argument("--hostname", default=None)
    args = parser.parse_args(argv)
    celery_app.worker_main(worker_argv(args.queues, args.concurrency, args.beat, args.hostname))


if __name__ == "__main__":
    main()
