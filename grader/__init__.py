"""Grading domain: checks, scoring, pipeline, Celery tasks and the store."""

__version__ = "0.1.0"
