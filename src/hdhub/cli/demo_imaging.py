"""The demo's images: synthetic CT and MR studies for some patients of one synthetic site,
stored as `hdhub ingest dicom` stores a PACS export (indexed for QIDO-RS, audited)."""

from __future__ import annotations

import time
from typing import Any

from hdhub.cli.context import CliState, console

DEMO_IMAGING_PATIENTS = 30
DEMO_IMAGING_SEED = 1


def demo_imaging(st: CliState, patients: int = DEMO_IMAGING_PATIENTS) -> None:
    """After the demo's FHIR loads: studies for ``patients`` patients of the first synthetic
    site (by name, the site whose patients have home devices), written under
    ``<home>/synth/dicom`` and stored through ``import_dicom``, the `hdhub ingest dicom` path.
    Does nothing when the archive already holds them (a second `hdhub demo`)."""
    from sqlalchemy import or_, select
    from sqlalchemy.orm import Session

    from hdhub.catalog.models import DicomStudy
    from hdhub.cli.ingest import import_dicom
    from hdhub.imaging.migration import journal_path
    from hdhub.synth.dicom import site_patients, write_studies

    hub: Any = st.hub
    synth = hub.settings.home / "synth"
    if not synth.is_dir():
        return
    sites = sorted(p for p in synth.iterdir() if p.is_dir() and any(p.glob("Patient.ndjson*")))
    chosen = site_patients(sites[0], patients) if sites else []
    if not chosen:
        return
    out = synth / "dicom"
    with Session(hub.catalog) as s:
        # A patient is (IPP, issuer): the images carry the site's IPP system as IssuerOfPatientID,
        # so another site's patient with the same number is not taken for one of these.
        ids = [p.patient_id for p in chosen]
        issuer = DicomStudy.issuer_of_patient_id
        same_site = [issuer.in_(sorted({p.issuer[:64] for p in chosen if p.issuer}))]
        if not all(p.issuer for p in chosen):
            same_site.append(issuer.is_(None))
        stored = s.scalar(
            select(DicomStudy.study_uid).where(DicomStudy.patient_id.in_(ids), or_(*same_site)).limit(1)
        )
    if stored and not journal_path(hub.settings.home, [out]).exists():
        return  # stored by an earlier run (an interrupted one left its journal: it resumes)
    started = time.perf_counter()
    made = write_studies(out, chosen, seed=DEMO_IMAGING_SEED)
    report = import_dicom(st, [out], demo=True)
    refused = sum(report.refused.values())
    example = chosen[0]
    console.print(
        f"imaging: {report.stored:,} synthetic CT and MR images stored ({made.studies} studies, "
        f"{made.series} series) for {made.patients} patients of {sites[0].name}"
        + (f", {refused} refused" if refused else "")
        + f" in {time.perf_counter() - started:.1f} s; e.g. IPP {example.patient_id} at /imaging",
        highlight=False,
        soft_wrap=True,
    )
