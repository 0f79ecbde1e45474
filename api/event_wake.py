"""Wakes this API process's progress streams when their submission has new events: one Redis subscriber per process
(started and stopped with the app), listening to what grader/store/event_signal.py publishes after a commit, and
handing each submission id to the streams open on it.

Without it, every open stream would poll the store twice a second: with a class of students waiting on a burst of
grades, their polls took the CPU the grading needed. A notification is only a hint; a stream still polls now and
then (WAKE_SAFETY_SECONDS), and polls as often as before while the subscriber is not connected."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from grader.store.event_signal import events_channel, redis_url

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 2.0  # wait before subscribing again after Redis went away
CONNECT_TIMEOUT_SECONDS = 2.0


class EventWaker:
    """Submission id -> the wake-up flags of the streams open on it, set when a notification for it arrives."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.connected = False  # True once subscribed; streams poll on their own schedule otherwise
        self.flags: dict[int, set[asyncio.Event]] = {}
        self.task: asyncio.Task | None = None
        self.client_name = f"grader-event-waker-{os.getpid()}-{id(self):x}"  # findable in CLIENT LIST
        self.failing = False  # the last attempt to subscribe failed (logged once, not every RECONNECT_SECONDS)

    @contextlib.contextmanager
    def watch(self, submission_id: int) -> Iterator[asyncio.Event]:
        """A flag set whenever events of `submission_id` were committed (or the subscription changed)."""
        flag = asyncio.Event()
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

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        self._set_connected(False)

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
