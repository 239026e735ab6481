"""The audit fields of an imaging operation: every study and patient it reached."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# A patient reached: a Patient ID alone, or (Patient ID, IssuerOfPatientID or None when the
# archive holds no issuer) when the caller knows who issued it.
PatientRef = str | tuple[str | None, str | None] | None


def reached(studies: Iterable[str | None], patients: Iterable[PatientRef], **detail: Any) -> dict[str, Any]:
    """Audit-event fields naming the studies and Patient IDs reached: all of them in the
    detail; the indexed ``resource_id`` and ``patient_id`` hold as many as fit (the audit
    log cuts them to their limits). ``patient_id`` and the detail's ``patients`` stay Patient
    IDs (what the audit log is searched by); patients given with their issuer are also listed
    in the detail's ``patient_issuers`` ({"patient_id", "issuer"}, issuer null when unknown),
    since one Patient ID may be two people of two sites."""
    study_list = sorted({s for s in studies if s})
    ids: set[str] = set()
    issued: set[tuple[str, str | None]] = set()
    for p in patients:
        if isinstance(p, tuple):
            if p[0]:
                ids.add(p[0])
                issued.add((p[0], p[1] or None))
        elif p:
            ids.add(p)
    patient_list = sorted(ids)
    fields: dict[str, Any] = {"studies": study_list, "patients": patient_list}
    if issued:
        fields["patient_issuers"] = patient_issuers(issued)
    return {
        "resource_type": "ImagingStudy",
        "resource_id": ",".join(study_list) or None,
        "patient_id": ",".join(patient_list) or None,
        "detail": {**fields, **detail},
    }


def patient_issuers(patients: Iterable[tuple[str, str | None]]) -> list[dict[str, str | None]]:
    """An audit detail's ``patient_issuers``: each (Patient ID, issuer or None) once, sorted."""
    return [
        {"patient_id": pid, "issuer": issuer}
        for pid, issuer in sorted(set(patients), key=lambda p: (p[0], p[1] or ""))
    ]
