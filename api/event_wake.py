"""Wakes this API process's progress streams when their submission has new events: one Redis subscriber per process
(started and stopped with the app), listening to what grader/store/event_signal.py publishes after a commit, and
handing each submission id to the streams open on it.

Without it, every open stream would poll the store twice a second: with a class of students waiting on a burst of
grades, their polls took the CPU the grading needed. A notification is only a hint: one that was lost (a publish
that timed out on the worker's side) is made up for by the process's sweep, which every SWEEP_SECONDS asks the store
for the newest event of every watched submission in one query and wakes the streams that have not seen it (each
stream polling on its own every few seconds was most of the store's transactions in a burst, issue 14). While the
subscriber is not connected, streams poll as often as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grader.services import runs as run_service
from grader.store.event_signal import events_channel, redis_url

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 2.0  # wait before subscribing again after Redis went away
CONNECT_TIMEOUT_SECONDS = 2.0
# A notification lost between a commit and this process delays its event by at most this (the sweep's interval).
SWEEP_SECONDS = 5.0


class StreamFlag(asyncio.Event):
    """A stream's wake-up flag, with the newest event id its polls have seen (what the sweep compares with)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_event_id = 0


class EventWaker:
    """Submission id -> the wake-up flags of the streams open on it, set when a notification for it arrives."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.connected = False  # True once subscribed; streams poll on their own schedule otherwise
        self.flags: dict[int, set[StreamFlag]] = {}
        self.task: asyncio.Task | None = None
        self.sweeper: asyncio.Task | None = None
        self.client_name = f"grader-event-waker-{os.getpid()}-{id(self):x}"  # findable in CLIENT LIST
        self.failing = False  # the last attempt to subscribe failed (logged once, not every RECONNECT_SECONDS)

    @contextlib.contextmanager
    def watch(self, submission_id: int) -> Iterator[StreamFlag]:
        """A flag set whenever events of `submission_id` were committed (or the subscription changed); the stream
        keeps its `seen_event_id` up to date."""
        flag = StreamFlag()
        self.flags.setdefault(submission_id, set()).add(flag)
        try:
            yield flag
        finally:
            watchers = self.flags.get(submission_id)
            if watchers is not None:
                watchers.discard(flag)
                if not watchers:
                    del self.flags[submission_id]

    def start(self) -> None:
        if self.url is not None and self.task is None:
            self.task = asyncio.create_task(self._listen(), name="event-waker")
            self.sweeper = asyncio.create_task(self._sweep_forever(), name="event-sweeper")

    async def stop(self) -> None:
        for task in (self.task, self.sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.task = self.sweeper = None
        self._set_connected(False)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            if self.connected and self.flags:
                try:
                    await self._sweep()
                except Exception:  # noqa: BLE001 - the store is down: the streams' own polls find out
                    log.warning("the sweep for events of open streams failed", exc_info=True)

    async def _sweep(self) -> None:
        """Wakes the streams whose submission has an event newer than their polls have seen."""
        latest = await asyncio.to_thread(run_service.latest_event_ids, list(self.flags))
        for submission_id, event_id in latest.items():
            for flag in self.flags.get(submission_id, ()):
                if event_id > flag.seen_event_id:
                    flag.set()

    async def _listen(self) -> None:
        while True:
            try:
                await self._subscribe_and_dispatch()
            except (RedisError, OSError) as error:
                if self.connected or not self.failing:
                    log.warning("no event notifications from Redis (%s); progress streams poll the store on their "
                                "own until they are back", error)
                self.failing = True
            finally:
                self._set_connected(False)
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _subscribe_and_dispatch(self) -> None:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                         socket_keepalive=True, client_name=self.client_name)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(events_channel(self.url))
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        self.failing = False
                        self._set_connected(True)
                    elif message["type"] == "message":
                        self._wake(message["data"])
        finally:
            await client.aclose()

    def _wake(self, data: bytes) -> None:
        try:
            submission_id = int(data)
        except ValueError:
            return
        for flag in self.flags.get(submission_id, ()):
            flag.set()

    def _set_connected(self, connected: bool) -> None:
        """Every stream is woken when the subscription comes or goes: it polls once and waits on the new schedule
        (an event committed before the subscription took effect is found by that poll, not after the safety wait)."""
        if connected != self.connected:
            self.connected = connected
            for watchers in self.flags.values():
                for flag in watchers:
                    flag.set()


def event_waker_for_settings() -> EventWaker:
    return EventWaker(redis_url())
