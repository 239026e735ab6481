"""Data-quality checks over the OMOP CDM, generated from the CDM specification.

The checks follow OHDSI's Data Quality Dashboard (DQD): the same check names, levels
(TABLE, FIELD, CONCEPT) and Kahn categories (Conformance, Completeness, Plausibility), a
threshold in percent of rows, and a check fails when more rows than that violate it.
Which column gets which check comes from the specification (required, primary and
foreign keys, FK domain and class: ``hdhub.warehouse._omop_cdm54``) and from the limits
in ``plausible``; nothing is listed per column by hand.

Every check is a filter: rows of ``source`` within ``scope`` form the denominator, those
of them matching ``violation`` are the violated rows. The same three parts give the
count query and a query listing the failing rows, which the report shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdhub.warehouse.dq.plausible import (
    EARLIEST_BIRTH,
    EARLIEST_DATE,
    FIELD_RANGES,
    MEASUREMENTS,
)
from hdhub.warehouse.schema import ALL_TABLES
from hdhub.warehouse.spec import CdmTable

# Clinical event tables and the date that places the event in time.
EVENT_DATE = {
    "visit_occurrence": "visit_start_date",
    "visit_detail": "visit_detail_start_date",
    "condition_occurrence": "condition_start_date",
    "drug_exposure": "drug_exposure_start_date",
    "procedure_occurrence": "procedure_date",
    "device_exposure": "device_exposure_start_date",
    "measurement": "measurement_date",
    "observation": "observation_date",
    "note": "note_date",
    "specimen": "specimen_date",
}
# Concept columns where 0 ("no matching concept") is a finding, with DQD's threshold (%).
UNMAPPED_THRESHOLD = 5.0
TEMPORAL_THRESHOLD = 1.0
# French law forbids recording ethnic origin (loi Informatique et Libertés, art. 6):
# race and ethnicity are 0 by design, not unmapped.
ZERO_BY_DESIGN = {("person", "race_concept_id"), ("person", "ethnicity_concept_id")}
VISIT_WINDOW_DAYS = 7
AFTER_DEATH_DAYS = 60


@dataclass(frozen=True)
class Check:
    name: str  # DQD check name: isRequired, isForeignKey, plausibleValueLow …
    level: str  # TABLE, FIELD or CONCEPT
    category: str  # Conformance, Completeness or Plausibility
    subcategory: str  # Relational, Value, Computational, Atemporal, Temporal or ""
    table: str
    description: str
    source: str  # FROM clause, the checked table aliased t
    violation: str
    scope: str = "TRUE"
    field: str | None = None
    concept_id: int | None = None
    unit_concept_id: int | None = None
    threshold: float = 0.0  # percent of the denominator allowed to violate
    needs: tuple[str, ...] = ()  # other tables that must hold rows for the check to apply

    @property
    def id(self) -> str:
        parts = [self.name, self.table, self.field, self.concept_id, self.unit_concept_id]
        return ".".join(str(p) for p in parts if p is not None)

    @property
    def count_sql(self) -> str:
        """One row: (violated rows, denominator rows)."""
        return (
            f"SELECT count(*) FILTER (WHERE {self.violation}) AS violated, count(*) AS denominator "
            f"FROM {self.source} WHERE {self.scope}"
        )

    @property
    def rows_sql(self) -> str:
        """The violating rows, for whoever fixes them."""
        return f"SELECT t.* FROM {self.source} WHERE ({self.scope}) AND ({self.violation})"


def _cdm_tables() -> list[CdmTable]:
    return [t for t in ALL_TABLES.values() if t.schema == "CDM"]


def _has(table: CdmTable, column: str) -> bool:
    return table.column(column) is not None


def _quote_list(values: str) -> str:
    return ", ".join("'" + v.strip().replace("'", "''") + "'" for v in values.split(","))


def _concept_check(name: str, subcategory: str, t: str, c: str, what: str, violation: str) -> Check:
    """A check on the concepts a column holds (0, "no matching concept", is left out)."""
    return Check(name, "FIELD", "Conformance", subcategory, t, f"{t}.{c} holds {what}",
                 f"{t} t JOIN concept c ON c.concept_id = t.{c}", violation, f"t.{c} <> 0",
                 field=c, needs=("concept",))  # fmt: skip


def _conformance(table: CdmTable) -> list[Check]:
    t = table.name
    checks = [
        Check(
            "cdmTable", "TABLE", "Conformance", "Relational", t,
            f"the table {t} exists",
            "(SELECT count(*) AS n FROM information_schema.tables "
            f"WHERE lower(table_name) = '{t}') t",
            "t.n = 0",
        )
    ]  # fmt: skip
    for col in table.columns:
        c = col.name
        if col.required:
            checks.append(
                Check("isRequired", "FIELD", "Conformance", "Relational", t,
                      f"{t}.{c} is required: no row may leave it empty",
                      f"{t} t", f"t.{c} IS NULL", field=c)
            )  # fmt: skip
        if col.primary_key:
            checks.append(
                Check("isPrimaryKey", "FIELD", "Conformance", "Relational", t,
                      f"{t}.{c} is the primary key: no value may repeat",
                      f"(SELECT *, count(*) OVER (PARTITION BY {c}) AS _copies FROM {t}) t",
                      "t._copies > 1", f"t.{c} IS NOT NULL", field=c)
            )  # fmt: skip
        if col.fk_table and col.fk_column:
            concept_fk = col.fk_table == "concept"
            checks.append(
                Check("isForeignKey", "FIELD", "Conformance", "Relational", t,
                      f"every {t}.{c} exists in {col.fk_table}.{col.fk_column}"
                      + (" (0, 'no matching concept', is allowed)" if concept_fk else ""),
                      f"{t} t LEFT JOIN (SELECT DISTINCT {col.fk_column} AS _key FROM {col.fk_table}) f "
                      f"ON f._key = t.{c}",
                      "f._key IS NULL",
                      f"t.{c} IS NOT NULL" + (f" AND t.{c} <> 0" if concept_fk else ""),
                      field=c, needs=(col.fk_table,))
            )  # fmt: skip
        if col.fk_domain:
            checks.append(
                _concept_check("fkDomain", "Value", t, c, f"concepts of the {col.fk_domain} domain",
                               f"c.domain_id NOT IN ({_quote_list(col.fk_domain)})")
            )  # fmt: skip
            checks.append(
                _concept_check("isStandardValidConcept", "Value", t, c, "standard, valid concepts",
                               "c.standard_concept IS DISTINCT FROM 'S' OR c.invalid_reason IS NOT NULL")
            )  # fmt: skip
            if col.required and (t, c) not in ZERO_BY_DESIGN:
                checks.append(
                    Check("standardConceptRecordCompleteness", "FIELD", "Completeness", "", t,
                          f"at most {UNMAPPED_THRESHOLD:g} % of {t}.{c} are 0 (no standard concept found)",
                          f"{t} t", f"t.{c} = 0", field=c, threshold=UNMAPPED_THRESHOLD)
                )  # fmt: skip
        if col.fk_class:
            checks.append(
                _concept_check("fkClass", "Computational", t, c, f"concepts of the {col.fk_class} class",
                               f"c.concept_class_id NOT IN ({_quote_list(col.fk_class)})")
            )  # fmt: skip
    return checks


def _value_ranges(table: CdmTable) -> list[Check]:
    t = table.name
    checks: list[Check] = []
    person_table = _has(table, "person_id")
    for col in table.columns:
        c = col.name
        low: object = None
        high: object = None
        if (t, c) in FIELD_RANGES:
            low, high = FIELD_RANGES[t, c]
            if (t, c) == ("person", "year_of_birth"):
                high = "extract(year FROM current_date)"
        elif person_table and col.kind in ("date", "datetime"):
            birth = c.startswith("birth_")
            low = f"DATE '{EARLIEST_BIRTH if birth else EARLIEST_DATE}'"
            if not c.endswith("end_date") and not c.endswith("end_datetime"):
                high = "current_date + 1"
        else:
            continue
        if low is not None:
            checks.append(
                Check("plausibleValueLow", "FIELD", "Plausibility", "Atemporal", t,
                      f"{t}.{c} is not below {low}", f"{t} t", f"t.{c} < {low}",
                      f"t.{c} IS NOT NULL", field=c, threshold=TEMPORAL_THRESHOLD)
            )  # fmt: skip
        if high is not None:
            checks.append(
                Check("plausibleValueHigh", "FIELD", "Plausibility", "Atemporal", t,
                      f"{t}.{c} is not above {high}", f"{t} t", f"t.{c} > {high}",
                      f"t.{c} IS NOT NULL", field=c, threshold=TEMPORAL_THRESHOLD)
            )  # fmt: skip
    return checks


def _start_end_pairs(table: CdmTable) -> list[tuple[str, str]]:
    pairs = []
    for col in table.columns:
        if col.kind != "date" or not col.name.endswith("_date") or col.name.endswith("end_date"):
            continue
        stem = col.name.removesuffix("_date").removesuffix("_start")
        if table.column(f"{stem}_end_date") is not None:
            pairs.append((col.name, f"{stem}_end_date"))
    return pairs


_BIRTH = (
    "coalesce(CAST(p.birth_datetime AS DATE), "
    "CASE WHEN p.year_of_birth BETWEEN 1 AND 9999 THEN make_date(p.year_of_birth, 1, 1) END)"
)


def _temporal(table: CdmTable) -> list[Check]:
    t = table.name
    checks: list[Check] = []
    for start, end in _start_end_pairs(table):
        checks.append(
            Check("plausibleStartBeforeEnd", "FIELD", "Plausibility", "Temporal", t,
                  f"{t}.{end} is not before {start}", f"{t} t", f"t.{end} < t.{start}",
                  f"t.{start} IS NOT NULL AND t.{end} IS NOT NULL", field=end,
                  threshold=TEMPORAL_THRESHOLD)
        )  # fmt: skip
    if not _has(table, "person_id") or t == "person":
        return checks
    for col in table.columns:
        if col.kind != "date":
            continue
        c = col.name
        checks.append(
            Check("plausibleAfterBirth", "FIELD", "Plausibility", "Temporal", t,
                  f"{t}.{c} is not before the person's birth",
                  f"{t} t JOIN person p ON p.person_id = t.person_id", f"t.{c} < {_BIRTH}",
                  f"t.{c} IS NOT NULL", field=c, threshold=TEMPORAL_THRESHOLD)
        )  # fmt: skip
        if t != "death":
            checks.append(
                Check("plausibleBeforeDeath", "FIELD", "Plausibility", "Temporal", t,
                      f"{t}.{c} is not more than {AFTER_DEATH_DAYS} days after the person's death",
                      f"{t} t JOIN (SELECT person_id, max(death_date) AS death_date FROM death "
                      "GROUP BY person_id) d ON d.person_id = t.person_id",
                      f"t.{c} > d.death_date + {AFTER_DEATH_DAYS}",
                      f"t.{c} IS NOT NULL", field=c, threshold=TEMPORAL_THRESHOLD, needs=("death",))
            )  # fmt: skip
    event_date = EVENT_DATE.get(t)
    if event_date is None:
        return checks
    checks.append(
        Check("withinObservationPeriod", "FIELD", "Plausibility", "Temporal", t,
              f"{t}.{event_date} falls within one of the person's observation periods",
              f"(SELECT *, EXISTS (SELECT 1 FROM observation_period op WHERE op.person_id = x.person_id "
              f"AND x.{event_date} BETWEEN op.observation_period_start_date "
              f"AND op.observation_period_end_date) AS _observed FROM {t} x) t",
              "NOT t._observed", f"t.{event_date} IS NOT NULL", field=event_date)
    )  # fmt: skip
    if _has(table, "visit_occurrence_id") and t != "visit_occurrence":
        checks.append(
            Check("withinVisitDates", "FIELD", "Conformance", "", t,
                  f"{t}.{event_date} is within {VISIT_WINDOW_DAYS} days of its visit",
                  f"{t} t JOIN visit_occurrence v ON v.visit_occurrence_id = t.visit_occurrence_id",
                  f"t.{event_date} < v.visit_start_date - {VISIT_WINDOW_DAYS} "
                  f"OR t.{event_date} > v.visit_end_date + {VISIT_WINDOW_DAYS}",
                  f"t.{event_date} IS NOT NULL", field=event_date, threshold=5.0)
        )  # fmt: skip
    return checks


def _person_completeness() -> list[Check]:
    return [
        Check("measurePersonCompleteness", "TABLE", "Completeness", "", "observation_period",
              "every person has an observation period",
              "person p LEFT JOIN (SELECT DISTINCT person_id FROM observation_period) t "
              "ON t.person_id = p.person_id",
              "t.person_id IS NULL")
    ]  # fmt: skip


def _measurements() -> list[Check]:
    checks: list[Check] = []
    t = "measurement"
    for m in MEASUREMENTS:
        units = ", ".join(str(u) for u in m.units)
        checks.append(
            Check("plausibleUnitConceptIds", "CONCEPT", "Plausibility", "Atemporal", t,
                  f"{m.name} (LOINC {m.loinc}) values carry a plausible unit ({units})",
                  f"{t} t", f"t.unit_concept_id IS NULL OR t.unit_concept_id NOT IN ({units})",
                  f"t.measurement_concept_id = {m.concept_id} AND t.value_as_number IS NOT NULL",
                  field="unit_concept_id", concept_id=m.concept_id, threshold=TEMPORAL_THRESHOLD)
        )  # fmt: skip
        for unit, (low, high) in m.units.items():
            scope = (
                f"t.measurement_concept_id = {m.concept_id} AND t.unit_concept_id = {unit} "
                "AND t.value_as_number IS NOT NULL"
            )
            for name, op, bound in (("plausibleValueLow", "<", low), ("plausibleValueHigh", ">", high)):
                checks.append(
                    Check(name, "CONCEPT", "Plausibility", "Atemporal", t,
                          f"{m.name} (LOINC {m.loinc}) is not {'below' if op == '<' else 'above'} {bound:g}",
                          f"{t} t", f"t.value_as_number {op} {bound}", scope,
                          field="value_as_number", concept_id=m.concept_id, unit_concept_id=unit,
                          threshold=TEMPORAL_THRESHOLD)
                )  # fmt: skip
    return checks


def all_checks() -> list[Check]:
    """Every check, in a stable order (table by table as the CDM lists them)."""
    checks: list[Check] = []
    for table in _cdm_tables():
        checks += _conformance(table)
        checks += _value_ranges(table)
        checks += _temporal(table)
    checks += _person_completeness()
    checks += _measurements()
    return checks
