# ruff: noqa: S608  (SQL is built from constants and integers of this file, never from input)
"""Cohort feasibility queries: hdhub's compiled cohorts against hand-written SQL, on 100 M rows.

Builds a synthetic OMOP CDM 5.4 warehouse in DuckDB (default 1,000,000 persons, each with
100 measurements, 5 conditions, 5 drug exposures, 5 visits and one observation period:
117 M rows, deterministic, generated with set-based SQL in person order as an ETL writes
it, then laid out by ``hdhub warehouse optimize``: event tables sorted by concept, person
and date), then times three typical feasibility queries written as hdhub cohort definitions:

- Q1 first type 2 diabetes diagnosis, HbA1c 7-10 % within 30 days of it, age 40-75 at it;
- Q2 first metformin exposure with a type 2 diabetes diagnosis on or before it;
- Q3 first hypertension diagnosis with three nested groups (ANY, AT_LEAST 1, NOT ALL).

Each is run (a) compiled by hdhub on DuckDB (``count_cohort``: concept sets resolved,
compiled, executed), (b) as the same logic hand-written in SQL on DuckDB, (c) that
hand-written SQL on PostgreSQL 15 with the same data (the columns the queries read, in
UNLOGGED tables), a DBA's indexes, VACUUM ANALYZE and work_mem 256 MB, and (d) the SQL hdhub
generates for PostgreSQL, on PostgreSQL. The person counts of all of them must
be equal. Each timing is the median of 3 runs after one warm-up.

Targets: each compiled query on DuckDB <= 0.5 s, and <= 1.5x the hand-written DuckDB SQL.

    python benchmarks/cohorts.py [--persons 1000000] [--skip-postgres] [--dir DIR] [--explain]

``--dir`` keeps the DuckDB file (``DIR/cohorts-<persons>.duckdb``) and reuses it when it
already holds a complete build of that size. PostgreSQL is reached at 127.0.0.1:5432 as
``postgres``; the data goes to a throwaway database ``hdhub_bench_<random>``, dropped after.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DATA_VERSION = 2  # bump when the generated data changes: a kept warehouse is then rebuilt
MEMORY_LIMIT = "12GB"
THREADS = 2
MEASUREMENTS_PER_PERSON = 100
EVENTS_PER_PERSON = 5  # conditions, drug exposures, visits
CHUNK_ROWS = 10_000_000  # measurement rows generated (and copied to PostgreSQL) at a time
TARGET_SECONDS = 0.5
TARGET_RATIO = 1.5
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_BUDGET_SECONDS = 600  # a slower PostgreSQL load is flagged (1 M persons: ~280 s here)
TYPE_EHR = 32817  # "EHR" type concept, for every *_type_concept_id

# Concepts ------------------------------------------------------------------------------------

T2DM, HYPERTENSION, HEART_FAILURE, AFIB = 201826, 320128, 316139, 313217
METFORMIN, AMLODIPINE, LISINOPRIL = 1503297, 1332419, 19080128
HBA1C, SBP, CREATININE, HEMOGLOBIN = 3004410, 3004249, 3016723, 3000963

# concept_id: (name, concept_code); codes are given for the concepts the queries use.
KEY_CONDITIONS = {
    T2DM: ("Type 2 diabetes mellitus", "44054006"),
    HYPERTENSION: ("Essential hypertension", "59621000"),
    HEART_FAILURE: ("Heart failure", "84114007"),
    AFIB: ("Atrial fibrillation", "49436004"),
}
OTHER_CONDITIONS = {
    432867: "Hyperlipidemia",
    317009: "Asthma",
    255573: "Chronic obstructive lung disease",
    46271022: "Chronic kidney disease",
    433736: "Obesity",
    440383: "Depressive disorder",
    442077: "Anxiety disorder",
    80180: "Osteoarthritis",
    194133: "Low back pain",
    318800: "Gastroesophageal reflux disease",
    140673: "Hypothyroidism",
    318736: "Migraine",
    260139: "Acute bronchitis",
    255848: "Pneumonia",
    81902: "Urinary tract infectious disease",
    40481087: "Viral sinusitis",
    28060: "Streptococcal sore throat",
    317576: "Coronary arteriosclerosis",
    4329847: "Myocardial infarction",
    443454: "Cerebral infarction",
    439777: "Anemia",
    440674: "Gout",
    80809: "Rheumatoid arthritis",
    140168: "Psoriasis",
    133834: "Atopic dermatitis",
    257007: "Allergic rhinitis",
    80502: "Osteoporosis",
    313459: "Sleep apnea",
    37018196: "Prediabetes",
    4112343: "Acute viral pharyngitis",
    4283893: "Sinusitis",
    378419: "Alzheimer's disease",
}
KEY_DRUGS = {
    METFORMIN: ("metformin", "6809"),
    AMLODIPINE: ("amlodipine", "17767"),
    LISINOPRIL: ("lisinopril", "29046"),
}
OTHER_DRUGS = {
    1545958: "atorvastatin",
    1539403: "simvastatin",
    1510813: "rosuvastatin",
    1501700: "levothyroxine",
    923645: "omeprazole",
    1112807: "aspirin",
    1125315: "acetaminophen",
    1177480: "ibuprofen",
    974166: "hydrochlorothiazide",
    1367500: "losartan",
    1307046: "metoprolol",
    956874: "furosemide",
    1310149: "warfarin",
    1502905: "insulin glargine",
    1580747: "sitagliptin",
    797399: "gabapentin",
    739138: "sertraline",
    1551099: "prednisone",
    1713332: "amoxicillin",
    1322184: "clopidogrel",
    43013024: "apixaban",
}
# concept_id: (name, LOINC code, unit, low, high, decimals) of the generic values.
MEASUREMENTS = {
    HBA1C: ("Hemoglobin A1c/Hemoglobin.total in Blood", "4548-4", 8554, 4.5, 6.4, 1),
    SBP: ("Systolic blood pressure", "8480-6", 8876, 100, 150, 0),
    3012888: ("Diastolic blood pressure", "8462-4", 8876, 60, 95, 0),
    CREATININE: ("Creatinine [Mass/volume] in Serum or Plasma", "2160-0", 8840, 0.5, 1.4, 2),
    HEMOGLOBIN: ("Hemoglobin [Mass/volume] in Blood", "718-7", 8713, 11, 17, 1),
    3004501: ("Glucose [Mass/volume] in Serum or Plasma", "2345-7", 8840, 70, 140, 0),
    3027114: ("Cholesterol [Mass/volume] in Serum or Plasma", "2093-3", 8840, 140, 280, 0),
    3028437: ("Cholesterol in LDL [Mass/volume] in Serum or Plasma", "18262-6", 8840, 60, 190, 0),
    3007070: ("Cholesterol in HDL [Mass/volume] in Serum or Plasma", "2085-9", 8840, 30, 90, 0),
    3022192: ("Triglyceride [Mass/volume] in Serum or Plasma", "2571-8", 8840, 50, 300, 0),
    3038553: ("Body mass index (BMI) [Ratio]", "39156-5", 9531, 18, 40, 1),
    3025315: ("Body weight", "29463-7", 9529, 45, 130, 1),
    3036277: ("Body height", "8302-2", 8582, 150, 195, 0),
    3027018: ("Heart rate", "8867-4", 8541, 50, 110, 0),
    3023103: ("Potassium [Moles/volume] in Serum or Plasma", "2823-3", 8753, 3.4, 5.2, 1),
    3019550: ("Sodium [Moles/volume] in Serum or Plasma", "2951-2", 8753, 134, 146, 0),
    3006923: ("Alanine aminotransferase [Enzymatic activity/volume] in Serum", "1742-6", 8645, 7, 60, 0),
    3013721: ("Aspartate aminotransferase [Enzymatic activity/volume] in Serum", "1920-8", 8645, 10, 50, 0),
    3009201: ("Thyrotropin [Units/volume] in Serum or Plasma", "3016-3", 9040, 0.4, 5.0, 2),
    3000905: ("Leukocytes [#/volume] in Blood by Automated count", "6690-2", 8848, 4, 11, 1),
    3024929: ("Platelets [#/volume] in Blood by Automated count", "777-3", 8848, 150, 400, 0),
    3013682: ("Urea nitrogen [Mass/volume] in Serum or Plasma", "3094-0", 8840, 7, 25, 0),
    3024561: ("Albumin [Mass/volume] in Serum or Plasma", "1751-7", 8713, 3.4, 5.2, 1),
    3006906: ("Calcium [Mass/volume] in Serum or Plasma", "17861-6", 8840, 8.5, 10.5, 1),
    3020891: ("Body temperature", "8310-5", 586323, 36, 38.5, 1),
}  # fmt: skip
UNITS = {
    8554: "percent",
    8876: "millimeter mercury column",
    8840: "milligram per deciliter",
    8713: "gram per deciliter",
    8753: "millimole per liter",
    9531: "kilogram per square meter",
    9529: "kilogram",
    8582: "centimeter",
    8541: "per minute",
    8645: "unit per liter",
    9040: "milli-international unit per liter",
    8848: "thousand per microliter",
    586323: "degree Celsius",
}
VISITS = {9201: "Inpatient Visit", 9202: "Outpatient Visit", 9203: "Emergency Room Visit"}
GENDERS = {8507: "MALE", 8532: "FEMALE"}

# Data generation -----------------------------------------------------------------------------
# Every value is a hash of the row number (or person id) and a salt (< 1009, one per use): the same
# data every run. The high bits of DuckDB's hash of one value: its low bits, and hash(x, salt)
# for different salts, are correlated.
# Person-level traits (diabetic, hypertensive, ...) are macros of person_id, so each table is
# generated on its own, without joins. Prevalences (per mille): T2DM 80, hypertension 250,
# heart failure 30, atrial fibrillation 40; 75 % of diabetics (and 1 % of others) take
# metformin, 40 % of hypertensives amlodipine and 40 % lisinopril. Diabetics have 6 HbA1c
# results around their diagnosis, hypertensives 4 systolic readings in the 400 days before it.

MACROS = f"""
CREATE OR REPLACE TEMP MACRO u(x, salt, n) AS CAST((hash(x * 1009 + salt) >> 32) % n AS INTEGER);
CREATE OR REPLACE TEMP MACRO flag(x, salt, permille) AS u(x, salt, 1000) < permille;
CREATE OR REPLACE TEMP MACRO rdate(x, salt) AS DATE '2010-01-01' + u(x, salt, 5479);
CREATE OR REPLACE TEMP MACRO yob(p) AS 1930 + u(p, 21, 91);
CREATE OR REPLACE TEMP MACRO is_dm(p) AS flag(p, 1, 80);
CREATE OR REPLACE TEMP MACRO dm_date(p) AS DATE '2010-03-01' + u(p, 2, 5300);
CREATE OR REPLACE TEMP MACRO is_htn(p) AS flag(p, 3, 250);
CREATE OR REPLACE TEMP MACRO htn_date(p) AS DATE '2010-03-01' + u(p, 4, 5300);
CREATE OR REPLACE TEMP MACRO is_hf(p) AS flag(p, 5, 30);
CREATE OR REPLACE TEMP MACRO is_af(p) AS flag(p, 6, 40);
CREATE OR REPLACE TEMP MACRO on_met(p) AS (is_dm(p) AND flag(p, 7, 750)) OR (NOT is_dm(p) AND flag(p, 8, 10));
CREATE OR REPLACE TEMP MACRO met_date(p) AS
    CASE WHEN is_dm(p) THEN dm_date(p) + (u(p, 9, 150) - 30) ELSE rdate(p, 9) END;
CREATE OR REPLACE TEMP MACRO on_aml(p) AS is_htn(p) AND flag(p, 10, 400);
CREATE OR REPLACE TEMP MACRO on_lis(p) AS is_htn(p) AND flag(p, 11, 400);
CREATE OR REPLACE TEMP MACRO other_condition(x) AS
    {list(OTHER_CONDITIONS)}[1 + u(x, 33, {len(OTHER_CONDITIONS)})];
CREATE OR REPLACE TEMP MACRO other_drug(x) AS {list(OTHER_DRUGS)}[1 + u(x, 43, {len(OTHER_DRUGS)})];
"""


def person_sql(lo: int, hi: int) -> str:
    return f"""
INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id)
SELECT p, CASE WHEN u(p, 20, 2) = 0 THEN 8507 ELSE 8532 END, yob(p), 0, 0 FROM range({lo}, {hi}) r(p)"""


def observation_period_sql(lo: int, hi: int) -> str:
    return f"""
INSERT INTO observation_period (observation_period_id, person_id, observation_period_start_date,
    observation_period_end_date, period_type_concept_id)
SELECT p, p, greatest(DATE '2010-01-01' + u(p, 22, 1500), make_date(yob(p), 1, 1)),
    DATE '2024-12-31' - u(p, 23, 1000), {TYPE_EHR}
FROM range({lo}, {hi}) r(p)"""


def visit_sql(lo: int, hi: int) -> str:
    n = EVENTS_PER_PERSON
    return f"""
INSERT INTO visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, visit_start_date,
    visit_end_date, visit_type_concept_id)
SELECT i + 1, p, concept, s, CASE WHEN concept = 9201 THEN s + u(i, 32, 10) ELSE s END, {TYPE_EHR}
FROM (
    SELECT i, i // {n} + 1 AS p, rdate(i, 31) AS s,
        CASE WHEN u(i, 30, 100) < 5 THEN 9201 WHEN u(i, 30, 100) < 20 THEN 9203 ELSE 9202 END AS concept
    FROM range({(lo - 1) * n}, {(hi - 1) * n}) r(i))"""


def condition_sql(lo: int, hi: int) -> str:
    n = EVENTS_PER_PERSON
    return f"""
INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id,
    condition_start_date, condition_end_date, condition_type_concept_id)
SELECT i + 1, p, concept, s,
    CASE WHEN concept IN ({HYPERTENSION}, {T2DM}) THEN NULL ELSE s + u(i, 36, 30) END, {TYPE_EHR}
FROM (
    SELECT i, p,
        CASE WHEN k = 0 AND is_dm(p) THEN {T2DM}
             WHEN k = 1 AND is_htn(p) THEN {HYPERTENSION}
             WHEN k = 2 AND is_hf(p) THEN {HEART_FAILURE}
             WHEN k = 3 AND is_af(p) THEN {AFIB}
             WHEN k = 4 AND is_dm(p) AND flag(p, 12, 500) THEN {T2DM}
             ELSE other_condition(i) END AS concept,
        CASE WHEN k = 0 AND is_dm(p) THEN dm_date(p)
             WHEN k = 1 AND is_htn(p) THEN htn_date(p)
             WHEN k = 4 AND is_dm(p) AND flag(p, 12, 500)
                  THEN least(dm_date(p) + u(i, 34, 1500), DATE '2024-12-31')
             ELSE rdate(i, 35) END AS s
    FROM (SELECT i, i // {n} + 1 AS p, i % {n} AS k FROM range({(lo - 1) * n}, {(hi - 1) * n}) r(i)))"""


def drug_sql(lo: int, hi: int) -> str:
    n = EVENTS_PER_PERSON
    return f"""
INSERT INTO drug_exposure (drug_exposure_id, person_id, drug_concept_id, drug_exposure_start_date,
    drug_exposure_end_date, drug_type_concept_id)
SELECT i + 1, p, concept, s, s + 29 + u(i, 44, 2) * 60, {TYPE_EHR}
FROM (
    SELECT i, p,
        CASE WHEN k = 0 AND on_met(p) THEN {METFORMIN}
             WHEN k = 1 AND on_aml(p) THEN {AMLODIPINE}
             WHEN k = 2 AND on_lis(p) THEN {LISINOPRIL}
             WHEN k = 3 AND on_met(p) AND flag(p, 13, 600) THEN {METFORMIN}
             ELSE other_drug(i) END AS concept,
        CASE WHEN k = 0 AND on_met(p) THEN met_date(p)
             WHEN k = 1 AND on_aml(p) THEN htn_date(p) + (u(i, 40, 730) - 365)
             WHEN k = 2 AND on_lis(p) THEN htn_date(p) + (u(i, 41, 730) - 365)
             WHEN k = 3 AND on_met(p) AND flag(p, 13, 600)
                  THEN least(met_date(p) + u(i, 42, 1000), DATE '2024-12-31')
             ELSE rdate(i, 45) END AS s
    FROM (SELECT i, i // {n} + 1 AS p, i % {n} AS k FROM range({(lo - 1) * n}, {(hi - 1) * n}) r(i)))"""


def measurement_sql(lo: int, hi: int) -> str:
    n = MEASUREMENTS_PER_PERSON
    spec = list(MEASUREMENTS.values())

    def pick(k: int) -> str:  # the generic concept's k-th property, by its index g.idx
        return f"{[m[k] for m in spec]}[1 + g.idx]"

    return f"""
INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date,
    measurement_type_concept_id, value_as_number, unit_concept_id)
SELECT g.i + 1, g.p, g.concept,
    CASE WHEN g.kind = 1 THEN dm_date(g.p) + (u(g.i, 50, 181) - 90)
         WHEN g.kind = 2 THEN htn_date(g.p) - u(g.i, 52, 400)
         ELSE rdate(g.i, 55) END,
    {TYPE_EHR},
    CASE WHEN g.concept = {HBA1C} AND is_dm(g.p) THEN 6.0 + u(g.i, 51, 500) / 100
         WHEN g.kind = 2 THEN 125 + u(g.i, 53, 55)
         ELSE round({pick(3)} + u(g.i, 56, 1000) * ({pick(4)} - {pick(3)}) / 1000, {pick(5)}) END,
    CASE WHEN g.kind = 1 THEN 8554 WHEN g.kind = 2 THEN 8876 ELSE {pick(2)} END
FROM (
    SELECT i, p, kind, idx,
        CASE WHEN kind = 1 THEN {HBA1C} WHEN kind = 2 THEN {SBP}
             ELSE {list(MEASUREMENTS)}[1 + idx] END AS concept
    FROM (
        SELECT i, p, u(i, 54, {len(MEASUREMENTS)}) AS idx,
            CASE WHEN k < 6 AND is_dm(p) THEN 1 WHEN k BETWEEN 6 AND 9 AND is_htn(p) THEN 2 ELSE 0 END AS kind
        FROM (SELECT i, i // {n} + 1 AS p, i % {n} AS k FROM range({(lo - 1) * n}, {(hi - 1) * n}) r(i)))
) g"""


def vocabulary_rows() -> list[tuple[int, str, str, str, str, str, str | None]]:
    """concept_id, name, domain, vocabulary, class, code, standard flag of every concept used."""
    rows: list[tuple[int, str, str, str, str, str, str | None]] = [
        (0, "No matching concept", "Metadata", "None", "Undefined", "No matching concept", None),
        (TYPE_EHR, "EHR", "Type Concept", "Type Concept", "Type Concept", "OMOP4976890", "S"),
    ]
    rows += [
        (c, name, "Condition", "SNOMED", "Clinical Finding", code, "S")
        for c, (name, code) in KEY_CONDITIONS.items()
    ]
    rows += [
        (c, name, "Condition", "SNOMED", "Clinical Finding", str(c), "S")
        for c, name in OTHER_CONDITIONS.items()
    ]
    rows += [(c, name, "Drug", "RxNorm", "Ingredient", code, "S") for c, (name, code) in KEY_DRUGS.items()]
    rows += [(c, name, "Drug", "RxNorm", "Ingredient", str(c), "S") for c, name in OTHER_DRUGS.items()]
    rows += [(c, m[0], "Measurement", "LOINC", "Lab Test", m[1], "S") for c, m in MEASUREMENTS.items()]
    rows += [(c, name, "Unit", "UCUM", "Unit", str(c), "S") for c, name in UNITS.items()]
    rows += [
        (c, name, "Visit", "Visit", "Visit", code, "S")
        for c, name, code in ((c, n, {9201: "IP", 9202: "OP", 9203: "ER"}[c]) for c, n in VISITS.items())
    ]
    rows += [(c, name, "Gender", "Gender", "Gender", name[0], "S") for c, name in GENDERS.items()]
    return rows


def fill_vocabulary(db: Any) -> None:
    rows = vocabulary_rows()
    db.executemany(
        "INSERT INTO concept (concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, "
        "concept_code, standard_concept, valid_start_date, valid_end_date) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, DATE '1970-01-01', DATE '2099-12-31')",
        [(c, name, dom, voc, cls, code, std) for c, name, dom, voc, cls, code, std in rows],
    )
    db.execute(
        "INSERT INTO concept_ancestor SELECT concept_id, concept_id, 0, 0 FROM concept "
        "WHERE standard_concept = 'S'"
    )
    db.execute(
        "INSERT INTO concept_relationship (concept_id_1, concept_id_2, relationship_id, valid_start_date, "
        "valid_end_date) SELECT concept_id, concept_id, rel, DATE '1970-01-01', DATE '2099-12-31' "
        "FROM concept, (VALUES ('Maps to'), ('Mapped from')) v(rel) WHERE standard_concept = 'S'"
    )


def person_chunks(persons: int, per_person: int) -> Iterator[tuple[int, int]]:
    """[lo, hi) person id ranges of about CHUNK_ROWS rows each."""
    step = max(1, CHUNK_ROWS // per_person)
    for lo in range(1, persons + 1, step):
        yield lo, min(lo + step, persons + 1)


GENERATORS: list[tuple[str, Callable[[int, int], str], int]] = [
    ("person", person_sql, 1),
    ("observation_period", observation_period_sql, 1),
    ("visit_occurrence", visit_sql, EVENTS_PER_PERSON),
    ("condition_occurrence", condition_sql, EVENTS_PER_PERSON),
    ("drug_exposure", drug_sql, EVENTS_PER_PERSON),
    ("measurement", measurement_sql, MEASUREMENTS_PER_PERSON),
]
COUNTED = [g[0] for g in GENERATORS] + ["concept", "concept_ancestor", "concept_relationship"]


def configure(db: Any) -> None:
    db.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    db.execute(f"SET threads = {THREADS}")


def existing_build(path: Path, persons: int) -> float | None:
    """The build's seconds when the file holds a complete build of this size and data version."""
    import duckdb

    if not path.exists():
        return None
    try:
        db = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        row = db.execute("SELECT persons, version, seconds FROM bench_build").fetchone()
    except duckdb.Error:
        row = None
    finally:
        db.close()
    return row[2] if row is not None and tuple(row[:2]) == (persons, DATA_VERSION) else None


def build_warehouse(path: Path, persons: int) -> Any:
    """The warehouse at ``path`` (built, or reused when complete); returns the Ibis backend."""
    from hdhub.warehouse import connect

    built = existing_build(path, persons)
    if built is not None:
        con = connect(f"duckdb:///{path}")
        configure(con.con)
        print(f"reusing {path} ({persons:,} persons, built earlier in {built:.1f} s)")
        return con
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    con = connect(f"duckdb:///{path}")
    db = con.con
    configure(db)
    db.execute(MACROS)
    print(f"building {path} with {persons:,} persons")
    fill_vocabulary(db)
    for table, sql, per_person in GENERATORS:
        t0 = time.perf_counter()
        for lo, hi in person_chunks(persons, per_person):
            db.execute(sql(lo, hi))
            if per_person == MEASUREMENTS_PER_PERSON and persons > CHUNK_ROWS // per_person:
                done = (hi - 1) * per_person
                rate = done / (time.perf_counter() - t0)
                print(f"  {table}: {done:,} rows ({rate:,.0f} rows/s)", flush=True)
        db.execute("CHECKPOINT")
        print(f"  {table}: {time.perf_counter() - t0:.1f} s", flush=True)
    # What a data team runs after a large load: `hdhub warehouse optimize`.
    from hdhub.warehouse.layout import optimize_layout

    t0 = time.perf_counter()
    optimize_layout(
        con, progress=lambda t, rows, s: print(f"  optimize {t}: {rows:,} rows in {s:.1f} s", flush=True)
    )
    print(f"  hdhub warehouse optimize: {time.perf_counter() - t0:.1f} s", flush=True)
    seconds = time.perf_counter() - started
    db.execute("CREATE TABLE bench_build (persons BIGINT, version INTEGER, seconds DOUBLE)")
    db.execute("INSERT INTO bench_build VALUES (?, ?, ?)", [persons, DATA_VERSION, seconds])
    db.execute("CHECKPOINT")
    size = path.stat().st_size / 1e9
    print(f"built in {seconds:.1f} s ({size:.1f} GB on disk)")
    return con


def row_counts(db: Any) -> dict[str, int]:
    return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in COUNTED}


# Queries ---------------------------------------------------------------------------------------

BEFORE_OR_ON_INDEX = {"start": {"direction": "before"}, "end": {"days": 0, "direction": "after"}}
YEAR_BEFORE = {"start": {"days": 365, "direction": "before"}, "end": {"days": 0, "direction": "after"}}


def concept_set(*ids: int) -> dict[str, Any]:
    return {"items": [{"concept_id": i} for i in ids]}


Q1 = {
    "name": "T2DM, HbA1c 7-10 within 30 days, age 40-75",
    "concept_sets": {"t2dm": concept_set(T2DM), "hba1c": concept_set(HBA1C)},
    "entry": {"events": [{"domain": "condition", "concept_set": "t2dm"}], "occurrence": "first"},
    "demographics": {"age": {"min": 40, "max": 75}},
    "inclusion_rules": [
        {
            "name": "HbA1c 7-10 within 30 days",
            "criteria": {
                "type": "all",
                "items": [
                    {
                        "event": {
                            "domain": "measurement",
                            "concept_set": "hba1c",
                            "value": {"min": 7, "max": 10},
                        },
                        "window": {
                            "start": {"days": 30, "direction": "before"},
                            "end": {"days": 30, "direction": "after"},
                        },
                    }
                ],
            },
        }
    ],
}
Q2 = {
    "name": "metformin started after a T2DM diagnosis",
    "concept_sets": {"metformin": concept_set(METFORMIN), "t2dm": concept_set(T2DM)},
    "entry": {"events": [{"domain": "drug", "concept_set": "metformin"}], "occurrence": "first"},
    "inclusion_rules": [
        {
            "name": "T2DM on or before the first metformin",
            "criteria": {
                "type": "all",
                "items": [
                    {"event": {"domain": "condition", "concept_set": "t2dm"}, "window": BEFORE_OR_ON_INDEX}
                ],
            },
        }
    ],
}
Q3 = {
    "name": "hypertension, 3 nested groups",
    "concept_sets": {
        "htn": concept_set(HYPERTENSION),
        "sbp": concept_set(SBP),
        "amlodipine": concept_set(AMLODIPINE),
        "t2dm": concept_set(T2DM),
        "hba1c": concept_set(HBA1C),
        "hf": concept_set(HEART_FAILURE),
    },
    "entry": {"events": [{"domain": "condition", "concept_set": "htn"}], "occurrence": "first"},
    "inclusion_rules": [
        {
            "name": "high BP or amlodipine; diabetic; no heart failure",
            "criteria": {
                "type": "all",
                "items": [
                    {
                        "type": "any",
                        "items": [
                            {
                                "event": {
                                    "domain": "measurement",
                                    "concept_set": "sbp",
                                    "value": {"min": 140},
                                },
                                "window": YEAR_BEFORE,
                            },
                            {"event": {"domain": "drug", "concept_set": "amlodipine"}, "window": YEAR_BEFORE},
                        ],
                    },
                    {
                        "type": "at_least",
                        "count": 1,
                        "items": [
                            {
                                "event": {"domain": "condition", "concept_set": "t2dm"},
                                "window": BEFORE_OR_ON_INDEX,
                            },
                            {
                                "event": {
                                    "domain": "measurement",
                                    "concept_set": "hba1c",
                                    "value": {"min": 6.5},
                                },
                                "window": YEAR_BEFORE,
                            },
                        ],
                    },
                    {
                        "type": "all",
                        "negate": True,
                        "items": [
                            {
                                "event": {"domain": "condition", "concept_set": "hf"},
                                "window": BEFORE_OR_ON_INDEX,
                            }
                        ],
                    },
                ],
            },
        }
    ],
}


def first_in_observation(table: str, id_col: str, concept_col: str, date_col: str, concept: int) -> str:
    """Each person's first event of ``concept`` within an observation period: person_id, s."""
    return f"""idx AS (
    SELECT person_id, s FROM (
        SELECT e.person_id, e.{date_col} AS s,
            row_number() OVER (PARTITION BY e.person_id ORDER BY e.{date_col}, e.{id_col}) AS k
        FROM {table} e JOIN observation_period op ON op.person_id = e.person_id
            AND e.{date_col} BETWEEN op.observation_period_start_date AND op.observation_period_end_date
        WHERE e.{concept_col} = {concept}) f
    WHERE k = 1)"""


def exists_measurement(concept: int, value: str, lo: str, hi: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM measurement m WHERE m.person_id = idx.person_id "
        f"AND m.measurement_concept_id = {concept} AND m.value_as_number {value} "
        f"AND m.measurement_date BETWEEN {lo} AND {hi})"
    )


def exists_condition_before(concept: int) -> str:
    return (
        f"EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = idx.person_id "
        f"AND c.condition_concept_id = {concept} AND c.condition_start_date <= idx.s)"
    )


# The same logic as Q1-Q3, written by hand; valid SQL for DuckDB and PostgreSQL alike.
HAND_SQL = {
    "Q1": f"""
WITH {first_in_observation("condition_occurrence", "condition_occurrence_id", "condition_concept_id",
                           "condition_start_date", T2DM)}
SELECT count(*) FROM idx JOIN person p ON p.person_id = idx.person_id
WHERE extract(year FROM idx.s) - p.year_of_birth BETWEEN 40 AND 75
  AND {exists_measurement(HBA1C, "BETWEEN 7 AND 10", "idx.s - 30", "idx.s + 30")}""",
    "Q2": f"""
WITH {first_in_observation("drug_exposure", "drug_exposure_id", "drug_concept_id",
                           "drug_exposure_start_date", METFORMIN)}
SELECT count(*) FROM idx WHERE {exists_condition_before(T2DM)}""",
    "Q3": f"""
WITH {first_in_observation("condition_occurrence", "condition_occurrence_id", "condition_concept_id",
                           "condition_start_date", HYPERTENSION)}
SELECT count(*) FROM idx
WHERE ({exists_measurement(SBP, ">= 140", "idx.s - 365", "idx.s")}
       OR EXISTS (SELECT 1 FROM drug_exposure d WHERE d.person_id = idx.person_id
                  AND d.drug_concept_id = {AMLODIPINE}
                  AND d.drug_exposure_start_date BETWEEN idx.s - 365 AND idx.s))
  AND ({exists_condition_before(T2DM)}
       OR {exists_measurement(HBA1C, ">= 6.5", "idx.s - 365", "idx.s")})
  AND NOT {exists_condition_before(HEART_FAILURE)}""",
}  # fmt: skip
DEFINITIONS = {"Q1": Q1, "Q2": Q2, "Q3": Q3}


def timed(fn: Callable[[], Any], runs: int = 3) -> tuple[Any, float]:
    """fn's result and its median wall time over ``runs`` runs after one warm-up."""
    result = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def prepare(con: Any, definition: Any) -> str:
    """What count_cohort does before DuckDB runs the query: resolve, compile, generate SQL."""
    return compiled_sql(con, definition, "duckdb", pretty=False)


def compiled_sql(con: Any, definition: Any, dialect: str, pretty: bool = True) -> str:
    """The count's SQL for ``dialect``: concept sets resolved, compiled as a count is."""
    from hdhub.cohorts.compiler import compile_cohort, unbound_tables
    from hdhub.cohorts.concepts import resolve_concept_sets
    from hdhub.cohorts.sql import to_sql

    sets = resolve_concept_sets(con, definition)
    compiled = compile_cohort(definition, sets, unbound_tables(), periods=False)
    return to_sql(compiled.summary(), dialect, pretty=pretty, lists=compiled.lists)


# PostgreSQL ------------------------------------------------------------------------------------

PG_TABLES: dict[str, list[tuple[str, str]]] = {
    "person": [("person_id", "integer"), ("gender_concept_id", "integer"), ("year_of_birth", "integer")],
    "observation_period": [
        ("observation_period_id", "integer"),
        ("person_id", "integer"),
        ("observation_period_start_date", "date"),
        ("observation_period_end_date", "date"),
    ],
    "condition_occurrence": [
        ("condition_occurrence_id", "integer"),
        ("person_id", "integer"),
        ("condition_concept_id", "integer"),
        ("condition_start_date", "date"),
        ("condition_end_date", "date"),
        ("visit_occurrence_id", "integer"),
    ],
    "drug_exposure": [
        ("drug_exposure_id", "integer"),
        ("person_id", "integer"),
        ("drug_concept_id", "integer"),
        ("drug_exposure_start_date", "date"),
        ("drug_exposure_end_date", "date"),
        ("visit_occurrence_id", "integer"),
    ],
    "measurement": [
        ("measurement_id", "integer"),
        ("person_id", "integer"),
        ("measurement_concept_id", "integer"),
        ("measurement_date", "date"),
        ("value_as_number", "double precision"),
        ("visit_occurrence_id", "integer"),
    ],
}
# What a DBA would add: the OMOP DDL's person and concept indexes, made composite with the
# date so a person's events of one concept in a window are one index range.
PG_INDEXES = [
    "ALTER TABLE person ADD PRIMARY KEY (person_id)",
    "CREATE INDEX ON observation_period (person_id)",
    "CREATE INDEX ON condition_occurrence (person_id, condition_concept_id, condition_start_date)",
    "CREATE INDEX ON condition_occurrence (condition_concept_id)",
    "CREATE INDEX ON drug_exposure (person_id, drug_concept_id, drug_exposure_start_date)",
    "CREATE INDEX ON drug_exposure (drug_concept_id)",
    "CREATE INDEX ON measurement (person_id, measurement_concept_id, measurement_date)",
    "CREATE INDEX ON measurement (measurement_concept_id)",
]
PG_SESSION = ["SET work_mem = '256MB'", "SET maintenance_work_mem = '2GB'"]


def load_postgres(db: Any, pg: Any, tmp: Path, max_person: int) -> None:
    """Copy the tables the queries read (persons <= max_person) from DuckDB to PostgreSQL."""
    started = time.perf_counter()
    for table, cols in PG_TABLES.items():
        # Unlogged: the load skips the WAL; reads are the same as for a logged table.
        pg.execute(f"CREATE UNLOGGED TABLE {table} ({', '.join(f'{c} {t}' for c, t in cols)})")
    jobs = []
    for table, cols in PG_TABLES.items():
        per_person = MEASUREMENTS_PER_PERSON if table == "measurement" else EVENTS_PER_PERSON
        for lo, hi in person_chunks(max_person, per_person):
            jobs.append((table, cols, lo, hi))

    def export(job: tuple[str, list[tuple[str, str]], int, int]) -> Path:
        table, cols, lo, hi = job
        out = tmp / f"{table}-{lo}.csv"
        cur = db.cursor()
        try:
            cur.execute(
                f"COPY (SELECT {', '.join(c for c, _ in cols)} FROM {table} WHERE person_id >= {lo} "
                f"AND person_id < {hi}) TO '{out}' (FORMAT csv, HEADER false)"
            )
        finally:
            cur.close()
        return out

    rows_total = 0
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # DuckDB writes the next file while PostgreSQL reads this one (one core each).
        futures = [pool.submit(export, job) for job in jobs[:2]]
        for k, (table, cols, lo, hi) in enumerate(jobs):
            out = futures[k].result()
            if k + 2 < len(jobs):
                futures.append(pool.submit(export, jobs[k + 2]))
            names = ", ".join(c for c, _ in cols)
            with pg.cursor() as cur:
                with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy, out.open("rb") as f:
                    while block := f.read(8 << 20):
                        copy.write(block)
                rows_total += cur.rowcount
            out.unlink()
            elapsed = time.perf_counter() - started
            print(
                f"  PostgreSQL load: {table} persons {lo:,}-{hi - 1:,}; {rows_total:,} rows of all tables "
                f"in {elapsed:.0f} s ({rows_total / elapsed:,.0f} rows/s)",
                flush=True,
            )
    print(f"  PostgreSQL load: {rows_total:,} rows in {time.perf_counter() - started:.1f} s")
    t0 = time.perf_counter()
    for ddl in PG_INDEXES:
        t1 = time.perf_counter()
        pg.execute(ddl)
        print(f"  {ddl}: {time.perf_counter() - t1:.1f} s", flush=True)
    t1 = time.perf_counter()
    pg.execute("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE: {time.perf_counter() - t1:.1f} s")
    print(f"  PostgreSQL indexes + VACUUM ANALYZE: {time.perf_counter() - t0:.1f} s; "
          f"total {time.perf_counter() - started:.1f} s")  # fmt: skip


# Main ------------------------------------------------------------------------------------------


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def run(con: Any, persons: int, skip_postgres: bool, explain: bool, tmp: Path) -> None:
    from hdhub.cohorts.definition import parse_definition
    from hdhub.cohorts.run import _cohort_sql, count_cohort

    db = con.con
    definitions = {q: parse_definition(d) for q, d in DEFINITIONS.items()}
    results: dict[str, dict[str, Any]] = {q: {} for q in definitions}
    print(f"\nDuckDB (median of 3 after a warm-up; load average {load()})")
    for q, d in definitions.items():
        r = results[q]
        counts, r["compiled"] = timed(lambda d=d: count_cohort(con, d, breakdowns=False))

        def cold(d: Any = d) -> Any:  # a new question: the SQL is compiled first
            _cohort_sql.cache_clear()
            return count_cohort(con, d, breakdowns=False)

        _, r["cold"] = timed(cold)
        r["persons"] = counts.persons
        r["hand_count"], r["hand"] = timed(lambda q=q: int(db.execute(HAND_SQL[q]).fetchone()[0]))
        sql = compiled_sql(con, d, "duckdb")
        _, r["compiled_raw"] = timed(lambda sql=sql: db.execute(sql).fetchone())
        _, r["python"] = timed(lambda d=d: prepare(con, d))
        attrition = ", ".join(
            f"rule {k}: met {x.met:,}, remaining {x.remaining:,}" for k, x in enumerate(counts.rules)
        )
        print(f"  {q} {d.name}: entry {counts.entry:,}; {attrition}; persons {counts.persons:,}")
        print(
            f"     compiled (count_cohort) {r['compiled']:.3f} s asked again, {r['cold']:.3f} s asked first; "
            f"its SQL alone {r['compiled_raw']:.3f} s; "
            f"Python side alone (resolve sets, compile, generate SQL) {r['python']:.3f} s; "
            f"hand-written {r['hand']:.3f} s ({r['hand_count']:,} persons)"
        )
        assert r["hand_count"] == counts.persons, (q, r["hand_count"], counts.persons)
        if explain:
            plan = db.execute("EXPLAIN ANALYZE " + sql).fetchall()
            print(plan[0][1])

    compile_scaling(con, definitions)
    pg_note = ""
    if not skip_postgres:
        pg_note = run_postgres(con, persons, definitions, results, tmp)

    print(f"\n{persons:,} persons; {row_counts(db)['measurement']:,} measurement rows; seconds, median of 3")
    print(f"load average {load()} (other processes on the machine make timings noisy)")
    head = (
        f"{'query':5} {'persons':>8} {'hdhub, again':>12} {'hdhub, first':>12} {'hand DuckDB':>12} "
        f"{'ratios':>12} {'hand PG':>8} {'hdhub SQL PG':>13}  "
        f"targets (<= {TARGET_SECONDS} s, <= {TARGET_RATIO}x hand)"
    )
    print(head)
    print("-" * len(head))
    for q, r in results.items():
        again, first = r["compiled"] / r["hand"], r["cold"] / r["hand"]
        worst = max(r["compiled"], r["cold"])
        ok_time = worst <= TARGET_SECONDS
        verdict = (
            f"time {'met' if ok_time else 'NOT met'}; "
            f"ratio asked again {'met' if again <= TARGET_RATIO else 'NOT met'}, "
            f"asked first {'met' if first <= TARGET_RATIO else 'NOT met'}"
        )
        print(
            f"{q:5} {r['persons']:>8,} {r['compiled']:>12.3f} {r['cold']:>12.3f} {r['hand']:>12.3f} "
            f"{again:>5.2f}/{first:.2f}x {fmt(r.get('pg_hand')):>8} {fmt(r.get('pg_compiled')):>13}  "
            f"{verdict}"
        )
    if pg_note:
        print(pg_note)


SET_GROWTH = (0, 1_000, 10_000)


def compile_scaling(con: Any, definitions: dict[str, Any]) -> None:
    """Compile time (concept sets resolved, Ibis expression built, SQL generated with its id
    lists) with every concept set grown by ``n`` ids, as real vocabularies make them (type 2
    diabetes and its descendants in SNOMED: hundreds; a drug class in RxNorm: thousands)."""
    from hdhub.cohorts.compiler import compile_cohort, unbound_tables
    from hdhub.cohorts.concepts import ResolvedSet, resolve_concept_sets
    from hdhub.cohorts.sql import to_sql

    print("\nCompiling with larger concept sets (median of 5, ms; the ids added match no row)")
    for q, d in definitions.items():
        sets = resolve_concept_sets(con, d)
        cells = []
        for n in SET_GROWTH:
            grown = {k: ResolvedSet(v.standard | frozenset(range(2_000_000_000, 2_000_000_000 + n)), v.source)
                     for k, v in sets.items()}  # fmt: skip

            def make(d: Any = d, grown: dict[str, Any] = grown) -> str:
                compiled = compile_cohort(d, grown, unbound_tables(), periods=False)  # as a count does
                return to_sql(compiled.summary(), "duckdb", pretty=False, lists=compiled.lists)

            _, seconds = timed(make, runs=5)
            cells.append(f"+{n:,} ids/set {1000 * seconds:.0f}")
        print(f"  {q} ({len(sets)} sets): " + ", ".join(cells))


def run_postgres(con: Any, persons: int, definitions: dict[str, Any], results: dict[str, dict[str, Any]],
                 tmp: Path) -> str:  # fmt: skip
    import psycopg

    from hdhub.catalog.scratch import scratch_database

    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        print(f"\nPostgreSQL skipped: {exc}")
        return "PostgreSQL: not reachable, skipped"
    print("\nPostgreSQL 15 (same data, UNLOGGED tables, DBA indexes, VACUUM ANALYZE; "
          + "; ".join(PG_SESSION) + ")")  # fmt: skip
    max_person = persons
    note = ""
    with (
        scratch_database("hdhub_bench") as url,
        psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as pg,
    ):
        for s in PG_SESSION:
            pg.execute(s)
        t0 = time.perf_counter()
        load_postgres(con.con, pg, tmp, max_person)
        if time.perf_counter() - t0 > PG_BUDGET_SECONDS:
            took = time.perf_counter() - t0
            note = f"(PostgreSQL took {took:.0f} s to load, over the {PG_BUDGET_SECONDS} s budget)"
        for q, d in definitions.items():
            r = results[q]
            hand_count, r["pg_hand"] = timed(lambda q=q: int(pg.execute(HAND_SQL[q]).fetchone()[0]))
            sql = compiled_sql(con, d, "postgres")
            row, r["pg_compiled"] = timed(lambda sql=sql: pg.execute(sql).fetchone())
            compiled_count = int(row[-1])
            print(
                f"  {q}: hand-written {r['pg_hand']:.3f} s ({hand_count:,} persons), "
                f"compiled SQL {r['pg_compiled']:.3f} s ({compiled_count:,} persons)",
                flush=True,
            )
            assert hand_count == compiled_count == r["persons"], (q, hand_count, compiled_count, r["persons"])
    return note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--dir", type=Path, help="keep (and reuse) the DuckDB warehouse here")
    parser.add_argument("--explain", action="store_true", help="DuckDB's EXPLAIN ANALYZE of the compiled SQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hdhub-cohorts-") as tmp:
        root = args.dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        con = build_warehouse(root / f"cohorts-{args.persons}.duckdb", args.persons)
        counts = row_counts(con.con)
        print("rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        print(f"total {sum(counts.values()):,} rows")
        run(con, args.persons, args.skip_postgres, args.explain, Path(tmp))
        con.disconnect()


if __name__ == "__main__":
    main()
