"""One place that turns failures into the predecessor's JSON error shape: {success: false, error, message, timestamp}."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .sdk import docker, requests

log = logging.getLogger("dtma.api")


def timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ok(**fields) -> dict:
    """A success body with the predecessor's top-level fields."""
    return {"success": True, **fields, "timestamp": timestamp()}


class ApiError(Exception):
    """An error the caller can act on; `extra` fields are added to the body, `headers` to the response."""

    def __init__(self, status: int, error: str, message: str = "", headers: dict | None = None, **extra):
        super().__init__(f"{status} {error}: {message}")
        self.status, self.error, self.message, self.headers, self.extra = status, error, message or error, headers, extra


class DockerUnavailable(Exception):
    """The Docker Engine API cannot be reached."""


def error_body(error: str, message: str, **extra) -> dict:
    return {"success": False, "error": error, "message": message, **extra, "timestamp": timestamp()}


def error_response(status_code: int, error: str, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    """Every error the agent answers, in one shape; `extra` fields (data, fields, per-server outcomes, a `status`)
    are added."""
    return JSONResponse(error_body(error, message, **extra), status_code=status_code, headers=headers)


def _field(loc) -> str:
    # drop the "body"/"query"/"path" prefix; the rest names the field as the caller sent it
    if len(loc) == 2 and loc[0] == "body" and isinstance(loc[1], int):
        return "body"  # a JSON syntax error at a character offset, not a field
    parts = [str(p) for p in loc]
    return ".".join(parts[1:] if len(parts) > 1 and parts[0] in ("body", "query", "path", "header") else parts)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return error_response(exc.status, exc.error, exc.message, headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        fields = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()]
        message = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields)
        return error_response(422, "invalid request", message, fields=fields)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        # Starlette's own errors (unknown route 404, 405, an unparseable body) in the same shape as ours
        error = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "invalid request")
        return error_response(exc.status_code, error, str(exc.detail), exc.headers)

    @app.exception_handler(DockerUnavailable)
    async def _docker_down(request: Request, exc: DockerUnavailable):
        return error_response(503, "docker unavailable", str(exc))

    # The SDK's API errors and requests' connection errors are OSErrors (requests' RequestException is an IOError):
    # keyed on OSError, so that registering them does not import either library (sdk.py).
    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError):
        if isinstance(exc, docker.errors.NotFound):
            return error_response(404, "not found", str(exc.explanation or exc))
        if isinstance(exc, docker.errors.APIError):
            log.warning("docker API error: %s", exc)
            return error_response(502, "docker error", str(exc.explanation or exc))
        if isinstance(exc, requests.exceptions.ConnectionError):
            return error_response(503, "docker unavailable", f"cannot reach the Docker engine: {exc}")
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal error", f"{type(exc).__name__}; details are in the agent log")
