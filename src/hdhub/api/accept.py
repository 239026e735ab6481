"""HTTP ``Accept`` (RFC 9110 §12.5.1): whether a client takes what a route answers.

DICOMweb routes answer one representation each; PS3.18 §8.7.3 wants 406 Not Acceptable when
the client's media ranges exclude it, rather than bytes it did not ask for.
"""

from __future__ import annotations

from collections.abc import Iterator


def _ranges(header: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The media ranges of ``header`` that a client takes (q above 0): (type/subtype, parameters),
    lower-cased, quotes removed."""
    for item in header.split(","):
        media, *parameters = (part.strip() for part in item.split(";"))
        params = {}
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            params[name.strip().lower()] = value.strip().strip('"').lower()
        try:
            if float(params.get("q", "1")) <= 0:
                continue
        except ValueError:
            continue
        if media:
            yield media.lower(), params


def _covers(pattern: str, media: str) -> bool:
    """Whether ``pattern`` (``*/*``, ``type/*`` or a media type) covers ``media``."""
    kind, _, subtype = pattern.partition("/")
    return pattern == "*/*" or pattern == media or (subtype == "*" and media.startswith(kind + "/"))


def accepts(header: str | None, media: str, part: str | None = None, aliases: tuple[str, ...] = ()) -> bool:
    """Whether ``header`` takes ``media`` (or one of its ``aliases``), a ``multipart/related``
    answer of ``part``-typed parts when ``part`` is given. No header takes anything."""
    if not header or not header.strip():
        return True
    for pattern, params in _ranges(header):
        if not any(_covers(pattern, m) for m in (media, *aliases)):
            continue
        if part is None or pattern != media or "type" not in params or _covers(params["type"], part):
            return True
    return False
