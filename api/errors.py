"""Every error is JSON `{"detail": "<message>"}`; bad input is a 4xx with a message a person can act on."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

from api.body_limit import BodyTooLarge, too_large_response
from grader.services.errors import Conflict, Forbidden, Invalid, LimitReached, NotFound, ServiceError, TooLarge

log = logging.getLogger(__name__)

STORE_RETRY_AFTER_SECONDS = 15  # a database restart takes seconds
SERVICE_ERROR_STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, Invalid: 422, TooLarge: 413, LimitReached: 429}


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {item.get('msg', 'invalid')}" if where else str(item.get("msg", "invalid")))
    return "Invalid request: " + "; ".join(parts)


def service_error_response(error: ServiceError) -> JSONResponse:
    status = next((code for kind, code in SERVICE_ERROR_STATUS.items() if isinstance(error, kind)), 400)
    headers = {}
    if isinstance(error, LimitReached):
        headers = {"Retry-After": str(error.retry_after_seconds), "X-RateLimit-Reset": error.resets_at.isoformat()}
    return JSONResponse({"detail": error.message}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, error: BodyTooLarge) -> Response:
        return too_large_response(request.url.path, request.headers.get("accept", ""), error.reason)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(error), "errors": jsonable_encoder(error.errors()[:20], custom_encoder={Exception: str})}, status_code=422)

    @app.exception_handler(ServiceError)
    async def _refused(_request: Request, error: ServiceError) -> JSONResponse:
        return service_error_response(error)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, error: DataError) -> JSONResponse:
        # The database refused a value the request carried (a NUL byte in a text, a number out of range):
        # the caller's input, not a fault of the service.
        log.warning("refused a value on %s %s: %s", request.method, request.url.path, error.orig)
        return JSONResponse({"detail": "Invalid request: a value is out of range or contains a character that "
                                       "cannot be stored (such as a NUL byte)."}, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _store_unavailable(request: Request, error: Exception) -> JSONResponse:
        # The database is restarting or unreachable: nothing was stored; the client should simply try again
        # (`grader submit` does, after Retry-After).
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"detail": "The grading service is briefly unavailable (its database is restarting). "
                                       "Nothing was stored; please try again in a minute."},
                            status_code=503, headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "Internal error; it has been logged."}, status_code=500)
