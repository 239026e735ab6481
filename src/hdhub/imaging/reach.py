"""The audit fields of an imaging operation: every study and patient it reached."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def reached(studies: Iterable[str | None], patients: Iterable[str | None], **detail: Any) -> dict[str, Any]:
    """Audit-event fields naming the studies and Patient IDs reached: all of them in the
    detail; the indexed ``resource_id`` and ``patient_id`` hold as many as fit (the audit
    log cuts them to their limits)."""
    study_list = sorted({s for s in studies if s})
    patient_list = sorted({p for p in patients if p})
    return {
        "resource_type": "ImagingStudy",
        "resource_id": ",".join(study_list) or None,
        "patient_id": ",".join(patient_list) or None,
        "detail": {"studies": study_list, "patients": patient_list, **detail},
    }
