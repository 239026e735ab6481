from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.errors import NotFound, ValidationError
from hdhub.hub import Hub
from hdhub.ingest.omop_csv import load_omop_csv
from hdhub.warehouse import connect

runner = CliRunner()
PERSON_HEADER = (
    "person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id,person_source_value"
)


def counts(con: object) -> dict[str, int]:
    db = con.con  # type: ignore[attr-defined]
    return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in con.list_tables()}  # type: ignore[attr-defined]


def csv_records(path: Path) -> int:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


@pytest.fixture
def con(tmp_path: Path) -> object:
    c = connect(f"duckdb:///{tmp_path}/w.duckdb")
    yield c
    c.disconnect()


def write(directory: Path, name: str, text: str, *, gz: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if gz:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


# --- the sample export ------------------------------------------------------------------


@pytest.mark.integration
def test_sample_loads_with_counts_equal_to_the_csv(con: object, shared_data: Path) -> None:
    src = shared_data / "omop-synthea27nj"
    report = load_omop_csv(con, src)
    expected = {p.name.lower().removesuffix(".csv.gz"): csv_records(p) for p in src.glob("*.csv.gz")}
    assert report.rows == expected
    assert report.rows["person"] == 28 and report.rows["measurement"] == 10_040
    got = counts(con)
    assert all(got[t] == n for t, n in expected.items())


@pytest.mark.integration
def test_corrupt_copy_changes_nothing_and_names_the_line(
    con: object, shared_data: Path, tmp_path: Path
) -> None:
    """Must show: a second load of a corrupt copy (one bad date) changes nothing and names the line."""
    src = shared_data / "omop-synthea27nj"
    load_omop_csv(con, src)
    before = counts(con)
    bad = tmp_path / "corrupt"
    shutil.copytree(src, bad)
    with gzip.open(src / "MEASUREMENT.csv.gz", "rt", encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    lines[5000] = lines[5000].replace(lines[5000].split(",")[3], "2019-02-30", 1)  # measurement_date
    with gzip.open(bad / "MEASUREMENT.csv.gz", "wt", encoding="utf-8", newline="") as fh:
        fh.write("\n".join(lines))
    with pytest.raises(ValidationError) as err:
        load_omop_csv(con, bad, replace=True)
    assert str(err.value) == (
        "MEASUREMENT.csv.gz, line 5001, column measurement_date: '2019-02-30' is not a valid date"
    )
    assert counts(con) == before


@pytest.mark.integration
def test_cli_ingest_report_and_failure_line(shared_data: Path, tmp_path: Path, local_hub: Hub) -> None:
    home = str(local_hub.settings.home)
    local_hub.close()
    r = runner.invoke(app, ["--home", home, "ingest", "omop", str(shared_data / "omop-synthea27nj")])
    assert r.exit_code == 0, r.output
    assert "measurement" in r.output and "10,040" in r.output
    bad = tmp_path / "bad"
    write(bad, "PERSON.csv", PERSON_HEADER + "\n1,8507,19x8,0,0,a\n")
    r = runner.invoke(app, ["--home", home, "ingest", "omop", str(bad)])
    assert r.exit_code == 65
    assert "PERSON.csv, line 2, column year_of_birth: '19x8' is not a valid integer" in r.output
    assert "Traceback" not in r.output
    hub = Hub.open(home)
    assert [e.outcome for e in hub.audit.search(action="warehouse.load")] == ["failure", "success"]
    hub.close()


# --- small hand-made files -------------------------------------------------------------


def test_case_insensitive_names_plain_and_gzip(con: object, tmp_path: Path) -> None:
    d = tmp_path / "x"
    write(d, "Person.CSV", PERSON_HEADER + "\n1,8507,1970,0,0,a\n2,8532,1980,0,0,b\n")
    write(
        d,
        "observation_period.csv.gz",
        "observation_period_id,person_id,observation_period_start_date,"
        "observation_period_end_date,period_type_concept_id\n1,1,20200101,2020-12-31,32817\n",
        gz=True,
    )
    report = load_omop_csv(con, d)
    assert report.rows == {"person": 2, "observation_period": 1}
    got = con.con.execute("SELECT observation_period_start_date::VARCHAR FROM observation_period").fetchone()
    assert got == ("2020-01-01",)  # YYYYMMDD (Athena style) is accepted


def test_quoted_newlines_keep_physical_line_numbers(con: object, tmp_path: Path) -> None:
    header = (
        "note_id,person_id,note_date,note_type_concept_id,note_class_concept_id,note_title,note_text,"
        "encoding_concept_id,language_concept_id"
    )
    body = '1,1,2020-01-01,0,0,t,"line one\nline two\nline three",0,0\n2,1,2020-13-01,0,0,t,x,0,0\n'
    d = tmp_path / "n"
    write(d, "NOTE.csv", header + "\n" + body)
    with pytest.raises(ValidationError, match=r"NOTE.csv, line 5, column note_date: '2020-13-01'"):
        load_omop_csv(con, d)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"PATIENTS.csv": "a\n1\n"}, "PATIENTS.csv: 'patients' is not an OMOP CDM 5.4 table"),
        ({"person.parquet": "x"}, "not an OMOP CSV file"),
        (
            {"PERSON.csv": PERSON_HEADER + ",shoe_size\n1,8507,1970,0,0,a,42\n"},
            "PERSON.csv, line 1, column 'shoe_size': not a column of OMOP table person",
        ),
        (
            {"PERSON.csv": "person_id,gender_concept_id\n1,8507\n"},
            "PERSON.csv, line 1: required column 'year_of_birth' is missing",
        ),
        (
            {"PERSON.csv": PERSON_HEADER + "\n1,8507,,0,0,a\n"},
            "PERSON.csv, line 2, column year_of_birth: a value is required",
        ),
        (
            {"PERSON.csv": PERSON_HEADER + "\n1,8507,1970,0,0," + "z" * 51 + "\n"},
            "column person_source_value: 'zzzz",
        ),
        (
            {"PERSON.csv": PERSON_HEADER + "\n1,8507,1970,0,0,a\n2,8507,1970,0,0,b\n1,8507,1970,0,0,c\n"},
            "PERSON.csv, line 4, column person_id: 1 duplicate primary key",
        ),
        ({"PERSON.csv": PERSON_HEADER + "\n1,8507,1970,0,0\n"}, "PERSON.csv: cannot parse as CSV"),
        ({"PERSON.csv": ""}, "PERSON.csv: empty file"),
        ({"PERSON.csv": PERSON_HEADER + "\n1,8507,99999999999,0,0,a\n"}, "is not a valid integer"),
        ({"PERSON.csv": PERSON_HEADER + ",person_id\n1,8507,1970,0,0,a,1\n"}, "appears twice"),
    ],
)
def test_bad_exports_are_refused_and_store_nothing(
    con: object, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    d = tmp_path / "bad"
    write(d, "CARE_SITE.csv", "care_site_id,care_site_name\n1,Hôpital Nord\n")
    for name, text in files.items():
        write(d, name, text)
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_omop_csv(con, d)
    assert counts(con)["care_site"] == 0 and counts(con)["person"] == 0


def test_binary_garbage_is_refused(con: object, tmp_path: Path) -> None:
    d = tmp_path / "g"
    d.mkdir()
    (d / "PERSON.csv.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 40)
    with pytest.raises(ValidationError):
        load_omop_csv(con, d)
    (d / "PERSON.csv.gz").unlink()
    (d / "PERSON.csv").write_bytes(PERSON_HEADER.encode() + b"\n" + bytes(range(256)) * 40)
    with pytest.raises(ValidationError):
        load_omop_csv(con, d)
    assert counts(con)["person"] == 0


def test_append_collision_and_replace(con: object, tmp_path: Path) -> None:
    d = tmp_path / "p"
    write(d, "PERSON.csv", PERSON_HEADER + "\n1,8507,1970,0,0,a\n")
    load_omop_csv(con, d)
    with pytest.raises(
        ValidationError, match="line 2, column person_id: 1 primary key already in table person"
    ):
        load_omop_csv(con, d)
    write(d, "PERSON.csv", PERSON_HEADER + "\n7,8507,1970,0,0,a\n8,8532,1971,0,0,b\n")
    load_omop_csv(con, d, replace=True)
    assert con.con.execute("SELECT list(person_id ORDER BY person_id) FROM person").fetchone()[0] == [7, 8]


def test_missing_or_empty_directory(con: object, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_omop_csv(con, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "LICENSE").write_text("Apache")
    with pytest.raises(ValidationError, match="no OMOP CSV files"):
        load_omop_csv(con, tmp_path / "empty")
