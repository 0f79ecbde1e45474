"""The two work queues and which stage runs in which: `correctness` is fast (seconds per job), `training` slow.

A run moves from the first to the second by being published again after its correctness stage was recorded.
"""

from __future__ import annotations

CORRECTNESS_QUEUE = "correctness"
TRAINING_QUEUE = "training"
QUEUE_NAMES = (CORRECTNESS_QUEUE, TRAINING_QUEUE)
STAGE_QUEUES = {"correctness": CORRECTNESS_QUEUE, "cifar10": TRAINING_QUEUE}


def queue_for_stage(stage: str) -> str:
    """The queue a stage's jobs wait in; an unknown stage is assumed slow."""
    return STAGE_QUEUES.get(stage, TRAINING_QUEUE)
