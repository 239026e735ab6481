"""No audit, no data: when the audit event cannot be written, the answer is a 503 instead."""

from __future__ import annotations

from sqlalchemy import text

from tests.api.conftest import STUDY, Api


def _break_audit_table(api: Api) -> None:
    """The catalog refuses every new audit event, as a full disk or a lost database would."""
    with api.hub.catalog.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"
            ))  # fmt: skip
        else:
            conn.execute(text(
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'audit store unavailable'; END $$ LANGUAGE plpgsql"
            ))  # fmt: skip
            conn.execute(text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
            ))  # fmt: skip


def test_an_answer_whose_access_cannot_be_recorded_is_not_sent(api: Api) -> None:
    reader = api.as_role("clinician")
    found = api.client.get(f"/dicomweb/studies?StudyInstanceUID={STUDY}", headers=reader)
    assert found.status_code == 200 and STUDY in found.text
    _break_audit_table(api)
    for path in (f"/dicomweb/studies?StudyInstanceUID={STUDY}", f"/dicomweb/studies/{STUDY}/metadata",
                 f"/api/v1/media/{api.media_id}/content"):  # fmt: skip
        r = api.client.get(path, headers=reader)
        assert r.status_code == 503, path
        assert r.json()["error"]["code"] == "audit_unavailable" and STUDY not in r.text
    metrics = api.client.get("/metrics", headers=api.as_role("admin"))
    assert "hdhub_audit_write_failures_total 3.0" in metrics.text
