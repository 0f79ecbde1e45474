"""Isolation backends for student code and the harnesses that run inside them.

Nothing here imports `grader` or `api`: the grader depends on the sandbox, never the other way round.
"""
