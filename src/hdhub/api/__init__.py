"""The HTTP API (FastAPI): ``create_app(hub)`` assembles the routers."""

from hdhub.api.app import create_app

__all__ = ["create_app"]
