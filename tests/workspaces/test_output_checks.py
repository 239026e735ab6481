"""The airlock's automatic disclosure checks: frequency and magnitude tables, other files, hostile input."""

from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from hdhub.errors import PayloadTooLarge, ValidationError
from hdhub.workspaces import output_checks as oc
from hdhub.workspaces.output_checks import (
    MAX_COLUMNS,
    MAX_RELEASE_BYTES,
    MAX_ROWS,
    Rules,
    check_bytes,
    summarise,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


def csv_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pcsv.write_csv(table, buf)
    return buf.getvalue()


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def outcome(result: oc.FileCheck, rule: str) -> str:
    found = [c.outcome for c in result.checks if c.rule == rule]
    assert len(found) == 1, (rule, result.to_json())
    return found[0]


def check(result: oc.FileCheck, rule: str) -> oc.CheckResult:
    return next(c for c in result.checks if c.rule == rule)


def rules_of(result: oc.FileCheck) -> set[str]:
    return {c.rule for c in result.checks}


def microdata(groups: dict[str, list[float]]) -> pa.Table:
    g, v = [], []
    for name, values in groups.items():
        g += [name] * len(values)
        v += values
    return pa.table({"region": g, "hba1c": v, "person_id": list(range(len(g)))})


# ---------------------------------------------------------------------------------------
# Frequency tables


def test_a_frequency_table_with_large_cells_passes() -> None:
    r = check_bytes("freq.csv", b"region,sexe,n\nNord,F,12\nNord,M,10\nSud,F,250\nSud,M,31\n")
    assert r.status == "pass" and r.kind == "frequency"
    assert outcome(r, "format") == "pass" and outcome(r, "threshold") == "pass"
    assert "4 rows x 3 columns" in check(r, "format").detail


def test_a_cell_of_3_fails_and_is_named() -> None:
    r = check_bytes("freq.csv", b"region,sexe,n\nNord,F,12\nNord,M,3\nSud,F,250\n")
    assert r.status == "fail"
    threshold = check(r, "threshold")
    assert threshold.outcome == "fail" and "1 cell below the threshold of 10" in threshold.detail
    (cell,) = threshold.cells
    assert (cell.row, cell.column, cell.value) == (2, "n", "3")
    assert cell.label == "region=Nord; sexe=M"


def test_the_threshold_is_a_minimum_count_and_configurable() -> None:
    data = b"g,count\na,10\nb,9\n"
    r = check_bytes("t.csv", data)
    assert [c.row for c in check(r, "threshold").cells] == [2]
    assert check_bytes("t.csv", data, Rules(threshold=5)).status == "pass"
    assert check_bytes("t.csv", data, Rules(threshold=11)).status == "fail"


def test_zeros_fail_only_when_disclosive() -> None:
    data = b"g,effectif\na,0\nb,40\n"
    r = check_bytes("t.csv", data)
    assert r.status == "pass" and outcome(r, "zeros") == "pass" and outcome(r, "threshold") == "pass"
    r = check_bytes("t.csv", data, Rules(zeros_disclosive=True))
    assert r.status == "fail" and outcome(r, "zeros") == "fail"
    assert [(c.row, c.value) for c in check(r, "zeros").cells] == [(1, "0")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "missing"), ("NA", "missing"), ("beaucoup", "not a number"), ("12.5", "not a whole number"),
     ("-12", "negative"), ("<10", "not a number")],
)  # fmt: skip
def test_a_count_that_is_not_a_whole_number_fails_with_its_reason(value: str, reason: str) -> None:
    r = check_bytes("t.csv", f"g,n\na,{value}\nb,40\n".encode())
    assert r.status == "fail"
    counts = check(r, "counts")
    assert counts.outcome == "fail" and f"1 count {reason}" in counts.detail
    assert [c.row for c in counts.cells] == [1]


def test_failing_cells_are_listed_up_to_20_and_counted() -> None:
    rows = "".join(f"g{i},{i % 9 + 1}\n" for i in range(45))
    r = check_bytes("t.csv", f"g,n\n{rows}".encode())
    threshold = check(r, "threshold")
    assert "45 cells below" in threshold.detail and "first 20 listed" in threshold.detail
    assert len(threshold.cells) == 20 and threshold.cells[0].row == 1


def test_semicolon_csv_from_french_excel_with_bom_crlf_and_decimal_commas() -> None:
    text = "\ufeffRégion;Effectif;Pourcentage\r\nÎle-de-France;120;60,0\r\nBretagne;80;40,0\r\n"
    r = check_bytes("tableau.csv", text.encode("utf-8"))
    assert "separator semicolon, decimal comma accepted" in check(r, "format").detail
    # the percentages are the cells' shares of the count total: nothing more is revealed
    assert r.status == "pass", r.to_json()
    bad = "Région;Effectif\r\nBretagne;3\r\nNord;12,5\r\n"
    r = check_bytes("tableau.csv", bad.encode())
    assert outcome(r, "threshold") == "fail" and "1 count not a whole number" in check(r, "counts").detail


def test_old_line_endings_and_quoted_headers_are_read() -> None:
    assert check_bytes("t.csv", b"g,n\ra,12\rb,13\r").status == "pass"
    r = check_bytes("t.csv", b'"region\n(name)",n\nNord,12\n')
    assert r.status == "pass" and "1 rows x 2 columns" in check(r, "format").detail


def test_tab_separated_and_parquet_frequency_tables() -> None:
    assert check_bytes("t.tsv", b"g\tn\na\t12\nb\t4\n").status == "fail"
    table = pa.table({"region": ["a", "b"], "n": pa.array([12, 4], pa.int32())})
    r = check_bytes("t.parquet", parquet_bytes(table))
    assert r.status == "fail" and check(r, "threshold").cells[0].label == "region=b"
    table = pa.table({"region": ["a", "b"], "n": [12.0, float("nan")]})
    assert "1 count missing" in check(check_bytes("t.parquet", parquet_bytes(table)), "counts").detail


def test_columns_the_rules_cannot_judge_go_to_review() -> None:
    cases = {
        b"g,n,deaths\na,12,3\n": "columns",  # a number that is not named as a count
        b"g,n,deaths\na,12,<5\nb,30,12\n": "columns",  # numbers mixed with text
        b"person_id,n\n1,12\n": "identifiers",
        b"g,n,max_age\na,12,90\n": "extremes",  # one person's value
        b"g,n,pct_diabetic\na,100,3\nb,100,50\n": "percentages",  # 3 % of 100: three people
        b"g,value\na,12\n": "counts",  # no count column
    }
    for data, rule in cases.items():
        r = check_bytes("t.csv", data)
        assert r.status == "review" and outcome(r, rule) == "review", (data, r.to_json())


def test_category_columns_may_be_numbers() -> None:
    for data in (
        b"year,n\n2019,12\n2020,15\n",
        b"condition_concept_id,n\n201826,12\n",
        b"dept,n\n75,12\n2A,14\n",
    ):
        assert check_bytes("t.csv", data).status == "pass", data


def test_several_counts_in_one_table_are_all_checked() -> None:
    r = check_bytes("t.csv", b"region,n_hommes,n_femmes\nNord,12,4\n")
    assert r.status == "fail"
    thresholds = [c for c in r.checks if c.rule == "threshold"]
    assert [c.outcome for c in thresholds] == ["pass", "fail"]
    assert [cell.column for cell in thresholds[1].cells] == ["n_femmes"]


# ---------------------------------------------------------------------------------------
# Magnitude tables


def test_a_magnitude_table_from_summarise_passes_as_csv_and_parquet() -> None:
    rows = microdata({"Nord": [6.0 + i / 10 for i in range(15)], "Sud": [7.0 + i / 5 for i in range(12)]})
    table = summarise(rows, ["region"], "hba1c")
    assert table.column_names == ["region", "n", "hba1c_mean", "top1", "top2", "total"]
    nord = table.to_pylist()[0]
    assert nord["n"] == 15 and nord["top1"] == pytest.approx(7.4) and nord["top2"] == pytest.approx(7.3)
    assert nord["total"] == pytest.approx(sum(6.0 + i / 10 for i in range(15)))
    assert nord["hba1c_mean"] == pytest.approx(nord["total"] / 15)
    for name, data in (("m.csv", csv_bytes(table)), ("m.parquet", parquet_bytes(table))):
        r = check_bytes(name, data)
        assert r.status == "pass" and r.kind == "magnitude", r.to_json()
        assert {"threshold", "dominance", "p_percent"} <= rules_of(r)


def test_dominance_fails_when_one_contributor_has_95_percent() -> None:
    values = [95.0] + [5.0 / 11] * 11  # 12 contributors, the first holds 95 % of the total
    rows = microdata({"Nord": values, "Sud": [10.0 + i for i in range(12)]})
    r = check_bytes("m.csv", csv_bytes(summarise(rows, ["region"], "hba1c", agg="sum")))
    assert r.status == "fail" and outcome(r, "threshold") == "pass"
    dominance = check(r, "dominance")
    assert dominance.outcome == "fail" and "more than 90% of the total" in dominance.detail
    (cell,) = dominance.cells
    assert (cell.row, cell.column, cell.label) == (1, "hba1c_sum", "region=Nord")


def test_the_p_percent_rule_fails_when_the_rest_is_less_than_10_percent_of_the_largest() -> None:
    # total - top1 - top2 = 5 < 10 % of 60: the second largest contributor could estimate the largest.
    data = b"g,n,mean,top1,top2,total\na,12,8.33,60,35,100\nb,12,8.33,20,15,100\n"
    # With n = 2 and k = 90 % a p % failure is also a dominance failure; raise k to see p % alone.
    r = check_bytes("m.csv", data, Rules(dominance_k=0.99))
    assert outcome(r, "dominance") == "pass" and outcome(r, "p_percent") == "fail" and r.status == "fail"
    assert [(c.row, c.label) for c in check(r, "p_percent").cells] == [(1, "g=a")]
    assert outcome(check_bytes("m.csv", data), "dominance") == "fail"


def test_a_magnitude_table_without_contributor_columns_needs_review_and_says_what_to_add() -> None:
    r = check_bytes("m.csv", b"region,n,mean_age,sd_age\nNord,120,54.3,12.1\nSud,80,61.0,10.4\n")
    assert r.status == "review" and r.kind == "magnitude"
    magnitude = check(r, "magnitude")
    assert magnitude.outcome == "review" and "add top1, top2, total" in magnitude.detail
    assert "mean_age, sd_age" in magnitude.detail and outcome(r, "threshold") == "pass"
    # a small n still fails: the threshold rule needs no contributor columns
    assert check_bytes("m.csv", b"region,n,mean_age\nNord,4,54.3\n").status == "fail"


def test_negative_or_missing_values_in_a_magnitude_table_go_to_review() -> None:
    data = b"g,n,mean,top1,top2,total\na,12,,5,4,100\nb,12,-3,5,4,100\nc,0,,0,0,0\nd,12,8,10,9,100\n"
    r = check_bytes("m.csv", data)
    assert r.status == "review"
    assert [c.row for c in check(r, "missing").cells] == [1]  # an empty cell (n = 0) has no mean
    assert [c.row for c in check(r, "negative").cells] == [2]
    assert outcome(r, "dominance") == "pass" and "1 checked cell" in check(r, "dominance").detail


def test_contradictory_contributor_statistics_fail() -> None:
    data = b"g,n,mean,top1,top2,total\na,12,5,50,60,200\nb,12,5,90,20,100\nc,1,5,5,4,100\n"
    r = check_bytes("m.csv", data)
    assert r.status == "fail"
    assert [c.row for c in check(r, "contributors").cells] == [1, 2, 3]


def test_summarise_counts_individuals_not_rows_with_unit() -> None:
    # Nord: 12 people, one of them with 30 rows: per person, they dominate the total.
    rows = pa.table(
        {
            "region": ["Nord"] * 41,
            "value": [1.0] * 41,
            "person_id": [0] * 30 + list(range(1, 12)),
        }
    )
    by_row = summarise(rows, ["region"], "value").to_pylist()[0]
    by_person = summarise(rows, ["region"], "value", unit="person_id").to_pylist()[0]
    assert by_row["n"] == 41 and by_row["top1"] == 1.0
    assert by_person["n"] == 12 and by_person["top1"] == 30.0 and by_person["total"] == 41.0
    assert by_person["value_mean"] == 1.0
    assert summarise(rows, ["region"], unit="person_id").to_pylist() == [{"region": "Nord", "n": 12}]


def test_summarise_takes_pandas_and_handles_missing_values_and_no_grouping() -> None:
    frame = pd.DataFrame({"g": ["a", "a", "a", "b"], "v": [1.0, None, 3.0, None]})
    out = summarise(frame, ["g"], "v", agg="median").to_pylist()
    assert out == [
        {"g": "a", "n": 2, "v_median": 2.0, "top1": 3.0, "top2": 1.0, "total": 4.0},
        {"g": "b", "n": 0, "v_median": None, "top1": 0.0, "top2": 0.0, "total": 0.0},
    ]
    assert summarise(frame, [], "v", agg="sum").to_pylist() == [
        {"n": 2, "v_sum": 4.0, "top1": 3.0, "top2": 1.0, "total": 4.0}
    ]
    assert summarise(frame, ["g"]).to_pylist() == [{"g": "a", "n": 3}, {"g": "b", "n": 1}]


def test_summarise_handles_hostile_column_names_as_identifiers() -> None:
    rows = pa.table({'re"gion; DROP TABLE x': ["a"] * 12, "v": [float(i) for i in range(12)]})
    out = summarise(rows, ['re"gion; DROP TABLE x'], "v", top=3)
    assert out.column_names == ['re"gion; DROP TABLE x', "n", "v_mean", "top1", "top2", "top3", "total"]
    assert out.to_pylist()[0]["top3"] == 9.0


@pytest.mark.parametrize(
    "kwargs",
    [{"by": ["nope"]}, {"by": ["g"], "value": "nope"}, {"by": ["g"], "value": "v", "agg": "max"},
     {"by": ["g"], "value": "g"}, {"by": ["g", "g"]}, {"by": ["n"], "value": "v"}],
)  # fmt: skip
def test_summarise_refuses_bad_arguments(kwargs: dict) -> None:
    rows = pa.table({"g": ["a"], "v": [1.0], "n": [1]})
    with pytest.raises(ValidationError):
        summarise(rows, **kwargs)


# ---------------------------------------------------------------------------------------
# Other files, the record of a check


def test_a_png_needs_review() -> None:
    r = check_bytes("figure.png", PNG)
    assert r.status == "review" and r.kind == "not_a_table"
    assert check(r, "table").detail == "not a table (PNG image): a reviewer must read it"
    for name in ("notes.txt", "report.pdf", "model.pkl", "results.xlsx", "README"):
        assert check_bytes(name, b"anything").status == "review"
    assert "export the sheet as CSV UTF-8" in check(check_bytes("r.xlsx", b"PK\x03\x04"), "table").detail


def test_the_sha256_is_that_of_the_bytes() -> None:
    for name, data in (("f.csv", b"g,n\na,12\n"), ("f.png", PNG), ("f.csv", b"")):
        assert check_bytes(name, data).sha256 == hashlib.sha256(data).hexdigest()


def test_to_json_is_plain_data() -> None:
    r = check_bytes("freq.csv", b"region,n\nNord,3\n")
    doc = r.to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["status"] == "fail" and doc["name"] == "freq.csv" and doc["sha256"] == r.sha256
    threshold = next(c for c in doc["checks"] if c["rule"] == "threshold")
    assert threshold["cells"] == [{"row": 1, "column": "n", "value": "3", "label": "region=Nord"}]


@pytest.mark.parametrize(
    "changes",
    [{"threshold": 0}, {"dominance_n": 0}, {"dominance_n": 10}, {"dominance_k": 0}, {"dominance_k": 1.5},
     {"p_ratio": -0.1}],
)  # fmt: skip
def test_rules_out_of_range_are_refused(changes: dict) -> None:
    with pytest.raises(ValidationError):
        Rules(**changes)


def test_dominance_over_three_contributors_needs_top3() -> None:
    data = b"g,n,mean,top1,top2,total\na,12,8,30,30,100\n"
    r = check_bytes("m.csv", data, Rules(dominance_n=3))
    assert r.status == "review" and "add top3" in check(r, "magnitude").detail
    rows = microdata({"a": [30.0, 30.0, 35.0] + [5.0 / 9] * 9})
    r = check_bytes("m.csv", csv_bytes(summarise(rows, ["region"], "hba1c", top=3)), Rules(dominance_n=3))
    assert outcome(r, "dominance") == "fail" and "3 largest contributions" in check(r, "dominance").detail


def test_an_internal_error_is_a_fail_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(oc, "_check_table", broken)
    r = check_bytes("t.csv", b"g,n\na,12\n")
    assert r.status == "fail" and check(r, "format").detail == "the file could not be checked (RuntimeError)"


def test_a_parquet_compression_bomb_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oc, "MAX_DECODED_BYTES", 10_000)
    data = parquet_bytes(pa.table({"n": pa.array([12] * 100_000, pa.int64())}))
    assert len(data) < 10_000
    assert "once decompressed" in check(check_bytes("t.parquet", data), "format").detail
    # one long label repeated: a tiny dictionary page, 10 MB once expanded
    monkeypatch.setattr(oc, "MAX_DECODED_BYTES", 1_000_000)
    data = parquet_bytes(pa.table({"g": ["x" * 1000] * 10_000, "n": pa.array([12] * 10_000, pa.int16())}))
    assert len(data) < 20_000
    assert "once decoded" in check(check_bytes("t.parquet", data), "format").detail


def test_status_is_the_worst_outcome() -> None:
    ok, rev, bad = (oc.CheckResult("r", o, "") for o in ("pass", "review", "fail"))
    assert oc.overall_status([ok, ok]) == "pass"
    assert oc.overall_status([ok, rev]) == "review"
    assert oc.overall_status([rev, bad, ok]) == "fail"


def test_check_file_reads_a_file_by_its_name(tmp_path: Path) -> None:
    path = tmp_path / "freq.csv"
    path.write_bytes(b"region,n\nNord,30\n")
    r = oc.check_file(path)
    assert r.name == "freq.csv" and r.status == "pass"
    assert r.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    with pytest.raises(ValidationError):
        oc.check_file(link)
    with pytest.raises(ValidationError):
        oc.check_file(tmp_path)


# ---------------------------------------------------------------------------------------
# Hostile input


def test_a_file_above_the_limit_is_too_large(tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge):
        check_bytes("big.csv", b"a" * (MAX_RELEASE_BYTES + 1))
    path = tmp_path / "big.csv"
    with path.open("wb") as f:
        f.truncate(MAX_RELEASE_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(PayloadTooLarge):
        oc.check_file(path)


@pytest.mark.parametrize(
    "name",
    ["../secret.csv", "a/b.csv", "a\\b.csv", "x\n.csv", "x\x00.csv", "\x1b[31m.csv", "gpj.\u202ecsv", "", ".",
     "..", "a" * 300 + ".csv"],
)  # fmt: skip
def test_file_names_that_are_not_plain_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        check_bytes(name, b"g,n\na,12\n")


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("t.csv", b"", "the file is empty"),
        ("t.csv", b"\n\r\n  \n", "the file is empty"),
        ("t.csv", b"region,n\n", "header row but no data rows"),
        ("t.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n", "line 3 has 2 fields where the header has 3"),
        ("t.csv", b"a,b\n1,2,3\n", "line 2 has 3 fields where the header has 2"),
        ("t.csv", b"region,n\nCr\xe9teil,12\n", "not valid UTF-8"),
        ("t.csv", PNG, "binary data (PNG image)"),
        ("t.csv", bytes(range(256)) * 4, "binary data"),
        ("t.csv", b"g,n,N\na,12,13\n", "names a column twice"),
        ("t.parquet", b"", "the file is empty"),
        ("t.parquet", b"PAR1 this is not parquet PAR1", "not a readable Parquet file"),
        ("t.parquet", b"g,n\na,12\n", "not a Parquet file"),
    ],
)
def test_malformed_files_fail_with_a_clear_reason(name: str, data: bytes, reason: str) -> None:
    r = check_bytes(name, data)
    assert r.status == "fail" and r.kind == "unreadable"
    assert reason in check(r, "format").detail, r.to_json()


def test_long_text_cells_need_review() -> None:
    # a "category" that carries a dump of records is no category label
    for size in (201, 9 * 1024 * 1024, 30 * 1024 * 1024):
        r = check_bytes("t.csv", b"g,n\n" + b"a" * size + b",12\nb,15\n")
        assert r.status == "review" and outcome(r, "long_text") == "review"
        assert [c.row for c in check(r, "long_text").cells] == [1]
        assert len(check(r, "long_text").cells[0].value) <= 60
    assert check_bytes("t.csv", b"g,n\n" + b"a" * 200 + b",12\n").status == "pass"


def test_truncated_or_corrupt_parquet_fails() -> None:
    good = parquet_bytes(pa.table({"region": ["a", "b"], "n": [12, 13]}))
    assert check_bytes("t.parquet", good).status == "pass"
    for bad in (good[: len(good) // 2] + good[-8:], good[:4] + bytes(len(good) - 8) + good[-4:]):
        assert check_bytes("t.parquet", bad).status == "fail"
    empty = parquet_bytes(pa.table({"n": pa.array([], pa.int64())}))
    assert "no rows" in check(check_bytes("t.parquet", empty), "format").detail


def test_too_many_rows_or_columns_fail() -> None:
    rows = b"n\n" + b"12\n" * (MAX_ROWS + 1)
    assert f"{MAX_ROWS + 1} rows" in check(check_bytes("t.csv", rows), "format").detail
    assert check_bytes("t.csv", b"n\n" + b"12\n" * 1000).status == "pass"
    wide = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)) + "\n" + ",".join(["1"] * (MAX_COLUMNS + 1))
    assert f"{MAX_COLUMNS + 1} columns" in check(check_bytes("t.csv", wide.encode()), "format").detail
    table = pa.table({"n": pa.array([12] * (MAX_ROWS + 1), pa.int32())})
    assert check_bytes("t.parquet", parquet_bytes(table)).status == "fail"
    table = pa.table({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)})
    detail = check(check_bytes("t.parquet", parquet_bytes(table)), "format").detail
    assert f"{MAX_COLUMNS + 1} columns" in detail


def test_formula_injection_needs_review() -> None:
    r = check_bytes("t.csv", b'g,n\n=HYPERLINK("http://x"),12\n@SUM(A1),15\nnormal,20\n-3,30\n')
    formula = check(r, "formula")
    assert r.status == "review" and formula.outcome == "review"
    assert [c.row for c in formula.cells] == [1, 2]
    r = check_bytes("t.csv", b"=cmd|' /C calc'!A0,n\na,12\n")
    assert outcome(r, "formula") == "review" and check(r, "formula").cells[0].label == "header"


def test_unsupported_parquet_columns_need_review() -> None:
    table = pa.table({"region": ["a", "b"], "n": [12, 13], "raw": [[1, 2], [3]]})
    r = check_bytes("t.parquet", parquet_bytes(table))
    assert r.status == "review" and "raw (list" in check(r, "columns").detail


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20240501)
    for i in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        if i % 3 == 0:
            data = b"PAR1" + data + b"PAR1"
        for name in ("x.csv", "x.parquet", "x.tsv"):
            r = check_bytes(name, data)
            assert r.status in {"pass", "review", "fail"}
            assert r.sha256 == hashlib.sha256(data).hexdigest()


def test_random_text_tables_never_raise() -> None:
    rng = random.Random(7)
    alphabet = ["a", "1", ",", ";", '"', "\n", "\r", " ", "-", "=", ".", "n", "é", "\t", "0"]
    for _ in range(300):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 200)))
        r = check_bytes("x.csv", ("n," + body).encode())
        assert r.status in {"pass", "review", "fail"}
