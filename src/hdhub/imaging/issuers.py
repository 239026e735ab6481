"""IssuerOfPatientID and FHIR identifier systems: who issued a Patient ID, both ways.

A site writes its own IssuerOfPatientID (0010,0021) into its images: its IPP system itself
(a URI), an OID, or a short code of its own ("CHUNORD"). In FHIR the same issuer is an
identifier ``system``: the URI, or ``urn:oid:<OID>``. A short code has no system of its own:
``imaging.issuer_systems`` in hdhub.toml names it (code -> system), so that a patient found
by the IPP in the identity store finds that site's studies, and that an object's
DocumentReference names the system.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ISSUER = re.compile(r"^[^\\\x00-\x1f\x7f]{1,64}\Z")  # DICOM LO: at most 64, no backslash or control
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+\Z")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")


def is_system(text: str) -> bool:
    """An absolute URI, as an identifier system must be."""
    return bool(_URI.match(text))


def system_of(issuer: str, systems: Mapping[str, str]) -> str | None:
    """The identifier system an IssuerOfPatientID stands for: named in ``systems``, an OID
    (``urn:oid:…``), a URI (itself); None for an unnamed code."""
    if issuer in systems:
        return systems[issuer]
    if _OID.match(issuer):
        return f"urn:oid:{issuer}"
    return issuer if is_system(issuer) else None


def issuer_names(system: str, systems: Mapping[str, str]) -> set[str | None]:
    """The IssuerOfPatientID values that stand for identifier system ``system`` (the system
    itself, its OID without ``urn:oid:``, the codes ``systems`` names for it), and None:
    studies stored without an issuer stay findable, shown as issuer unknown."""
    names: set[str | None] = {system[:64], None}
    if system.startswith("urn:oid:"):
        names.add(system.removeprefix("urn:oid:")[:64])
    names.update(code for code, named in systems.items() if named == system)
    return names


def patient_identifier(patient_id: str, issuer: str | None, systems: Mapping[str, str]) -> dict[str, Any]:
    """A FHIR Identifier for (Patient ID, IssuerOfPatientID): the issuer's system when it has
    one (see :func:`system_of`), else the issuer as the assigner's name; the value alone
    when the issuer is unknown."""
    identifier: dict[str, Any] = {"value": patient_id}
    if issuer is None:
        return identifier
    system = system_of(issuer, systems)
    if system is not None:
        identifier["system"] = system
    else:
        identifier["assigner"] = {"display": issuer}
    return identifier
