"""``hdhub ingest fhir``: FHIR R4 files from one site into the OMOP warehouse.

A load is one DuckDB transaction: it commits whole or not at all, so a load killed at
any point leaves the warehouse as it was, and running it again completes it. Re-loading
the same files changes nothing: files already loaded for the site are skipped, and every
row remembers the keyed hash of the resource it came from (``_hdhub_fhir_rows``), so a
resource seen again is not inserted twice.

Clear identifiers never enter the warehouse: patients are known by keyed hashes of
(site, id) and of their merge identifier (for France, the INS), and
``person_source_value`` is such a hash.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from hdhub.errors import ValidationError
from hdhub.ingest.fhir import mapping as m
from hdhub.ingest.fhir.sources import STAGE, StagingIssues, create_staging, discover, locate_lines, stage_file
from hdhub.ingest.sql import sql_literal
from hdhub.privacy.identity_store import IdentityRecord, IdentityStore

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"  # French national health identifier (INS-NIR)
SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}\Z")
EVENT_TABLES = (
    "condition_occurrence",
    "procedure_occurrence",
    "drug_exposure",
    "measurement",
    "observation",
    "device_exposure",
    "note",
)
ENTITY_TABLES = ("care_site", "location", "provider")
IMAGE_SERIES = "ImagingStudy.series"
ID_COLUMN = {t: f"{t}_id" for t in (*EVENT_TABLES, *ENTITY_TABLES, "visit_occurrence")}
MEMORY_LIMIT = "1GB"  # DuckDB's working memory during a load
SLICE = 1_000_000  # staged rows mapped at a time: memory stays flat however large the load

BOOKKEEPING = [
    "CREATE TABLE IF NOT EXISTS _hdhub_patients (patient_key VARCHAR PRIMARY KEY, person_id INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _hdhub_identities (identity_key VARCHAR PRIMARY KEY, person_id INTEGER NOT NULL)",
    # No index: a source key is inserted only after an anti-join against this table and a
    # de-duplication within the load, in one single-writer transaction; an ART index on
    # hundreds of millions of keys would cost more than it protects.
    "CREATE TABLE IF NOT EXISTS _hdhub_source_rows (source_key UHUGEINT NOT NULL, omop_table VARCHAR NOT NULL,"
    " row_id BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _hdhub_loaded_files (site VARCHAR, sha256 VARCHAR, name VARCHAR, load_id VARCHAR,"
    " loaded_at TIMESTAMP, PRIMARY KEY (site, sha256))",
]

# Columns of each event table, from the event staging table `_ev`.
TARGET_COLUMNS: dict[str, dict[str, str]] = {
    "condition_occurrence": {
        "condition_concept_id": "concept_id",
        "condition_start_date": "start_date",
        "condition_start_datetime": "start_ts",
        "condition_end_date": "end_date",
        "condition_end_datetime": "end_ts",
        "condition_type_concept_id": "type_concept",
        "condition_source_value": "source_value",
        "condition_source_concept_id": "source_concept_id",
    },
    "procedure_occurrence": {
        "procedure_concept_id": "concept_id",
        "procedure_date": "start_date",
        "procedure_datetime": "start_ts",
        "procedure_end_date": "end_date",
        "procedure_end_datetime": "end_ts",
        "procedure_type_concept_id": "type_concept",
        "procedure_source_value": "source_value",
        "procedure_source_concept_id": "source_concept_id",
    },
    "drug_exposure": {
        "drug_concept_id": "concept_id",
        "drug_exposure_start_date": "start_date",
        "drug_exposure_start_datetime": "start_ts",
        "drug_exposure_end_date": "coalesce(end_date, start_date)",
        "drug_exposure_end_datetime": "coalesce(end_ts, start_ts)",
        "drug_type_concept_id": "type_concept",
        "drug_source_value": "source_value",
        "drug_source_concept_id": "source_concept_id",
    },
    "measurement": {
        "measurement_concept_id": "concept_id",
        "measurement_date": "start_date",
        "measurement_datetime": "start_ts",
        "measurement_type_concept_id": "type_concept",
        "value_as_number": "value_num",
        "value_as_concept_id": "value_concept_id",
        "unit_concept_id": "unit_concept_id",
        "range_low": "range_low",
        "range_high": "range_high",
        "measurement_source_value": "source_value",
        "measurement_source_concept_id": "source_concept_id",
        "unit_source_value": "unit_source_value",
        "value_source_value": "left(value_string, 50)",
    },
    "observation": {
        "observation_concept_id": "concept_id",
        "observation_date": "start_date",
        "observation_datetime": "start_ts",
        "observation_type_concept_id": "type_concept",
        "value_as_number": "value_num",
        "value_as_string": "left(value_string, 60)",
        "value_as_concept_id": "value_concept_id",
        "unit_concept_id": "unit_concept_id",
        "observation_source_value": "source_value",
        "observation_source_concept_id": "source_concept_id",
        "unit_source_value": "unit_source_value",
    },
    "device_exposure": {
        "device_concept_id": "concept_id",
        "device_exposure_start_date": "start_date",
        "device_exposure_start_datetime": "start_ts",
        "device_exposure_end_date": "end_date",
        "device_type_concept_id": "type_concept",
        "unique_device_id": "left(value_string, 255)",
        "device_source_value": "source_value",
        "device_source_concept_id": "source_concept_id",
    },
    "note": {
        "note_date": "start_date",
        "note_datetime": "start_ts",
        "note_type_concept_id": "type_concept",
        "note_class_concept_id": "concept_id",
        "note_title": "left(note_title, 250)",
        "note_text": "coalesce(note_text, '')",
        "encoding_concept_id": str(m.UTF8),
        "language_concept_id": "0",
        "note_source_value": "source_value",
    },
}


@dataclass
class TypeCounts:
    read: int = 0
    loaded: int = 0
    already: int = 0
    rejected: int = 0
    unmapped: int = 0
    not_mapped_yet: int = 0


@dataclass
class FhirLoadReport:
    site: str
    load_id: str
    files: int = 0
    files_skipped: int = 0
    types: dict[str, TypeCounts] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)  # OMOP table -> rows inserted
    errors: list[dict[str, Any]] = field(default_factory=list)  # file, line, type, reason
    error_report: str | None = None  # object key of the error report
    seconds: float = 0.0

    def count(self, rtype: str) -> TypeCounts:
        return self.types.setdefault(rtype, TypeCounts())

    def add(
        self,
        rtype: str,
        *,
        already: int,
        loaded: int,
        unmapped: int = 0,
        table: str | None = None,
        rows: int = 0,
    ) -> None:
        """Add one slice's counts of ``rtype`` (and the rows it put in ``table``)."""
        if not (already or loaded or unmapped or rows):
            return
        counts = self.count(rtype)
        counts.already += already
        counts.loaded += loaded
        counts.unmapped += unmapped
        if table is not None:
            self.tables[table] = self.tables.get(table, 0) + rows


def keyed(secret: bytes, value: str) -> str:
    """The keyed hash used for every source identifier (the same as the SQL macro hkey)."""
    return hashlib.sha256(f"{secret.hex()}|{value}".encode()).hexdigest()[:40]


# FHIR R4's dateTime (which includes date), except that a time without a UTC offset is taken
# too (the offset is dropped anyway). Before it, DuckDB's cast took "infinity", "epoch", years
# 0000 and 99999, and 24:00, which FHIR does not allow.
FHIR_DATETIME = (
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))?)?)?)?"
)
# NaN and Infinity (not JSON, but DuckDB's reader takes them) and numbers beyond a double (1e400)
FINITE_VALUES = "isfinite(coalesce(value_num, 0)) AND isfinite(coalesce(range_low, 0)) AND isfinite(coalesce(range_high, 0))"


def create_macros(db: duckdb.DuckDBPyConnection, secret: bytes) -> None:
    """Keyed hashes: SHA-256 for patients and identities (their keys become
    person_source_value); a keyed 128-bit MD5 number for rows, a compact join key for the
    idempotency bookkeeping. fhir_ts: a FHIR date or dateTime as a local timestamp."""
    db.execute(
        f"CREATE OR REPLACE TEMP MACRO hkey(s) AS substr(sha256({sql_literal(secret.hex())} || '|' || s), 1, 40)"
    )
    db.execute(f"CREATE OR REPLACE TEMP MACRO rkey(s) AS md5_number({sql_literal(secret.hex())} || '|' || s)")
    db.execute(
        f"CREATE OR REPLACE TEMP MACRO fhir_ts(x) AS CASE WHEN regexp_full_match(x, {sql_literal(FHIR_DATETIME)}) "
        "THEN TRY_CAST(substr(CASE WHEN length(x) = 4 THEN x || '-01-01' "
        "WHEN length(x) = 7 THEN x || '-01' ELSE x END, 1, 19) AS TIMESTAMP) END"
    )


class _Load:
    """The steps of one load, over the staged rows (``STAGE``), one slice of rows at a time."""

    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        site: str,
        report: FhirLoadReport,
        identities: IdentityStore | None,
    ) -> None:
        self.db, self.site, self.report, self.identities = db, site, report, identities
        self.staged = self.q(f"SELECT count(*) FROM {STAGE}")[0][0]
        self.bases = {
            t: self.q(f"SELECT coalesce(max({col}), 0) FROM {t}")[0][0] for t, col in ID_COLUMN.items()
        }
        db.execute("CREATE OR REPLACE TEMP TABLE _touched (person_id INTEGER)")

    def q(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params or []).fetchall()

    def site_key(self, kind: str, ref_expr: str) -> str:
        return f"hkey({sql_literal(kind + '|' + self.site + '|')} || {ref_expr})"

    def row_key(self, kind: str, ref_expr: str) -> str:
        return self.row_key_of(sql_literal(kind), ref_expr)

    def slices(self, rtypes: list[str]) -> Iterator[str]:
        """A view ``_c`` over each slice of the staged rows of ``rtypes``, in turn."""
        types = ", ".join(sql_literal(t) for t in rtypes)
        for start in range(0, max(self.staged, 1), SLICE):
            self.db.execute(
                f"CREATE OR REPLACE TEMP VIEW _c AS SELECT rowid AS rid, * FROM {STAGE} "
                f"WHERE rowid >= {start} AND rowid < {start + SLICE} AND rtype IN ({types}) AND fid IS NOT NULL"
            )
            yield "_c"

    # 1. what was read, and what cannot be loaded at all ----------------------------------------
    def classify(self) -> None:
        for rtype, n in self.q(f"SELECT rtype, count(*) FROM {STAGE} WHERE rtype IS NOT NULL GROUP BY 1"):
            self.report.count(rtype).read = n
            if rtype in m.NOT_MAPPED_YET:
                self.report.count(rtype).not_mapped_yet = n
            elif rtype == "Medication":  # read as the code of the requests that name it
                self.report.count(rtype).loaded = n
        self.reject_where("rtype IS NULL", "'no resourceType'", STAGE)
        known = ", ".join(sql_literal(t) for t in m.MAPPED | m.NOT_MAPPED_YET)
        self.reject_where(f"rtype NOT IN ({known})", "'unsupported resource type ' || rtype", STAGE)
        mapped = ", ".join(sql_literal(t) for t in m.MAPPED)
        self.reject_where(f"rtype IN ({mapped}) AND fid IS NULL", "'no id'", STAGE)

    def reject_where(self, cond: str, reason_sql: str, table: str) -> None:
        for file_no, line, rtype, fid, reason in self.q(
            f"SELECT file_no, line, rtype, fid, {reason_sql} FROM {table} WHERE {cond}"
        ):
            self.report.errors.append(
                {"file_no": file_no, "line": line, "type": rtype, "id": fid, "reason": reason}
            )
            self.report.count(rtype or "(invalid)").rejected += 1

    # 2. patients -> person ------------------------------------------------------------------
    def patients(self, c: str) -> None:
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE _p AS SELECT rid, file_no, line, rtype, fid, "
            f"{self.site_key('Patient', 'fid')} AS patient_key, mid_system, mid_value, gender, identity, "
            f"start_raw AS birthDate, start_ts AS birth_ts, end_raw AS deceasedDateTime, "
            f"end_ts AS death_ts FROM {c} WHERE rtype = 'Patient'"
        )
        self.reject_where("birthDate IS NULL", "'no birthDate (OMOP requires a year of birth)'", "_p")
        self.reject_where(
            "birthDate IS NOT NULL AND birth_ts IS NULL", "'impossible birthDate ' || birthDate", "_p"
        )
        self.reject_where(
            "birth_ts IS NOT NULL AND deceasedDateTime IS NOT NULL AND death_ts IS NULL",
            "'impossible deceasedDateTime ' || deceasedDateTime",
            "_p",
        )
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _pok AS SELECT *, CASE WHEN mid_value IS NOT NULL "
            "THEN hkey('ID|' || mid_system || '|' || mid_value) ELSE patient_key END AS identity_key FROM _p "
            "WHERE birth_ts IS NOT NULL AND NOT (deceasedDateTime IS NOT NULL AND death_ts IS NULL) "
            "QUALIFY row_number() OVER (PARTITION BY patient_key ORDER BY rid) = 1"
        )
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _pnew AS SELECT * FROM _pok "
            "WHERE patient_key NOT IN (SELECT patient_key FROM _hdhub_patients)"
        )
        # New identities get new person ids; patients sharing an identity share the person.
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _ids AS WITH firsts AS (SELECT identity_key, min(rid) AS pos FROM _pnew "
            "WHERE identity_key NOT IN (SELECT identity_key FROM _hdhub_identities) GROUP BY identity_key) "
            "SELECT identity_key, (SELECT coalesce(max(person_id), 0) FROM person) "
            "+ row_number() OVER (ORDER BY pos) AS person_id, pos FROM firsts"
        )
        self.db.execute(
            "INSERT INTO person (person_id, gender_concept_id, year_of_birth, month_of_birth, day_of_birth, "
            "birth_datetime, race_concept_id, ethnicity_concept_id, person_source_value, gender_source_value, "
            "gender_source_concept_id, race_source_concept_id, ethnicity_source_concept_id) "
            "SELECT i.person_id, CASE p.gender WHEN 'male' THEN 8507 WHEN 'female' THEN 8532 ELSE 0 END, "
            "year(p.birth_ts), CASE WHEN length(p.birthDate) >= 7 THEN month(p.birth_ts) END, "
            "CASE WHEN length(p.birthDate) >= 10 THEN day(p.birth_ts) END, "
            "CASE WHEN length(p.birthDate) >= 10 THEN p.birth_ts END, 0, 0, p.identity_key, left(p.gender, 50), "
            "0, 0, 0 FROM _ids i JOIN _pnew p ON p.rid = i.pos"
        )
        self.db.execute("INSERT INTO _hdhub_identities SELECT identity_key, person_id FROM _ids")
        self.db.execute(
            "INSERT INTO _hdhub_patients SELECT p.patient_key, h.person_id FROM _pnew p "
            "JOIN _hdhub_identities h USING (identity_key)"
        )
        self.db.execute(
            f"INSERT INTO person_site SELECT DISTINCT h.person_id, {sql_literal(self.site)} FROM _pnew p "
            "JOIN _hdhub_identities h USING (identity_key) WHERE h.person_id NOT IN "
            f"(SELECT person_id FROM person_site WHERE site = {sql_literal(self.site)})"
        )
        self.db.execute(
            "INSERT INTO death (person_id, death_date, death_datetime, death_type_concept_id, cause_concept_id, "
            "cause_source_concept_id) SELECT DISTINCT ON (h.person_id) h.person_id, p.death_ts::DATE, p.death_ts, "
            f"{m.EHR}, 0, 0 FROM _pnew p JOIN _hdhub_patients h USING (patient_key) WHERE p.death_ts IS NOT NULL "
            "AND h.person_id NOT IN (SELECT person_id FROM death)"
        )
        self.db.execute("INSERT INTO _touched SELECT person_id FROM _ids")
        if self.identities is not None:  # the identity store (catalog), never the warehouse
            self.identities.put_many(
                IdentityRecord(
                    self.site,
                    patient_key,
                    identity_key,
                    {**orjson.loads(identity or "{}"), "birthDate": birth_date, "gender": gender},
                )
                for patient_key, identity_key, identity, birth_date, gender in self.q(
                    "SELECT patient_key, identity_key, identity, birthDate, gender FROM _pok"
                )
            )
        already, new, persons = self.q(
            "SELECT (SELECT count(*) FROM _pok) - (SELECT count(*) FROM _pnew), (SELECT count(*) FROM _pnew), "
            "(SELECT count(*) FROM _ids)"
        )[0]
        self.report.add("Patient", already=already, loaded=new, table="person", rows=persons)

    def ref_maps(self, table: str) -> None:
        """Person and visit of each distinct reference in ``table``: one keyed hash per distinct
        reference instead of one per row (temporary tables, never committed)."""
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE _pm AS SELECT d.ref, p.person_id FROM (SELECT DISTINCT patient_ref AS ref "
            f"FROM {table} WHERE patient_ref IS NOT NULL) d LEFT JOIN _hdhub_patients p "
            f"ON p.patient_key = {self.site_key('Patient', 'd.ref')}"
        )
        self.ref_ids("_vm", "Encounter", "visit_occurrence", "enc_ref", table)

    # 3. who and where: Organization -> care_site + location, Location -> location,
    #    Practitioner -> provider (before encounters, which point to them) ---------------
    def entities(self, c: str) -> None:
        types = ", ".join(sql_literal(t) for t in m.ENTITY_TYPES)
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _n AS SELECT rid, rtype, fid, source_key, gender, entity, "
            "CASE WHEN json_type(entity->'address') = 'ARRAY' THEN entity->'address'->0 "
            "ELSE entity->'address' END AS addr, "
            "source_key IN (SELECT source_key FROM _hdhub_source_rows) AS already "
            f"FROM {c} WHERE rtype IN ({types}) "
            "QUALIFY row_number() OVER (PARTITION BY source_key ORDER BY rid) = 1"
        )
        loc, cs, pr = (self.bases[t] for t in ("location", "care_site", "provider"))
        self.db.execute(
            "INSERT INTO location (location_id, address_1, address_2, city, state, zip, location_source_value, "
            "country_source_value, latitude, longitude) "
            f"SELECT {loc} + rid + 1, left(addr->'line'->>0, 50), left(addr->'line'->>1, 50), "
            "left(addr->>'city', 50), left(addr->>'state', 2), left(addr->>'postalCode', 9), left(fid, 50), "
            "left(addr->>'country', 80), TRY_CAST(entity->'position'->>'latitude' AS DOUBLE), "
            "TRY_CAST(entity->'position'->>'longitude' AS DOUBLE) FROM _n "
            "WHERE NOT already AND (rtype = 'Location' OR (rtype = 'Organization' AND addr IS NOT NULL))"
        )
        self.db.execute(
            "INSERT INTO care_site (care_site_id, care_site_name, place_of_service_concept_id, location_id, "
            f"care_site_source_value) SELECT {cs} + rid + 1, left(entity->>'name', 255), 0, "
            f"CASE WHEN addr IS NOT NULL THEN {loc} + rid + 1 END, left(fid, 50) FROM _n "
            "WHERE NOT already AND rtype = 'Organization'"
        )
        # Staff are people too: no name, no professional identifier in the warehouse.
        self.db.execute(
            "INSERT INTO provider (provider_id, gender_concept_id, provider_source_value, gender_source_value) "
            f"SELECT {pr} + rid + 1, CASE gender WHEN 'male' THEN 8507 WHEN 'female' THEN 8532 ELSE 0 END, "
            "left(fid, 50), left(gender, 50) FROM _n WHERE NOT already AND rtype = 'Practitioner'"
        )
        # Each row is found by the resource's id and by each of its identifier values
        # (conditional references name an identifier: Organization?identifier=system|value).
        self.db.execute(
            "INSERT INTO _hdhub_source_rows WITH t AS (SELECT rid, rtype, fid, source_key, unnest(CASE rtype "
            "WHEN 'Organization' THEN CASE WHEN addr IS NOT NULL THEN ['care_site', 'location'] ELSE ['care_site'] END "
            "WHEN 'Location' THEN ['location'] ELSE ['provider'] END) AS tbl FROM _n WHERE NOT already), "
            "k AS (SELECT rid, unnest(list_distinct(list_prepend(fid, "
            "coalesce(json_extract_string(entity, '$.identifier[*].value'), [])))) AS token FROM _n WHERE NOT already) "
            f"SELECT DISTINCT CASE WHEN k.token = t.fid THEN t.source_key ELSE {self.row_key_of('t.rtype', 'k.token')} "
            f"END, t.tbl, CASE t.tbl WHEN 'location' THEN {loc} WHEN 'care_site' THEN {cs} ELSE {pr} END + t.rid + 1 "
            "FROM t JOIN k USING (rid) WHERE k.token IS NOT NULL"
        )
        for rtype, already, new in self.q(
            "SELECT rtype, count(*) FILTER (WHERE already), count(*) FILTER (WHERE NOT already) FROM _n GROUP BY 1"
        ):
            self.report.add(rtype, already=already, loaded=new)
        for table, n in self.q(
            "SELECT 'location', count(*) FILTER (WHERE rtype = 'Location' OR addr IS NOT NULL) FROM _n WHERE NOT already "
            "UNION ALL SELECT 'care_site', count(*) FILTER (WHERE rtype = 'Organization') FROM _n WHERE NOT already "
            "UNION ALL SELECT 'provider', count(*) FILTER (WHERE rtype = 'Practitioner') FROM _n WHERE NOT already"
        ):
            if n:
                self.report.tables[table] = self.report.tables.get(table, 0) + n

    def first_copies(self, table: str, alias: str) -> str:
        """A join and WHERE keeping only the first copy of a resource present more than once
        in ``table`` (found with a small aggregate: a window over every row costs more)."""
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE _first AS SELECT source_key, min(rid) AS rid FROM {table} "
            "GROUP BY source_key HAVING count(*) > 1"
        )
        return (
            f"LEFT JOIN _first ON _first.source_key = {alias}.source_key "
            f"WHERE (_first.rid IS NULL OR _first.rid = {alias}.rid)"
        )

    def row_key_of(self, rtype_sql: str, ref_expr: str) -> str:
        return m.row_key_sql(rtype_sql, self.site, ref_expr)

    def ref_ids(self, name: str, rtype: str, table: str, ref_col: str, source: str) -> None:
        """``name``: the OMOP id (of ``table``) of each distinct reference in ``source.ref_col``."""
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT d.ref, k.row_id FROM (SELECT DISTINCT {ref_col} AS ref "
            f"FROM {source} WHERE {ref_col} IS NOT NULL) d JOIN _hdhub_source_rows k "
            f"ON k.source_key = {self.row_key(rtype, 'd.ref')} AND k.omop_table = {sql_literal(table)}"
        )

    # 4. encounters -> visit_occurrence --------------------------------------------------------
    def visits(self, c: str) -> None:
        classes = " ".join(f"WHEN {sql_literal(k)} THEN {v}" for k, v in m.VISIT_CLASS.items())
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE _v0 AS SELECT rid, file_no, line, rtype, fid, "
            "source_key, patient_ref, org_ref, prov_ref, "
            f"NULL::VARCHAR AS enc_ref, CASE class_code {classes} ELSE 0 END AS visit_concept_id, "
            f"left(class_code, 50) AS class_code, start_raw, end_raw, start_ts, "
            f"CASE WHEN end_raw IS NULL THEN start_ts ELSE end_ts END AS end_ts FROM {c} WHERE rtype = 'Encounter'"
        )
        self.ref_maps("_v0")
        self.ref_ids("_om", "Organization", "care_site", "org_ref", "_v0")
        self.ref_ids("_prm", "Practitioner", "provider", "prov_ref", "_v0")
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _v AS SELECT v.*, pm.person_id, om.row_id AS care_site_id, "
            "prm.row_id AS provider_id FROM _v0 v LEFT JOIN _pm pm ON pm.ref = v.patient_ref "
            "LEFT JOIN _om om ON om.ref = v.org_ref LEFT JOIN _prm prm ON prm.ref = v.prov_ref"
        )
        self._reject_common("_v")
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE _vok AS SELECT v.*, {self.bases['visit_occurrence']} + v.rid + 1 AS row_id, "
            "k.source_key IS NOT NULL AS already FROM _v v LEFT JOIN _hdhub_source_rows k USING (source_key) "
            f"{self.first_copies('_v0', 'v')} "
            "AND v.person_id IS NOT NULL AND v.start_ts IS NOT NULL AND v.end_ts IS NOT NULL"
        )
        self.db.execute(
            "INSERT INTO visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, visit_start_date, "
            "visit_start_datetime, visit_end_date, visit_end_datetime, visit_type_concept_id, visit_source_value, "
            "visit_source_concept_id, admitted_from_concept_id, discharged_to_concept_id, care_site_id, provider_id) "
            f"SELECT row_id, person_id, visit_concept_id, start_ts::DATE, start_ts, end_ts::DATE, end_ts, {m.EHR}, "
            "class_code, 0, 0, 0, care_site_id, provider_id FROM _vok WHERE NOT already"
        )
        self.db.execute(
            "INSERT INTO _hdhub_source_rows SELECT source_key, 'visit_occurrence', row_id FROM _vok WHERE NOT already"
        )
        self.db.execute("INSERT INTO _touched SELECT DISTINCT person_id FROM _vok WHERE NOT already")
        already, new = self.q(
            "SELECT count(*) FILTER (WHERE already), count(*) FILTER (WHERE NOT already) FROM _vok"
        )[0]
        self.report.add("Encounter", already=already, loaded=new, table="visit_occurrence", rows=new)

    def _reject_common(self, table: str) -> None:
        self.reject_where("patient_ref IS NULL", "'no patient reference (subject)'", table)
        self.reject_where(
            "patient_ref IS NOT NULL AND person_id IS NULL", "'unknown patient ' || patient_ref", table
        )
        self.reject_where("person_id IS NOT NULL AND start_raw IS NULL", "'no date'", table)
        self.reject_where(
            "person_id IS NOT NULL AND start_raw IS NOT NULL AND (start_ts IS NULL OR (end_raw IS NOT NULL "
            "AND end_ts IS NULL))",
            "'impossible date ' || coalesce(start_raw, '') || ' ' || coalesce(end_raw, '')",
            table,
        )

    # 5. clinical events -> the table their concept's domain dictates ----------------------
    def events(self, c: str) -> None:
        def per_type(attr: str) -> str:
            whens = " ".join(
                f"WHEN {sql_literal(e.resource)} THEN {attr_sql(getattr(e, attr))}"
                for e in m.EVENT_TYPES.values()
            )
            return f"CASE rtype {whens} END"

        def attr_sql(value: object) -> str:
            if value is None:
                return "NULL"
            if isinstance(value, bool):
                return str(value).upper()
            return sql_literal(value) if isinstance(value, str) else str(value)

        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE _e AS SELECT rid, file_no, line, rtype, fid, source_key, patient_ref, "
            f"enc_ref, sys, code, start_raw, end_raw, start_ts, end_ts, default_table, "
            f"forced_table AS forced, {per_type('code_is_value')} AS code_is_value, "
            f"{per_type('type_concept')} AS type_concept, unit_code, value_sys, value_code, med_ref, FALSE AS alt, "
            f"value_num, range_low, range_high FROM {c} "
            f"WHERE rtype IN ({', '.join(sql_literal(t) for t in m.EVENT_TYPES)})"
        )
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _altc AS SELECT rid, x.sys, x.code, pos FROM (SELECT rid, "
            f"unnest(alt_codes) AS x, generate_subscripts(alt_codes, 1) AS pos FROM {c} WHERE alt_codes IS NOT NULL)"
        )
        # medicationReference: the code of the Medication named (staged in this load).
        if self.q("SELECT count(*) FROM _e WHERE code IS NULL AND med_ref IS NOT NULL")[0][0]:
            self.db.execute(
                "UPDATE _e SET sys = md.sys, code = md.code, alt = TRUE FROM (SELECT fid, first(sys) AS sys, "
                f"first(code) AS code FROM {STAGE} WHERE rtype = 'Medication' AND code IS NOT NULL GROUP BY fid) md "
                "WHERE _e.code IS NULL AND _e.med_ref = md.fid"
            )
        self.ref_maps("_e")
        self.db.execute(
            "CREATE OR REPLACE TEMP VIEW _ej AS SELECT e.*, pm.person_id, vm.row_id AS visit_id FROM _e e "
            "LEFT JOIN _pm pm ON pm.ref = e.patient_ref LEFT JOIN _vm vm ON vm.ref = e.enc_ref"
        )
        self._reject_common("_ej")
        self.reject_where(
            f"person_id IS NOT NULL AND start_ts IS NOT NULL AND NOT (end_raw IS NOT NULL AND end_ts IS NULL) "
            f"AND NOT ({FINITE_VALUES})",
            "'not a finite number (value or reference range)'",
            "_ej",
        )
        self._concepts()
        # The HL7 FHIR-to-OMOP IG: when the first coding maps to no standard concept, the
        # first other coding that does is used (its code becomes the source value).
        if self.q("SELECT count(*) FROM _altc")[0][0]:
            self.db.execute(
                "UPDATE _e SET sys = b.sys, code = b.code, alt = TRUE FROM (SELECT a.rid, a.sys, a.code "
                "FROM _altc a JOIN _codes k ON k.sys = a.sys AND k.code = a.code AND k.standard_id IS NOT NULL "
                "JOIN _e e ON e.rid = a.rid LEFT JOIN _codes f ON f.sys = e.sys AND f.code = e.code "
                "WHERE f.standard_id IS NULL QUALIFY row_number() OVER (PARTITION BY a.rid ORDER BY a.pos) = 1) b "
                "WHERE _e.rid = b.rid"
            )
        bases = " ".join(f"WHEN {sql_literal(t)} THEN {self.bases[t]}" for t in TARGET_COLUMNS)
        domains = " ".join(f"WHEN {sql_literal(d)} THEN {sql_literal(t)}" for d, t in m.DOMAIN_TABLE.items())
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _eok AS WITH x AS (SELECT e.rid, e.rtype, e.source_key, e.person_id, "
            "e.visit_id, e.type_concept, e.code_is_value, CASE WHEN e.alt THEN e.code END AS used_code, "
            "CASE WHEN e.code_is_value THEN CASE WHEN c.domain = 'Observation' THEN c.standard_id ELSE 0 END "
            "ELSE coalesce(c.standard_id, 0) END AS concept_id, "
            "coalesce(c.source_id, 0) AS source_concept_id, "
            "coalesce(CASE WHEN e.code_is_value THEN c.standard_id ELSE vc.standard_id END, 0) AS value_concept_id, "
            "coalesce(u.standard_id, 0) AS unit_concept_id, "
            f"coalesce(e.forced, CASE c.domain {domains} END, e.default_table) AS target, "
            "k.source_key IS NOT NULL AS already FROM _ej e "
            "LEFT JOIN _codes c ON c.sys = e.sys AND c.code = e.code "
            "LEFT JOIN _codes vc ON vc.sys = e.value_sys AND vc.code = e.value_code "
            "LEFT JOIN _codes u ON u.sys = 'http://unitsofmeasure.org' AND u.code = e.unit_code "
            "LEFT JOIN _hdhub_source_rows k ON k.source_key = e.source_key "
            f"{self.first_copies('_e', 'e')} "
            "AND e.person_id IS NOT NULL AND e.start_ts IS NOT NULL AND NOT (e.end_raw IS NOT NULL AND e.end_ts IS NULL) "
            f"AND {FINITE_VALUES}) "
            f"SELECT *, CASE target {bases} END + rid + 1 AS row_id FROM x"
        )
        for rtype, already, loaded, unmapped in self.q(
            "SELECT rtype, count(*) FILTER (WHERE already), count(*) FILTER (WHERE NOT already), "
            "count(*) FILTER (WHERE NOT already AND CASE WHEN code_is_value THEN value_concept_id "
            "ELSE concept_id END = 0) FROM _eok GROUP BY 1"
        ):
            self.report.add(rtype, already=already, loaded=loaded, unmapped=unmapped)
        for table, columns in TARGET_COLUMNS.items():
            cols = ", ".join(columns)
            exprs = ", ".join(columns.values())
            self.db.execute(
                f"INSERT INTO {table} ({ID_COLUMN[table]}, person_id, visit_occurrence_id, {cols}) "
                f"SELECT row_id, person_id, visit_id, {exprs} FROM (SELECT d.*, s.start_ts, s.end_ts, "
                "s.start_ts::DATE AS start_date, s.end_ts::DATE AS end_date, left(coalesce(d.used_code, s.code), 50) AS source_value, "
                "s.value_num, s.range_low, s.range_high, left(s.unit_code, 50) AS unit_source_value, s.value_string, "
                f"s.note_text, s.note_title FROM _eok d JOIN {STAGE} s ON s.rowid = d.rid "
                f"WHERE NOT d.already AND d.target = {sql_literal(table)})"
            )
        self.db.execute(
            "INSERT INTO _hdhub_source_rows SELECT source_key, target, row_id FROM _eok WHERE NOT already"
        )
        self.db.execute("INSERT INTO _touched SELECT DISTINCT person_id FROM _eok WHERE NOT already")
        for table, n in self.q("SELECT target, count(*) FROM _eok WHERE NOT already GROUP BY 1"):
            self.report.tables[table] = self.report.tables.get(table, 0) + n

    def _concepts(self, wanted: str = "", table: str = "_codes") -> None:
        """``table``: source and standard concept (and its domain) of each (system, code) of
        ``wanted`` (default: every code of the events ``_e``)."""
        wanted = wanted or (
            "SELECT DISTINCT sys, code FROM _e WHERE code IS NOT NULL UNION "
            "SELECT DISTINCT value_sys, value_code FROM _e WHERE value_code IS NOT NULL UNION "
            "SELECT DISTINCT 'http://unitsofmeasure.org', unit_code FROM _e WHERE unit_code IS NOT NULL UNION "
            "SELECT DISTINCT sys, code FROM _altc WHERE code IS NOT NULL"
        )
        systems = " UNION ALL ".join(
            f"SELECT {sql_literal(u)} AS sys, {sql_literal(v)} AS vocab" for u, v in m.SYSTEMS.items()
        )
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS WITH wanted AS ({wanted}), "
            f"systems AS ({systems}), "
            f"src AS (SELECT w.sys, w.code, min(c.concept_id) AS source_id FROM wanted w JOIN systems s ON s.sys = w.sys "
            f"  JOIN concept c ON c.vocabulary_id = s.vocab AND c.concept_code = w.code GROUP BY 1, 2), "
            f"std AS (SELECT src.sys, src.code, src.source_id, coalesce(CASE WHEN c.standard_concept = 'S' "
            f"  THEN c.concept_id END, (SELECT min(r.concept_id_2) FROM concept_relationship r "
            f"  WHERE r.concept_id_1 = src.source_id AND r.relationship_id = 'Maps to' AND r.invalid_reason IS NULL)) "
            f"  AS standard_id FROM src JOIN concept c ON c.concept_id = src.source_id) "
            f"SELECT std.*, c.domain_id AS domain FROM std LEFT JOIN concept c ON c.concept_id = std.standard_id"
        )

    # 6. imaging series -> image_occurrence (OHDSI imaging extension), after their procedure --
    def images(self, c: str) -> None:
        if not self.q(f"SELECT count(*) FROM {c} WHERE rtype = 'ImagingStudy' AND series IS NOT NULL")[0][0]:
            return
        key = self.row_key(IMAGE_SERIES, "fid || '#' || coalesce(x.uid, pos::VARCHAR)")
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _i0 AS SELECT rid, file_no, line, fid, source_key AS parent_key, "
            "study_uid, x.uid AS series_uid, x.modality_sys, x.modality, x.site_sys, x.site, pos, "
            f"{key} AS source_key "
            "FROM (SELECT *, unnest(series) AS x, generate_subscripts(series, 1) AS pos "
            f"FROM {c} WHERE rtype = 'ImagingStudy' AND series IS NOT NULL)"
        )
        self._concepts(
            "SELECT DISTINCT modality_sys AS sys, modality AS code FROM _i0 WHERE modality IS NOT NULL UNION "
            "SELECT DISTINCT site_sys, site FROM _i0 WHERE site IS NOT NULL",
            "_icodes",
        )
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE _i AS SELECT i.*, {sql_literal(IMAGE_SERIES)} AS rtype, "
            "k.row_id AS procedure_id, p.person_id, p.visit_occurrence_id, p.procedure_date, "
            "coalesce(mc.standard_id, 0) AS modality_concept_id, sc.standard_id AS site_concept_id, "
            "i.source_key IN (SELECT source_key FROM _hdhub_source_rows) AS already FROM _i0 i "
            "LEFT JOIN _hdhub_source_rows k ON k.source_key = i.parent_key AND k.omop_table = 'procedure_occurrence' "
            "LEFT JOIN procedure_occurrence p ON p.procedure_occurrence_id = k.row_id "
            "LEFT JOIN _icodes mc ON mc.sys = i.modality_sys AND mc.code = i.modality "
            "LEFT JOIN _icodes sc ON sc.sys = i.site_sys AND sc.code = i.site"
        )
        self.report.count(IMAGE_SERIES).read += self.q("SELECT count(*) FROM _i")[0][0]
        self.reject_where(
            "study_uid IS NULL OR series_uid IS NULL",
            "'no DICOM study UID (identifier urn:dicom:uid) or series UID'",
            "_i",
        )
        self.reject_where(
            "study_uid IS NOT NULL AND series_uid IS NOT NULL AND procedure_id IS NULL",
            "'its ImagingStudy was not loaded as a procedure'",
            "_i",
        )
        ok = "study_uid IS NOT NULL AND series_uid IS NOT NULL AND procedure_id IS NOT NULL"
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE _inew AS SELECT *, (SELECT coalesce(max(image_occurrence_id), 0) "
            "FROM image_occurrence) + row_number() OVER (ORDER BY rid, pos) AS image_id FROM _i "
            f"WHERE {ok} AND NOT already QUALIFY row_number() OVER (PARTITION BY source_key ORDER BY rid, pos) = 1"
        )
        self.db.execute(
            "INSERT INTO image_occurrence (image_occurrence_id, person_id, procedure_occurrence_id, "
            "visit_occurrence_id, anatomic_site_concept_id, image_occurrence_date, image_study_uid, "
            "image_series_uid, modality_concept_id) SELECT image_id, person_id, procedure_id, visit_occurrence_id, "
            "site_concept_id, procedure_date, left(study_uid, 250), left(series_uid, 250), modality_concept_id "
            "FROM _inew"
        )
        self.db.execute(
            "INSERT INTO _hdhub_source_rows SELECT source_key, 'image_occurrence', image_id FROM _inew"
        )
        already, new = self.q(
            f"SELECT (SELECT count(*) FROM _i WHERE {ok} AND already), (SELECT count(*) FROM _inew)"
        )[0]
        self.report.add(IMAGE_SERIES, already=already, loaded=new, table="image_occurrence", rows=new)

    # 7. observation periods of the persons touched --------------------------------------------
    def observation_periods(self) -> None:
        spans = " UNION ALL ".join(
            [
                "SELECT person_id, visit_start_date AS s, visit_end_date AS e FROM visit_occurrence",
                "SELECT person_id, condition_start_date, coalesce(condition_end_date, condition_start_date) "
                "FROM condition_occurrence",
                "SELECT person_id, drug_exposure_start_date, drug_exposure_end_date FROM drug_exposure",
                "SELECT person_id, procedure_date, coalesce(procedure_end_date, procedure_date) FROM procedure_occurrence",
                "SELECT person_id, measurement_date, measurement_date FROM measurement",
                "SELECT person_id, observation_date, observation_date FROM observation",
                "SELECT person_id, note_date, note_date FROM note",
            ]
        )
        self.db.execute("CREATE OR REPLACE TEMP TABLE _tp AS SELECT DISTINCT person_id FROM _touched")
        self.db.execute("DELETE FROM observation_period WHERE person_id IN (SELECT person_id FROM _tp)")
        self.db.execute(
            "INSERT INTO observation_period (observation_period_id, person_id, observation_period_start_date, "
            "observation_period_end_date, period_type_concept_id) SELECT (SELECT coalesce(max(observation_period_id), 0) "
            f"FROM observation_period) + row_number() OVER (ORDER BY person_id), person_id, min(s), max(e), {m.EHR} "
            f"FROM ({spans}) WHERE person_id IN (SELECT person_id FROM _tp) AND s IS NOT NULL GROUP BY person_id"
        )


def load_fhir(
    con: Any,
    paths: list[Path],
    *,
    site: str,
    secret: bytes,
    objects: Any = None,
    merge_systems: tuple[str, ...] = (INS_SYSTEM,),
    identities: IdentityStore | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> FhirLoadReport:
    """Load FHIR files from ``site``; see the module docstring for the guarantees.

    Patients' names, addresses, telecom, identifiers and birth dates go to ``identities``
    (written before the warehouse commits: a failed load leaves at most identities that a
    re-run writes again), never to the warehouse. ``progress(phase, done, total)`` is told
    how far each phase is: archive and read (in bytes), map (in steps)."""
    tell = progress or (lambda phase, done, total: None)
    if not SITE_RE.match(site):
        raise ValidationError(f"site code {site!r}: 1-40 letters, digits, '-' or '_'")
    started = time.perf_counter()
    db: duckdb.DuckDBPyConnection = con.con
    report = FhirLoadReport(site=site, load_id=time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8])
    files = discover([Path(p) for p in paths])
    for stmt in BOOKKEEPING:
        db.execute(stmt)
    done = {
        row[0]
        for row in db.execute("SELECT sha256 FROM _hdhub_loaded_files WHERE site = ?", [site]).fetchall()
    }
    todo = []
    for f in files:  # skip files loaded before, and copies of a file within this load
        if f.sha256 not in done:
            todo.append(f)
            done.add(f.sha256)
    report.files, report.files_skipped = len(todo), len(files) - len(todo)
    landing = f"landing/fhir/{site}/{report.load_id}"
    total_bytes = sum(f.size for f in todo)
    if objects is not None:  # the landing zone: every received file, unchanged and encrypted
        done_bytes = 0
        for f in todo:
            tell("archive", done_bytes, total_bytes)
            done_bytes += f.size
            with f.path.open("rb") as fh:
                objects.put(
                    f"{landing}/{f.number:05d}-{f.path.name}",
                    fh,
                    content_type="application/fhir+ndjson",
                    metadata={"sha256": f.sha256, "site": site},
                )
    # Staged rows and the load's working tables spill to disk beyond this: memory stays flat.
    previous_limit = db.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # type: ignore[index]
    db.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        create_macros(db, secret)
        create_staging(db)
        issues = StagingIssues()
        done_bytes = 0
        for f in todo:
            tell("read", done_bytes, total_bytes)
            stage_file(db, f, issues, merge_systems, site)
            done_bytes += f.size
        tell("read", total_bytes, total_bytes)
        db.execute(f"INSERT INTO {STAGE} " + m.component_rows(site).format(stage=STAGE))
        for file_no, line, reason in issues.rows:
            report.errors.append(
                {"file_no": file_no, "line": line, "type": None, "id": None, "reason": reason}
            )
        db.begin()
        try:
            load = _Load(db, site, report, identities)
            load.classify()
            steps = (
                (load.patients, ["Patient"]),
                (load.entities, list(m.ENTITY_TYPES)),
                (load.visits, ["Encounter"]),
                (load.events, list(m.EVENT_TYPES)),
                (load.images, ["ImagingStudy"]),
            )
            total_steps, done_steps = len(steps) * max(1, -(-load.staged // SLICE)) + 1, 0
            for step, rtypes in steps:
                for chunk in load.slices(rtypes):
                    tell("map", done_steps, total_steps)
                    step(chunk)
                    done_steps += 1
            load.observation_periods()
            tell("map", total_steps, total_steps)
            if todo:
                db.executemany(
                    "INSERT INTO _hdhub_loaded_files VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
                    [(site, f.sha256, f.path.name, report.load_id) for f in todo],
                )
            db.commit()
        except BaseException:
            db.rollback()
            raise
    finally:  # also when staging itself fails
        db.execute(f"DROP TABLE IF EXISTS {STAGE}")
        db.execute(f"SET memory_limit = '{previous_limit}'")
    _number_lines(db, report, {f.number: f for f in files})
    names = {f.number: f.path.name for f in files}
    report.errors.sort(key=lambda e: (e["file_no"], e["line"]))
    for err in report.errors:
        err["file"] = names.get(err.pop("file_no"), "?")
    if report.errors and objects is not None:
        body = b"".join(orjson.dumps(e) + b"\n" for e in report.errors)
        report.error_report = f"{landing}/errors.ndjson"
        objects.put(report.error_report, body, content_type="application/x-ndjson")
    report.seconds = time.perf_counter() - started
    return report


def _number_lines(db: duckdb.DuckDBPyConnection, report: FhirLoadReport, files: dict[int, Any]) -> None:
    """Give line numbers to the rejections of files read on the fast path (which has none)."""
    unnumbered: dict[int, list[dict[str, Any]]] = {}
    for err in report.errors:
        if err["line"] is None:
            unnumbered.setdefault(err["file_no"], []).append(err)
    for file_no, errs in unnumbered.items():
        lines = locate_lines(db, files[file_no], [(e["type"], e["id"]) for e in errs])
        for err, line in zip(errs, lines, strict=True):
            err["line"] = line


def summary_counts(report: FhirLoadReport) -> Counter[str]:
    return Counter({t: c.loaded for t, c in report.types.items()})
