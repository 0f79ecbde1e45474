"""The FastAPI application: `uvicorn --factory api.main:create_app`. The schema must be migrated before start."""

from __future__ import annotations

from fastapi import FastAPI

from api import web
from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.routes import assignments, audit, auth, badges, courses, health, kits, me, runs, submissions
from grader import __version__

API_ROUTERS = (auth.router, me.router, courses.router, assignments.router, submissions.router, runs.router,
               audit.router, health.router, badges.router, kits.router)


def create_app() -> FastAPI:
    app = FastAPI(title="CNN autograder", version=__version__,
                  description="Submit `spatial.py`, follow its grading, manage courses. Errors are "
                              "`{\"detail\": \"<message>\"}`.",
                  docs_url="/api/docs", redoc_url=None, openapi_url="/api/v1/openapi.json")
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(web.router)  # dashboard pages and the students' badge page
    return app
