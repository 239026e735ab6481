"""Numbers that reached SQLite or int() unchecked (found by an API sweep with schemathesis):
ids beyond 64 bits overflowed the SQLite driver, and Unicode digits such as '²' passed
str.isdigit() but not int(). Each was a 500. An id no row can have is not found (404), as a
token's already was; a version or offset beyond the catalog's integers is refused (422)."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

HUGE = 2**63  # one past SQLite's INTEGER


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "status"),
    [
        ("clinician", "GET", f"/api/v1/alerts/{HUGE}", None, 404),
        ("clinician", "POST", f"/api/v1/alerts/{HUGE}/ack", None, 404),
        ("committee", "GET", f"/api/v1/releases/{HUGE}/file", None, 404),
        ("committee", "POST", f"/api/v1/releases/{HUGE}/reviews", {"vote": "approve"}, 404),
        ("dpo", "GET", f"/api/v1/audit?_offset={HUGE}", None, 422),
        ("researcher", "GET", f"/api/v1/cohorts/diabete?version={HUGE}", None, 422),
        ("researcher", "POST", "/api/v1/cohorts/count", {"name": "diabete", "version": HUGE}, 422),
    ],
)
def test_numbers_beyond_the_catalog_are_refused(
    api: Api, role: str, method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    r = api.client.request(method, path, json=body, headers=api.as_role(role))
    assert r.status_code == status and r.json()["error"]["message"]


@pytest.mark.parametrize("query", ["limit=%C2%B2", "offset=%C2%B9", "limit=-1", "offset=1e3"])
def test_qido_refuses_numbers_that_are_not_ascii_digits(api: Api, query: str) -> None:
    r = api.client.get(f"/dicomweb/studies?{query}", headers=api.as_role("clinician"))
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_tus_refuses_lengths_and_offsets_that_are_not_ascii_digits(api: Api) -> None:
    headers = api.as_role("data_engineer") | {"Tus-Resumable": "1.0.0"}
    metadata = {"Upload-Metadata": "category ZG9jdW1lbnQ=,patient NE1SMQ=="}  # document, 4MR1
    r = api.client.post("/api/v1/media/uploads", headers=headers | metadata | {"Upload-Length": b"\xb2"})
    assert r.status_code == 400
    created = api.client.post("/api/v1/media/uploads", headers=headers | metadata | {"Upload-Length": "3"})
    assert created.status_code == 201
    patch = headers | {"Upload-Offset": b"\xb9", "Content-Type": "application/offset+octet-stream"}
    r = api.client.patch(created.headers["Location"], content=b"abc", headers=patch)
    assert r.status_code == 400
