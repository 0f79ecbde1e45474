"""Grading stages, one module each: `correctness` (the checks) and `training` (the `cifar10` stage).

A stage is a function `run_stage(StageContext) -> StageOutput` plus `max_score(spec)`; grader/pipeline.py owns the
registry that names them, the gating between them and the merging of their results.
"""
