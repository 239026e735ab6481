"""One renderer, one JSON error shape: ``{"error": {"code", "message", "status"}}``.

A browser asking for a web page (``Accept: text/html``, outside the API's prefixes) gets the
same status as an HTML page in the site's layout instead."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hdhub.errors import AuthenticationError, HdhubError


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message, "status": status}}, status_code=status, headers=headers
    )


API_PREFIXES = ("/api/", "/fhir/", "/dicomweb", "/healthz", "/metrics", "/docs", "/openapi")


def _page_error(request: Request, status: int, message: str) -> Response:
    from hdhub.api.pages import render, session_principal

    return render(request, "message.html.j2", session_principal(request), status=status, heading=str(status),
                  text=message)  # fmt: skip


async def error_for(request: Request, status: int, code: str, message: str) -> Response:
    """The error as JSON, or as a page for a browser asking for one."""
    wants_page = "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
        API_PREFIXES
    )
    if wants_page and status != 401:
        return await run_in_threadpool(_page_error, request, status, message)
    return error_response(status, code, message)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HdhubError)
    async def _hdhub(request: Request, exc: HdhubError) -> Response:
        status = 401 if isinstance(exc, AuthenticationError) else exc.status
        return await error_for(request, status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return await error_for(request, 422, "invalid", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = await error_for(request, exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # a 405's Allow (RFC 9110 15.5.6)
        return response
