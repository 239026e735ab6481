"""How each FHIR resource type becomes OMOP rows (after the HL7 FHIR-to-OMOP IG).

Every resource is parsed once, into the typed top-level fields of ``FIELDS`` (DuckDB's
``read_json``, or ``json_transform`` for Bundles and damaged files), and projected into
one narrow *staged* row (``STAGED``): references, code, dates, value. A clinical
resource becomes one *coded event*: its code is looked up in the loaded vocabulary
(source concept, then "Maps to" for the standard concept) and the standard concept's
domain chooses the OMOP table; a code that maps to nothing gets concept 0 and goes to
the resource type's default table. Allergies and notes always go to their own table.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from hdhub.ingest.sql import sql_literal

# FHIR code system URI -> OMOP vocabulary_id
SYSTEMS: dict[str, str] = {
    "http://snomed.info/sct": "SNOMED",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://hl7.org/fhir/sid/icd-10": "ICD10",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM",
    "http://hl7.org/fhir/sid/ndc": "NDC",
    "http://www.whocc.no/atc": "ATC",
    "http://unitsofmeasure.org": "UCUM",
    "http://www.ama-assn.org/go/cpt": "CPT4",
    "https://smt.esante.gouv.fr/terminologie-cim-10/": "ICD10",
    "https://smt.esante.gouv.fr/terminologie-ccam/": "CCAM",
    "http://dicom.nema.org/resources/ontology/DCM": "DICOM",
}

# Standard concept domain -> OMOP table
DOMAIN_TABLE: dict[str, str] = {
    "Condition": "condition_occurrence",
    "Procedure": "procedure_occurrence",
    "Drug": "drug_exposure",
    "Measurement": "measurement",
    "Observation": "observation",
    "Device": "device_exposure",
}

# Encounter.class (v3 ActCode) -> visit_concept_id
VISIT_CLASS: dict[str, int] = {
    "AMB": 9202,
    "OUTP": 9202,
    "IMP": 9201,
    "ACUTE": 9201,
    "NONAC": 9201,
    "SS": 9202,
    "EMER": 9203,
    "HH": 581476,
    "VR": 5083,
    "FLD": 581476,
    "PRENC": 9202,
}

EHR = 32817  # Type Concept "EHR"
EHR_PRESCRIPTION = 32838
EHR_ADMINISTRATION = 32818
PATIENT_SELF_REPORT = 32865
UTF8 = 32678

_V = "VARCHAR"
_CC = "STRUCT(coding STRUCT(system VARCHAR, code VARCHAR)[], text VARCHAR)"
_REF = "STRUCT(reference VARCHAR)"
_PERIOD = 'STRUCT("start" VARCHAR, "end" VARCHAR)'
_QTY = "STRUCT(value DOUBLE, unit VARCHAR, system VARCHAR, code VARCHAR)"

# The top-level fields read from every resource, with their types. A field whose shape
# differs between resource types (context, type, category) is read as JSON.
FIELDS: dict[str, str] = {
    "resourceType": _V,
    "id": _V,
    "subject": _REF,
    "patient": _REF,
    "encounter": _REF,
    "context": "JSON",
    "code": _CC,
    "medicationCodeableConcept": _CC,
    "medicationReference": _REF,
    "vaccineCode": _CC,
    "valueCodeableConcept": _CC,
    "type": "JSON",
    "category": "JSON",
    "class": "STRUCT(system VARCHAR, code VARCHAR)",
    "period": _PERIOD,
    "onsetDateTime": _V,
    "onsetPeriod": _PERIOD,
    "recordedDate": _V,
    "abatementDateTime": _V,
    "performedDateTime": _V,
    "performedPeriod": _PERIOD,
    "authoredOn": _V,
    "effectiveDateTime": _V,
    "effectivePeriod": _PERIOD,
    "dateAsserted": _V,
    "occurrenceDateTime": _V,
    "issued": _V,
    "date": _V,
    "description": _V,
    "valueQuantity": _QTY,
    "valueString": _V,
    "valueInteger": "BIGINT",
    "valueBoolean": "BOOLEAN",
    "valueDateTime": _V,
    "referenceRange": "STRUCT(low STRUCT(value DOUBLE), high STRUCT(value DOUBLE))[]",
    "component": f"STRUCT(code {_CC}, valueQuantity {_QTY}, valueCodeableConcept {_CC}, valueString VARCHAR)[]",
    "content": "STRUCT(attachment STRUCT(contentType VARCHAR, data VARCHAR, title VARCHAR))[]",
    "gender": _V,
    "birthDate": _V,
    "deceasedDateTime": _V,
    "identifier": "STRUCT(system VARCHAR, value VARCHAR)[]",
    "name": "JSON",
    "address": "JSON",
    "telecom": "JSON",
    # Device, DiagnosticReport, ImagingStudy
    "manufactureDate": _V,
    "udiCarrier": "STRUCT(deviceIdentifier VARCHAR)[]",
    "presentedForm": "STRUCT(contentType VARCHAR, data VARCHAR, title VARCHAR)[]",
    "procedureCode": f"{_CC}[]",
    "started": _V,
    "series": "STRUCT(uid VARCHAR, modality STRUCT(system VARCHAR, code VARCHAR), "
    "bodySite STRUCT(system VARCHAR, code VARCHAR))[]",
    # Who and where: Encounter.serviceProvider -> care_site, participant -> provider.
    "serviceProvider": _REF,
    "participant": "STRUCT(individual STRUCT(reference VARCHAR))[]",
    "position": "STRUCT(latitude DOUBLE, longitude DOUBLE)",
}


@dataclass(frozen=True)
class EventSpec:
    """One FHIR resource type as coded events; expressions over the fields of ``FIELDS``."""

    resource: str
    patient: str
    encounter: str
    coding: str  # a CodeableConcept field (typed), or JSON path prefix when ``coding_json``
    start: str
    end: str
    default_table: str  # SQL expression giving the table for unmapped codes
    type_concept: int
    forced_table: str = "NULL"  # SQL: the table whatever the concept's domain (NULL: by domain)
    value_num: str = "NULL"
    unit_code: str = "NULL"
    value_coding: str = "NULL"
    value_string: str = "NULL"
    range_low: str = "NULL"
    range_high: str = "NULL"
    note_text: str = "NULL"
    note_title: str = "NULL"
    code_is_value: bool = False  # the code is the observation's value (an allergen), not its concept
    coding_json: bool = False

    @property
    def system_expr(self) -> str:
        if self.coding_json:
            return f"{self.coding}->>'$.coding[0].system'"
        return f"{self.coding}.coding[1].system"

    @property
    def alt_codes_expr(self) -> str:
        """The codings after the first, as (sys, code): used when the first maps to nothing."""
        if self.coding_json:
            return "NULL"
        return (
            f"CASE WHEN len({self.coding}.coding) > 1 THEN "
            f"list_transform({self.coding}.coding[2:], x -> {{sys: x.system, code: x.code}}) END"
        )

    @property
    def code_expr(self) -> str:
        if self.coding_json:
            return f"{self.coding}->>'$.coding[0].code'"
        return f"{self.coding}.coding[1].code"


# Laboratory and vital-sign observations are measurements; the rest observations.
# (category is JSON text: a code in quotes is the code, whatever the nesting)
OBSERVATION_TABLE = (
    "CASE WHEN contains(category, '\"laboratory\"') OR contains(category, '\"vital-signs\"') "
    "THEN 'measurement' ELSE 'observation' END"
)
NOTE_TITLE = (
    "coalesce(content[1].attachment.title, description, type->>'$.text', type->>'$.coding[0].display')"
)
EVENTS: list[EventSpec] = [
    EventSpec(
        "Condition",
        "subject.reference",
        "encounter.reference",
        "code",
        "coalesce(onsetDateTime, onsetPeriod.start, recordedDate)",
        'coalesce(abatementDateTime, onsetPeriod."end")',
        "'condition_occurrence'",
        EHR,
    ),
    EventSpec(
        "Procedure",
        "subject.reference",
        "encounter.reference",
        "code",
        "coalesce(performedDateTime, performedPeriod.start)",
        'performedPeriod."end"',
        "'procedure_occurrence'",
        EHR,
    ),
    EventSpec(
        "MedicationRequest",
        "subject.reference",
        "encounter.reference",
        "medicationCodeableConcept",
        "authoredOn",
        "NULL",
        "'drug_exposure'",
        EHR_PRESCRIPTION,
    ),
    EventSpec(
        "MedicationAdministration",
        "subject.reference",
        "context->>'$.reference'",
        "medicationCodeableConcept",
        "coalesce(effectiveDateTime, effectivePeriod.start)",
        'effectivePeriod."end"',
        "'drug_exposure'",
        EHR_ADMINISTRATION,
    ),
    EventSpec(
        "MedicationStatement",
        "subject.reference",
        "context->>'$.reference'",
        "medicationCodeableConcept",
        "coalesce(effectiveDateTime, effectivePeriod.start, dateAsserted)",
        'effectivePeriod."end"',
        "'drug_exposure'",
        PATIENT_SELF_REPORT,
    ),
    EventSpec(
        "Immunization",
        "patient.reference",
        "encounter.reference",
        "vaccineCode",
        "occurrenceDateTime",
        "NULL",
        "'drug_exposure'",
        EHR,
    ),
    EventSpec(
        "Observation",
        "subject.reference",
        "encounter.reference",
        "code",
        "coalesce(effectiveDateTime, effectivePeriod.start, issued)",
        'effectivePeriod."end"',
        OBSERVATION_TABLE,
        EHR,
        value_num="coalesce(valueQuantity.value, valueInteger)",
        unit_code="coalesce(valueQuantity.code, valueQuantity.unit)",
        value_coding="valueCodeableConcept",
        value_string="coalesce(valueString, valueBoolean::VARCHAR, valueDateTime)",
        range_low="referenceRange[1].low.value",
        range_high="referenceRange[1].high.value",
    ),
    EventSpec(
        "AllergyIntolerance",
        "patient.reference",
        "encounter.reference",
        "code",
        "coalesce(onsetDateTime, recordedDate)",
        "NULL",
        "'observation'",
        EHR,
        forced_table="'observation'",
        code_is_value=True,
    ),
    EventSpec(
        "DocumentReference",
        "subject.reference",
        "context->>'$.encounter[0].reference'",
        "type",
        "coalesce(date, context->>'$.period.start')",
        "NULL",
        "'note'",
        EHR,
        forced_table="'note'",
        note_text="TRY(decode(from_base64(content[1].attachment.data)))",
        note_title=NOTE_TITLE,
        coding_json=True,
    ),
    # A device used by the patient (Synthea: manufactureDate is when its use begins).
    EventSpec(
        "Device",
        "patient.reference",
        "NULL",
        "type",
        "manufactureDate",
        "NULL",
        "'device_exposure'",
        EHR,
        value_string="udiCarrier[1].deviceIdentifier",
        coding_json=True,
    ),
    # A report with text (presentedForm) is a note, like a DocumentReference; a report
    # without (a laboratory panel) is a coded event placed by its concept's domain.
    EventSpec(
        "DiagnosticReport",
        "subject.reference",
        "encounter.reference",
        "code",
        "coalesce(effectiveDateTime, effectivePeriod.start, issued)",
        'effectivePeriod."end"',
        "'measurement'",
        EHR,
        forced_table="CASE WHEN presentedForm[1].data IS NOT NULL THEN 'note' END",
        note_text="TRY(decode(from_base64(presentedForm[1].data)))",
        note_title="coalesce(presentedForm[1].title, code.text)",
    ),
    # The imaging procedure of a study (image_occurrence comes with the imaging archive).
    EventSpec(
        "ImagingStudy",
        "subject.reference",
        "encounter.reference",
        "procedureCode[1]",
        "started",
        "NULL",
        "'procedure_occurrence'",
        EHR,
    ),
]
# Each component of an Observation (the systolic and diastolic values of a blood pressure
# panel) is a row of its own, staged from its staged parent (``component_rows``).
COMPONENT = "Observation.component"
COMPONENT_SPEC = EventSpec(COMPONENT, "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", EHR)
EVENT_TYPES = {e.resource: e for e in [*EVENTS, COMPONENT_SPEC]}

# Recognised types not mapped to OMOP yet: counted, not rejected.
NOT_MAPPED_YET = frozenset(
    {
        "PractitionerRole",
        "Provenance",
        "CarePlan",
        "CareTeam",
        "Goal",
        "Claim",
        "ExplanationOfBenefit",
        "SupplyDelivery",
    }
)
# Who and where care happens: Organization -> care_site (+ location of its address),
# Location -> location, Practitioner -> provider.
ENTITY_TYPES = ("Organization", "Location", "Practitioner")
# A Medication is the code of the MedicationRequest, -Administration or -Statement that
# names it in medicationReference (within the same load).
MEDICATION_USERS = ("MedicationRequest", "MedicationAdministration", "MedicationStatement")
MAPPED = frozenset({"Patient", "Encounter", "Medication", *ENTITY_TYPES, *EVENT_TYPES})


def _ref_id(expr: str) -> str:
    """The id part of a reference: Patient/123, urn:uuid:123, or a full URL (a FHIR id has
    neither '/' nor ':')."""
    return f"nullif(split_part(split_part({expr}, '/', -1), ':', -1), '')"


def _ref_token(expr: str) -> str:
    """What a reference names: the id of ``Organization/123``, or the identifier value of a
    conditional reference ``Organization?identifier=system|value`` (as Synthea writes)."""
    return f"CASE WHEN contains({expr}, '|') THEN nullif(split_part({expr}, '|', -1), '') ELSE {_ref_id(expr)} END"


def _by_type(pick: dict[str, str], default: str = "NULL") -> str:
    """One CASE over resourceType, grouping the types that share an expression."""
    groups: dict[str, list[str]] = {}
    for rtype, expr in pick.items():
        if expr != "NULL":
            groups.setdefault(expr, []).append(rtype)
    if not groups:
        return default
    whens = " ".join(
        f"WHEN resourceType IN ({', '.join(repr(t) for t in types)}) THEN {expr}"
        for expr, types in groups.items()
    )
    return f"CASE {whens} ELSE {default} END"


def _events(attr: str) -> dict[str, str]:
    return {e.resource: str(getattr(e, attr)) for e in EVENTS}


_MERGE_ID = "list_filter(identifier, i -> list_contains($merge_systems, i.system) AND i.value IS NOT NULL)[1]"

# The staged row of every resource: column -> (type, expression over FIELDS, or the
# expression for each resource type that has one). Per-type expressions become one CASE
# over resourceType; a file of one type gets that type's expressions only.
Staged = tuple[str, str | dict[str, str]]
STAGED: dict[str, Staged] = {
    "rtype": (_V, "resourceType"),
    "fid": (_V, "id"),
    # The row's keyed source hash (macro rkey), and the ids its references point to.
    "source_key": ("UHUGEINT", "$source_key"),
    "patient_ref": (_V, _events("patient") | {"Encounter": "subject.reference"}),
    "enc_ref": (_V, _events("encounter")),
    "sys": (_V, {e.resource: e.system_expr for e in EVENTS} | {"Medication": "code.coding[1].system"}),
    "code": (_V, {e.resource: e.code_expr for e in EVENTS} | {"Medication": "code.coding[1].code"}),
    "med_ref": (_V, {t: _ref_id("medicationReference.reference") for t in MEDICATION_USERS}),
    "alt_codes": ("STRUCT(sys VARCHAR, code VARCHAR)[]", {e.resource: e.alt_codes_expr for e in EVENTS}),
    "start_raw": (_V, _events("start") | {"Encounter": "period.start", "Patient": "birthDate"}),
    "end_raw": (_V, _events("end") | {"Encounter": 'period."end"', "Patient": "deceasedDateTime"}),
    "start_ts": ("TIMESTAMP", "fhir_ts(start_raw)"),
    "end_ts": ("TIMESTAMP", "fhir_ts(end_raw)"),
    "default_table": (_V, _events("default_table")),
    "forced_table": (_V, _events("forced_table")),
    "value_num": ("DOUBLE", _events("value_num")),
    "unit_code": (_V, _events("unit_code")),
    "value_sys": (
        _V,
        {e.resource: f"{e.value_coding}.coding[1].system" for e in EVENTS if e.value_coding != "NULL"},
    ),
    "value_code": (
        _V,
        {e.resource: f"{e.value_coding}.coding[1].code" for e in EVENTS if e.value_coding != "NULL"},
    ),
    "value_string": (_V, _events("value_string")),
    "range_low": ("DOUBLE", _events("range_low")),
    "range_high": ("DOUBLE", _events("range_high")),
    "note_text": (_V, _events("note_text")),
    "note_title": (_V, _events("note_title")),
    "class_code": (_V, {"Encounter": "class.code"}),
    # ImagingStudy: its DICOM Study Instance UID and series -> image_occurrence.
    "study_uid": (
        _V,
        {
            "ImagingStudy": "replace(list_filter(identifier, i -> i.system = 'urn:dicom:uid')[1].value, 'urn:oid:', '')"
        },
    ),
    "series": (
        "STRUCT(uid VARCHAR, modality_sys VARCHAR, modality VARCHAR, site_sys VARCHAR, site VARCHAR)[]",
        {
            "ImagingStudy": "CASE WHEN len(series) > 0 THEN list_transform(series, x -> {uid: x.uid, "
            "modality_sys: x.modality.system, modality: x.modality.code, site_sys: x.bodySite.system, "
            "site: x.bodySite.code}) END"
        },
    ),
    "components": (
        "STRUCT(sys VARCHAR, code VARCHAR, value_num DOUBLE, unit_code VARCHAR, value_sys VARCHAR, "
        "value_code VARCHAR, value_string VARCHAR)[]",
        {
            "Observation": "CASE WHEN len(component) > 0 THEN list_transform(component, x -> {sys: "
            "x.code.coding[1].system, code: x.code.coding[1].code, value_num: x.valueQuantity.value, "
            "unit_code: coalesce(x.valueQuantity.code, x.valueQuantity.unit), value_sys: "
            "x.valueCodeableConcept.coding[1].system, value_code: x.valueCodeableConcept.coding[1].code, "
            "value_string: x.valueString}) END"
        },
    ),
    "gender": (_V, {"Patient": "gender", "Practitioner": "gender"}),
    "org_ref": (_V, {"Encounter": _ref_token("serviceProvider.reference")}),
    "prov_ref": (_V, {"Encounter": _ref_token("participant[1].individual.reference")}),
    # Organization, Location, Practitioner: what their OMOP rows need (no person's data).
    "entity": (
        "JSON",
        {
            t: "to_json({name: name, address: address, position: position, identifier: identifier})"
            for t in ENTITY_TYPES
        },
    ),
    "mid_system": (_V, {"Patient": f"{_MERGE_ID}.system"}),
    "mid_value": (_V, {"Patient": f"{_MERGE_ID}.value"}),
    # Directly identifying data, for the encrypted identity store only (never the warehouse).
    "identity": (
        "JSON",
        {"Patient": "to_json({name: name, address: address, telecom: telecom, identifier: identifier})"},
    ),
}
_REFS = ("patient_ref", "enc_ref")  # ids of references: nullif(split_part(…)) around the pick


def _column_sql(col: str, types: frozenset[str] | None) -> str:
    expr = STAGED[col][1]
    if isinstance(expr, str):
        return expr
    pick = expr if types is None else {t: e for t, e in expr.items() if t in types}
    picked = _by_type(pick)
    return _ref_id(picked) if col in _REFS else picked


def fields_for(types: frozenset[str] | None) -> list[str]:
    """The fields of ``FIELDS`` that staging ``types`` reads (all fields for None)."""
    if types is None:
        return list(FIELDS)
    text = " ".join(_column_sql(col, types) for col in STAGED)
    return [f for f in FIELDS if f in ("resourceType", "id") or re.search(rf"\b{f}\b", text)]


def component_rows(site: str) -> str:
    """SELECT of one staged row per Observation component (from the staged parents): the
    parent's patient, encounter and dates, the component's code and value."""
    own = {"sys", "code", "value_num", "unit_code", "value_sys", "value_code", "value_string"}
    inherited = {"patient_ref", "enc_ref", "start_raw", "end_raw", "start_ts", "end_ts", "default_table"}
    columns = []
    for col, (typ, _) in STAGED.items():
        if col == "rtype":
            columns.append(sql_literal(COMPONENT))
        elif col == "fid":
            columns.append("fid || '#' || n")
        elif col == "source_key":
            columns.append(row_key_sql(sql_literal(COMPONENT), site, "fid || '#' || n"))
        elif col in own:
            columns.append(f"comp.{col}")
        elif col in inherited:
            columns.append(col)
        else:
            columns.append(f"NULL::{typ}")
    return (
        f"SELECT file_no, line, {', '.join(columns)} FROM (SELECT *, unnest(components) AS comp, "
        f"unnest(range(1, len(components) + 1)) AS n FROM {{stage}} WHERE components IS NOT NULL)"
    )


def row_key_sql(rtype_sql: str, site: str, id_sql: str) -> str:
    """The keyed hash of a source resource (macro rkey): the one idempotency key of a row."""
    return f"rkey({rtype_sql} || {sql_literal('|' + site + '|')} || {id_sql})"


@functools.lru_cache(maxsize=64)
def staged_select(merge_systems: tuple[str, ...], site: str, types: frozenset[str] | None = None) -> str:
    """The SELECT list staging one resource (needs the macros rkey and fhir_ts); with
    ``types``, only those resource types' expressions (rows of other types get NULLs)."""
    systems = "[" + ", ".join(sql_literal(s) for s in merge_systems) + "]::VARCHAR[]"
    columns = {
        col: _column_sql(col, types)
        .replace("$merge_systems", systems)
        .replace("$source_key", row_key_sql("resourceType", site, "id"))
        for col in STAGED
    }
    # start_ts and end_ts are computed from start_raw and end_raw: inline them.
    for col in ("start_ts", "end_ts"):
        raw = columns[col.replace("_ts", "_raw")]
        columns[col] = columns[col].replace(col.replace("_ts", "_raw"), f"({raw})")
    return ", ".join(f"({expr})::{STAGED[col][0]} AS {col}" for col, expr in columns.items())


def read_json_columns(types: frozenset[str] | None = None) -> str:
    """The ``columns`` argument of DuckDB's read_json (the fields ``types`` need)."""
    return "{" + ", ".join(f"'{k}': '{FIELDS[k]}'" for k in fields_for(types)) + "}"


def transform_structure() -> str:
    """The structure argument of json_transform (same fields, same types)."""
    return (
        "{" + ", ".join(f'"{k}": "{v.replace(chr(34), chr(92) + chr(34))}"' for k, v in FIELDS.items()) + "}"
    )
