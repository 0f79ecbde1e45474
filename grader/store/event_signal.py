"""Tells the API's progress streams that a submission has new run events: when a transaction that stored events
commits, the ids of their submissions are published on a Redis channel (api/event_wake.py listens).

Every event write (grader/store/runs.py, grader/store/faults.py) calls `note_new_events` on its session; the one
`after_commit` hook below publishes. A notification is only a hint to poll now: the streams still poll the store on
their own every few seconds, so a lost notification delays an event, never loses it. Publishing therefore never
fails a transaction and never waits long: a Redis error is logged, and for a while no publish is tried."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from grader.settings import get_settings

log = logging.getLogger(__name__)

_SESSION_KEY = "grader.event_signal.submission_ids"
# A publish to a Redis on the same host or network takes well under a millisecond; one that does not answer within
# this is given up, so a grade (whose transactions publish) waits at most this long.
PUBLISH_TIMEOUT_SECONDS = 0.25
# After a failed publish none is tried for this long: an unreachable Redis costs one timeout per interval and
# process, not one per transaction. The streams' own polling covers the gap.
PUBLISH_PAUSE_SECONDS = 10.0


def events_channel(redis_url: str) -> str:
    """The channel of one service: Redis channels are not per database, so the database number is in the name
    (two deployments, or two test runs, on one Redis do not wake each other's streams)."""
    database = urlsplit(redis_url).path.strip("/") or "0"
    return f"grader:{database}:submission-events"


def redis_url() -> str | None:
    """The service's Redis (BROKER_URL), or None when the broker is not Redis (the embedded SQLite transport)."""
    url = get_settings().broker_url
    return url if url.startswith(("redis://", "rediss://", "unix://")) else None


def note_new_events(db: Session, submission_id: int) -> None:
    """Record that this transaction stores events of `submission_id`: they are announced once it commits."""
    db.info.setdefault(_SESSION_KEY, set()).add(submission_id)


class _Publisher:
    """One Redis client per process, per URL (tests change the settings), paused after a failure."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: redis.Redis | None = None
        self.client_url = ""
        self.paused_until = 0.0

    def publish(self, submission_ids: set[int]) -> None:
        url = redis_url()
        if url is None or time.monotonic() < self.paused_until:
            return
        try:
            client = self._client(url)
            channel = events_channel(url)
            if len(submission_ids) == 1:
                client.publish(channel, str(next(iter(submission_ids))))
            else:
                with client.pipeline(transaction=False) as pipeline:
                    for submission_id in sorted(submission_ids):
                        pipeline.publish(channel, str(submission_id))
                    pipeline.execute()
        except Exception as error:  # noqa: BLE001 - raised here it would fail a transaction that has committed
            self.paused_until = time.monotonic() + PUBLISH_PAUSE_SECONDS
            log.warning("could not announce new events of submissions %s (%s); streams will find them by polling",
                        sorted(submission_ids), error)

    def _client(self, url: str) -> redis.Redis:
        with self.lock:
            if self.client is None or self.client_url != url:
                self.client = redis.Redis.from_url(url, socket_timeout=PUBLISH_TIMEOUT_SECONDS,
                                                   socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS)
                self.client_url = url
            return self.client


_publisher = _Publisher()


@event.listens_for(Session, "after_commit")
def _announce_committed_events(session: Session) -> None:
    submission_ids = session.info.pop(_SESSION_KEY, None)
    if submission_ids:
        _publisher.publish(submission_ids)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_events(session: Session) -> None:
    session.info.pop(_SESSION_KEY, None)
