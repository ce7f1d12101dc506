"""Every error answers `{"detail": sentence, "errors": [{"field", "message"}]}`; none carries a
stack trace (those go to `logs/api.log` under an id the answer names)."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from multitalk_desktop.api.bodylimit import BodyTooLarge
from multitalk_desktop.errors import IllegalTransition, MultiTalkError, ValidationFailed

log = logging.getLogger("multitalk_desktop.api")


class ApiProblem(Exception):
    def __init__(self, status: int, detail: str, problems: list[tuple[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problems = problems or []
        self.headers = headers


def _loc_to_field(loc: tuple) -> str:
    out = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # pydantic names union branches (e.g. "str", "list[str]"); they are not fields.
            if part in ("str", "list[str]", "int", "float") or "[" in str(part):
                continue
            out += ("." if out else "") + str(part)
    return out or "body"


def problems_from_pydantic(err: ValidationError | RequestValidationError) -> list[tuple[str, str]]:
    seen = []
    for e in err.errors():
        item = (_loc_to_field(tuple(e.get("loc", ()))), str(e.get("msg", "invalid")))
        if item[1].startswith("Extra inputs"):
            item = (item[0], "Unknown field; it is not part of the API (check its spelling).")
        if item not in seen:
            seen.append(item)
    return seen


def _body(detail: str, problems: list[tuple[str, str]] | None = None) -> dict:
    return {"detail": detail, "errors": [{"field": f, "message": m} for f, m in problems or []]}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return JSONResponse(_body(exc.detail, exc.problems), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_body("The request is not valid.", problems_from_pydantic(exc)), status_code=422)

    @app.exception_handler(ValidationFailed)
    async def _failed(request: Request, exc: ValidationFailed) -> JSONResponse:
        return JSONResponse(_body("The request is not valid.", list(exc.problems)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "The request cannot be served."
        return JSONResponse(_body(detail), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(_body("The request body is too large."), status_code=413,
                            headers={"Connection": "close"})

    @app.exception_handler(IllegalTransition)
    async def _conflict(request: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse(_body(exc.message), status_code=409)

    @app.exception_handler(MultiTalkError)
    async def _ours(request: Request, exc: MultiTalkError) -> JSONResponse:
        return JSONResponse(_body(exc.user_text()), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.error("incident %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
        return JSONResponse(_body(f"Internal error (incident {incident}); the details are in the "
                                  "server's log."), status_code=500)
