"""The worker's event recorder stores a correctness job's run-by-run progress at most once per interval, the newest
held-back event when the interval is up, and never after a newer event of another kind.

The store is replaced by a list here (the recorder's own throttling is the subject; storing an event is covered by
the worker tests, e.g. tests/api/test_api_hidden_progress.py reads the stored running case during a job)."""

from __future__ import annotations

import time

import pytest

from grader import tasks
from grader.store.runs import Claim


@pytest.fixture
def recorder(monkeypatch):
    monkeypatch.setattr(tasks, "PROGRESS_EVENT_SECONDS", 0.3)
    recorder = tasks._EventRecorder(Claim(run_id=1, attempt=1, stage="correctness", source=b"", spec_toml="",
                                          stages=("correctness",), partial_result=None, submission_id=1))
    stored: list[dict] = []
    transactions: list[list[str]] = []

    def store(*events: dict) -> None:
        stored.extend(events)
        transactions.append([event["type"] for event in events])

    monkeypatch.setattr(recorder, "_store", store)
    recorder.transactions = transactions
    return recorder, stored


def _progress(done: int) -> dict:
    return {"type": "progress", "stage": "correctness", "done": done, "total": 90, "running": f"run{done}"}


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_burst_of_run_progress_stores_the_first_and_then_the_newest(recorder):
    record, stored = recorder
    for done in range(90):
        record(_progress(done))
    assert [event["done"] for event in stored] == [0]
    _wait_for(lambda: len(stored) == 2)
    assert [event["done"] for event in stored] == [0, 89]  # the case running now is the one shown
    time.sleep(0.5)
    assert len(stored) == 2  # nothing held back any more


def test_stage_finished_drops_held_back_progress_so_nothing_older_lands_after_it(recorder):
    record, stored = recorder
    record(_progress(0))
    record(_progress(1))
    record({"type": "stage_finished", "stage": "correctness", "status": "graded"})
    time.sleep(0.6)
    assert [event["type"] for event in stored] == ["progress"]
    # stage_finished, and what follows it, go into the transaction that records the stage's result
    record({"type": "stage_started", "stage": "cifar10"})
    assert record.finished_events() == [("stage_finished", {"stage": "correctness", "status": "graded"}),
                                        ("stage_started", {"stage": "cifar10"})]
    assert record.finished_events() == [] and len(stored) == 1


def test_a_job_that_ends_within_a_second_of_its_start_stores_nothing_before_its_result(recorder):
    record, stored = recorder
    record({"type": "stage_started", "stage": "correctness"})
    record(_progress(0))
    record(_progress(1))
    record({"type": "stage_finished", "stage": "correctness", "status": "graded"})
    time.sleep(0.6)
    assert stored == []
    # stage_started goes into the result's transaction, before stage_finished
    assert [event_type for event_type, _ in record.finished_events()] == ["stage_started", "stage_finished"]


def test_a_longer_job_shows_its_start_and_running_case_in_one_transaction_once_the_first_second_is_up(recorder):
    record, stored = recorder
    record({"type": "stage_started", "stage": "correctness"})
    record(_progress(0))
    _wait_for(lambda: len(stored) == 2)
    assert [event.get("done") for event in stored] == [None, 0]
    assert record.transactions == [["stage_started", "progress"]]
    record.close()


def test_a_stage_without_progress_stores_its_start_when_the_first_second_is_up(recorder):
    record, stored = recorder
    record({"type": "stage_started", "stage": "cifar10"})
    assert stored == []
    _wait_for(lambda: len(stored) == 1)
    assert record.transactions == [["stage_started"]]
    record({"type": "stage_finished", "stage": "cifar10", "status": "graded"})
    assert [event_type for event_type, _ in record.finished_events()] == ["stage_finished"]


def test_another_event_takes_the_held_start_with_it(recorder):
    record, stored = recorder
    record({"type": "stage_started", "stage": "cifar10"})
    record({"type": "progress", "stage": "cifar10", "epoch": 1, "test_accuracy": 0.4})
    assert record.transactions == [["stage_started", "progress"]]
    time.sleep(0.5)
    assert len(stored) == 2  # nothing stored twice when the second is up
    record.close()


def test_closing_drops_a_held_start(recorder):
    record, stored = recorder
    record({"type": "stage_started", "stage": "correctness"})
    record.close()
    time.sleep(0.5)
    assert stored == [] and record.finished_events() == []


def test_training_epoch_progress_is_never_held_back(recorder):
    record, stored = recorder
    record({"type": "progress", "stage": "cifar10", "batch": 1, "done": 1})
    record({"type": "progress", "stage": "cifar10", "epoch": 1, "test_accuracy": 0.4})
    record({"type": "progress", "stage": "cifar10", "epoch": 2, "test_accuracy": 0.5})
    assert [event.get("epoch") for event in stored] == [None, 1, 2]
    record.close()
