"""The Accept header parser: what it takes, and that no header makes it fail."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdhub.api.accept import accepts

DICOM = ("multipart/related", "application/dicom")


@pytest.mark.parametrize(
    ("header", "taken"),
    [
        (None, True),
        ("", True),
        ('MULTIPART/Related; Type="Application/DICOM"', True),  # case-insensitive
        ('multipart/related; type="application/*"', True),
        ("multipart/related;q=0", False),
        ("multipart/related;q=x", False),  # an unreadable q: not a range the client gave
        (",,;;,", False),
        ("text/html, application/xhtml+xml", False),
    ],
)
def test_media_ranges(header: str | None, taken: bool) -> None:
    assert accepts(header, DICOM[0], part=DICOM[1]) is taken


@given(st.text(max_size=300))
def test_any_header_is_an_answer_never_an_error(header: str) -> None:
    assert accepts(header, DICOM[0], part=DICOM[1]) in (True, False)
    assert accepts(header, "application/dicom+json", aliases=("application/json",)) in (True, False)
