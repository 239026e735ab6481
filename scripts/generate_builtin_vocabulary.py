"""Write hdhub's built-in vocabulary: the OMOP concepts of the codes `hdhub synth` uses.

    python scripts/generate_builtin_vocabulary.py VOCAB_DIR

VOCAB_DIR is an OMOP vocabulary (an OHDSI Athena download, or the vocabulary tables of
an OMOP CDM sample such as OHDSI's Eunomia "Synthea27Nj": CONCEPT, CONCEPT_RELATIONSHIP,
VOCABULARY, DOMAIN, CONCEPT_CLASS, RELATIONSHIP; .csv or .csv.gz, comma or tab). The
script keeps the generator's codes (by FHIR system -> OMOP vocabulary), their "Maps to"
targets, the UCUM units, and the visit, gender and type concepts the FHIR mapping uses,
and writes them as CSV files under src/hdhub/warehouse/builtin_vocabulary/, which
`hdhub vocab load --builtin` loads. Codes absent from VOCAB_DIR are listed and stay
unmapped (concept 0) until a fuller vocabulary is loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

from hdhub.ingest.fhir.mapping import SYSTEMS
from hdhub.synth import codes

OUT = Path(__file__).resolve().parents[1] / "src" / "hdhub" / "warehouse" / "builtin_vocabulary"
FIXED = [0, 8507, 8532, 9201, 9202, 9203, 581476, 5083, 32817, 32838, 32818, 32865, 32678]
# Athena CONCEPT rows every OMOP CDM uses, added when VOCAB_DIR lacks them (the Eunomia
# sample does): "no matching concept", the two genders, and the EHR type concepts.
CORE = [
    ("0", "No matching concept", "Metadata", "None", "Undefined", "", "No matching concept", "1970-01-01", "2099-12-31"),
    ("8507", "MALE", "Gender", "Gender", "Gender", "S", "M", "1970-01-01", "2099-12-31"),
    ("8532", "FEMALE", "Gender", "Gender", "Gender", "S", "F", "1970-01-01", "2099-12-31"),
    ("32817", "EHR", "Type Concept", "Type Concept", "Type Concept", "S", "OMOP4976890", "2020-08-20", "2099-12-31"),
    # The type concepts the FHIR mapping uses for drugs (same release of the Type Concept vocabulary).
    ("32818", "EHR administration record", "Type Concept", "Type Concept", "Type Concept", "S", "OMOP4976891", "2020-08-20", "2099-12-31"),
    ("32838", "EHR prescription", "Type Concept", "Type Concept", "Type Concept", "S", "OMOP4976911", "2020-08-20", "2099-12-31"),
]  # fmt: skip


def wanted() -> list[tuple[str, str]]:
    pairs = [(SYSTEMS[s], c) for s, c, *_ in codes.CONDITIONS + codes.MEDICATIONS + codes.PROCEDURES]
    pairs += [("LOINC", lab[0]) for lab in codes.LABS + codes.VITALS]
    pairs += [("LOINC", kind[2]) for kind in codes.VISIT_KINDS]
    pairs += [("UCUM", lab[2]) for lab in codes.LABS + codes.VITALS]
    return sorted(set(pairs))


def find(directory: Path, table: str) -> str | None:
    for suffix in (".csv", ".csv.gz", ".tsv", ".tsv.gz"):
        if (directory / f"{table}{suffix}").exists():
            return str(directory / f"{table}{suffix}")
    return None


def main() -> None:
    src = Path(sys.argv[1])
    db = duckdb.connect()
    for table in ("CONCEPT", "CONCEPT_RELATIONSHIP", "VOCABULARY", "DOMAIN", "CONCEPT_CLASS", "RELATIONSHIP"):
        path = find(src, table)
        if path is None:
            sys.exit(f"{src}: no {table} file")
        db.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', all_varchar = true, header = true)"
        )
    db.executemany(
        "INSERT INTO concept SELECT ?, ?, ?, ?, ?, nullif(?, ''), ?, ?, ?, NULL "
        "WHERE ? NOT IN (SELECT concept_id FROM concept)",
        [[*row, row[0]] for row in CORE],
    )
    pairs = wanted()
    db.execute("CREATE TABLE wanted (vocabulary_id VARCHAR, concept_code VARCHAR)")
    db.executemany("INSERT INTO wanted VALUES (?, ?)", pairs)
    fixed = ", ".join(f"'{i}'" for i in FIXED)
    db.execute(
        "CREATE TABLE keep AS SELECT c.concept_id FROM concept c JOIN wanted w USING (vocabulary_id, concept_code) "
        f"UNION SELECT concept_id FROM concept WHERE concept_id IN ({fixed})"
    )
    db.execute(
        "INSERT INTO keep SELECT DISTINCT concept_id_2 FROM concept_relationship WHERE relationship_id = 'Maps to' "
        "AND concept_id_1 IN (SELECT concept_id FROM keep) AND concept_id_2 NOT IN (SELECT concept_id FROM keep) "
        "AND concept_id_2 IN (SELECT concept_id FROM concept)"  # a sample may lack the target
    )
    missing = db.execute(
        "SELECT vocabulary_id, concept_code FROM wanted EXCEPT SELECT vocabulary_id, concept_code FROM concept "
        "ORDER BY 1, 2"
    ).fetchall()
    OUT.mkdir(parents=True, exist_ok=True)
    queries = {
        "CONCEPT": "SELECT * FROM concept WHERE concept_id IN (SELECT concept_id FROM keep)",
        "CONCEPT_RELATIONSHIP": "SELECT * FROM concept_relationship WHERE concept_id_1 IN (SELECT concept_id FROM keep)"
        " AND concept_id_2 IN (SELECT concept_id FROM keep)",
        "VOCABULARY": "SELECT * FROM vocabulary WHERE vocabulary_id IN (SELECT vocabulary_id FROM concept "
        "WHERE concept_id IN (SELECT concept_id FROM keep))",
        "DOMAIN": "SELECT * FROM domain",
        "CONCEPT_CLASS": "SELECT * FROM concept_class",
        "RELATIONSHIP": "SELECT * FROM relationship",
    }
    for table, query in queries.items():
        target = OUT / (table + ".csv")
        target.unlink(missing_ok=True)
        if db.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]:  # type: ignore[index]
            db.execute(f"COPY ({query} ORDER BY ALL) TO '{target}' (HEADER, DELIMITER ',')")
    n = db.execute("SELECT count(*) FROM keep").fetchone()[0]  # type: ignore[index]
    print(f"{n} concepts written to {OUT}; {len(missing)} of {len(pairs)} codes not in {src}:")
    for vocabulary, code in missing:
        print(f"  {vocabulary} {code}")


if __name__ == "__main__":
    main()
