"""The trusted side of the training stage (grader/stages/training.py), one concern per module.

recipe: the spec section resolved into what the harness follows; progress: validation of the job's progress
lines; weights: the handed-back parameters, validated; evaluation: test accuracy computed here; judging: outcome
and events to a stage result; plotting: the curve picture; reproducibility: the replay record.
"""
