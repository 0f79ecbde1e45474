"""The FastAPI application: `uvicorn --factory api.main:create_app`. The schema must be migrated before start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import web
from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.event_wake import event_waker_for_settings
from api.routes import assignments, audit, auth, badges, courses, health, kits, me, runs, submissions
from grader import __version__

API_ROUTERS = (auth.router, me.router, courses.router, assignments.router, submissions.router, runs.router,
               audit.router, health.router, badges.router, kits.router)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The process's one subscriber to event notifications, for its progress streams (api/event_wake.py)."""
    app.state.event_waker = event_waker_for_settings()
    app.state.event_waker.start()
    try:
        yield
    finally:
        await app.state.event_waker.stop()


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan, title="CNN autograder", version=__version__,
                  description="Submit `spatial.py`, follow its grading, manage courses. Errors are "
                              "`{\"detail\": \"<message>\"}`.",
                  docs_url="/api/docs", redoc_url=None, openapi_url="/api/v1/openapi.json")
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(web.router)  # dashboard pages and the students' badge page
    return app
