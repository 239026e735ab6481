"""Placeholder: filled in by the page's own change."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
