"""Persistent store: SQLAlchemy models, the session factory, and the few functions that write to it."""
