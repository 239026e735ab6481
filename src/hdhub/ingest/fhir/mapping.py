"""How each FHIR resource type becomes OMOP rows (after the HL7 FHIR-to-OMOP IG).

Every clinical resource becomes one *coded event* — person, visit, code, dates, value —
through a typed projection (``json_transform``, one parse per resource). The event's
code is looked up in the loaded vocabulary (source concept, then "Maps to" for the
standard concept) and the standard concept's domain chooses the OMOP table; a code
that maps to nothing gets concept 0 and goes to the resource type's default table.
Allergies and notes always go to their own table.
"""

from __future__ import annotations

from dataclasses import dataclass

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

_CODING = '{"coding": [{"system": "VARCHAR", "code": "VARCHAR", "display": "VARCHAR"}], "text": "VARCHAR"}'
_REF = '{"reference": "VARCHAR"}'
_PERIOD = '{"start": "VARCHAR", "end": "VARCHAR"}'


@dataclass(frozen=True)
class EventSpec:
    """One FHIR resource type as coded events. Expressions use ``r``, the typed resource."""

    resource: str
    struct: str
    patient: str
    encounter: str
    coding: str  # expression of a CodeableConcept struct
    start: str
    end: str
    default_table: str  # SQL expression giving the table for unmapped codes
    type_concept: int
    forced_table: str | None = None
    value_num: str = "NULL"
    unit_code: str = "NULL"
    value_coding: str = "NULL"
    value_string: str = "NULL"
    range_low: str = "NULL"
    range_high: str = "NULL"
    note_text: str = "NULL"
    note_title: str = "NULL"
    code_is_value: bool = False  # the code is the observation's value (an allergen), not its concept


def _s(**fields: str) -> str:
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


V = '"VARCHAR"'
# Laboratory and vital-sign observations are measurements; the rest observations.
OBSERVATION_TABLE = (
    "CASE WHEN list_has_any(flatten(list_transform(r.category, c -> list_transform(c.coding, x -> x.code))), "
    "['laboratory', 'vital-signs']) THEN 'measurement' ELSE 'observation' END"
)
NOTE_TITLE = "coalesce(r.content[1].attachment.title, r.description, r.type.text, r.type.coding[1].display)"
EVENTS: list[EventSpec] = [
    EventSpec(
        "Condition",
        _s(
            id=V,
            subject=_REF,
            encounter=_REF,
            code=_CODING,
            onsetDateTime=V,
            onsetPeriod=_PERIOD,
            recordedDate=V,
            abatementDateTime=V,
        ),
        "r.subject.reference",
        "r.encounter.reference",
        "r.code",
        "coalesce(r.onsetDateTime, r.onsetPeriod.start, r.recordedDate)",
        'coalesce(r.abatementDateTime, r.onsetPeriod."end")',
        "'condition_occurrence'",
        EHR,
    ),
    EventSpec(
        "Procedure",
        _s(id=V, subject=_REF, encounter=_REF, code=_CODING, performedDateTime=V, performedPeriod=_PERIOD),
        "r.subject.reference",
        "r.encounter.reference",
        "r.code",
        "coalesce(r.performedDateTime, r.performedPeriod.start)",
        'r.performedPeriod."end"',
        "'procedure_occurrence'",
        EHR,
    ),
    EventSpec(
        "MedicationRequest",
        _s(id=V, subject=_REF, encounter=_REF, medicationCodeableConcept=_CODING, authoredOn=V),
        "r.subject.reference",
        "r.encounter.reference",
        "r.medicationCodeableConcept",
        "r.authoredOn",
        "NULL",
        "'drug_exposure'",
        EHR_PRESCRIPTION,
    ),
    EventSpec(
        "MedicationAdministration",
        _s(
            id=V,
            subject=_REF,
            context=_REF,
            medicationCodeableConcept=_CODING,
            effectiveDateTime=V,
            effectivePeriod=_PERIOD,
        ),
        "r.subject.reference",
        "r.context.reference",
        "r.medicationCodeableConcept",
        "coalesce(r.effectiveDateTime, r.effectivePeriod.start)",
        'r.effectivePeriod."end"',
        "'drug_exposure'",
        EHR_ADMINISTRATION,
    ),
    EventSpec(
        "MedicationStatement",
        _s(
            id=V,
            subject=_REF,
            context=_REF,
            medicationCodeableConcept=_CODING,
            effectiveDateTime=V,
            effectivePeriod=_PERIOD,
            dateAsserted=V,
        ),
        "r.subject.reference",
        "r.context.reference",
        "r.medicationCodeableConcept",
        "coalesce(r.effectiveDateTime, r.effectivePeriod.start, r.dateAsserted)",
        'r.effectivePeriod."end"',
        "'drug_exposure'",
        PATIENT_SELF_REPORT,
    ),
    EventSpec(
        "Immunization",
        _s(id=V, patient=_REF, encounter=_REF, vaccineCode=_CODING, occurrenceDateTime=V),
        "r.patient.reference",
        "r.encounter.reference",
        "r.vaccineCode",
        "r.occurrenceDateTime",
        "NULL",
        "'drug_exposure'",
        EHR,
    ),
    EventSpec(
        "Observation",
        _s(
            id=V,
            subject=_REF,
            encounter=_REF,
            code=_CODING,
            effectiveDateTime=V,
            effectivePeriod=_PERIOD,
            issued=V,
            category=f"[{_CODING}]",
            valueQuantity='{"value": "DOUBLE", "unit": "VARCHAR", "system": "VARCHAR", "code": "VARCHAR"}',
            valueCodeableConcept=_CODING,
            valueString=V,
            referenceRange='[{"low": {"value": "DOUBLE"}, "high": {"value": "DOUBLE"}}]',
        ),
        "r.subject.reference",
        "r.encounter.reference",
        "r.code",
        "coalesce(r.effectiveDateTime, r.effectivePeriod.start, r.issued)",
        'r.effectivePeriod."end"',
        OBSERVATION_TABLE,
        EHR,
        value_num="r.valueQuantity.value",
        unit_code="coalesce(r.valueQuantity.code, r.valueQuantity.unit)",
        value_coding="r.valueCodeableConcept",
        value_string="r.valueString",
        range_low="r.referenceRange[1].low.value",
        range_high="r.referenceRange[1].high.value",
    ),
    EventSpec(
        "AllergyIntolerance",
        _s(id=V, patient=_REF, encounter=_REF, code=_CODING, recordedDate=V, onsetDateTime=V),
        "r.patient.reference",
        "r.encounter.reference",
        "r.code",
        "coalesce(r.onsetDateTime, r.recordedDate)",
        "NULL",
        "'observation'",
        EHR,
        forced_table="observation",
        code_is_value=True,
    ),
    EventSpec(
        "DocumentReference",
        _s(
            id=V,
            subject=_REF,
            type=_CODING,
            date=V,
            context='{"encounter": [{"reference": "VARCHAR"}], "period": {"start": "VARCHAR"}}',
            content='[{"attachment": {"contentType": "VARCHAR", "data": "VARCHAR", "title": "VARCHAR"}}]',
            description=V,
        ),
        "r.subject.reference",
        "r.context.encounter[1].reference",
        "r.type",
        "coalesce(r.date, r.context.period.start)",
        "NULL",
        "'note'",
        EHR,
        forced_table="note",
        note_text="TRY(decode(from_base64(r.content[1].attachment.data)))",
        note_title=NOTE_TITLE,
    ),
]

PATIENT_STRUCT = _s(
    id=V,
    gender=V,
    birthDate=V,
    deceasedDateTime=V,
    deceasedBoolean='"BOOLEAN"',
    identifier='[{"system": "VARCHAR", "value": "VARCHAR"}]',
)
ENCOUNTER_STRUCT = _s(
    id=V,
    subject=_REF,
    period=_PERIOD,
    type=f"[{_CODING}]",
    **{"class": '{"system": "VARCHAR", "code": "VARCHAR"}'},
)

# Recognised types not mapped to OMOP yet: counted, not rejected.
NOT_MAPPED_YET = frozenset(
    {
        "Organization",
        "Location",
        "Practitioner",
        "PractitionerRole",
        "Device",
        "DiagnosticReport",
        "ImagingStudy",
        "Provenance",
        "Medication",
        "CarePlan",
        "CareTeam",
        "Goal",
        "Claim",
        "ExplanationOfBenefit",
        "SupplyDelivery",
    }
)
MAPPED = frozenset({"Patient", "Encounter", *(e.resource for e in EVENTS)})
