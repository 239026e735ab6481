"""The cohort explorer in the browser: search concepts, build, count (obfuscated or exact, as
the API), attrition and breakdowns, save and load versions, hostile input."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.cohorts.service import list_definitions, record_opposition
from hdhub.hub import Hub
from hdhub.security import tokens, users

PASSWORD = "correct horse battery staple"
T2DM, DIABETES, E11, HBA1C, METFORMIN, HOSTILE = 201826, 201820, 1567956, 3004410, 1503297, 999001
PERSONS, DIABETICS = 120, 70  # persons 1-70 have type 2 diabetes (persons 1-80 at site nord)


@pytest.fixture(scope="module")
def warehouse_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 persons at two sites; diabetes, HbA1c values, metformin; a small vocabulary."""
    from hdhub.warehouse import connect

    path = tmp_path_factory.mktemp("cohort-pages") / "warehouse.duckdb"
    con = connect(f"duckdb:///{path}")
    db = con.con
    db.execute(
        "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, "
        "ethnicity_concept_id, person_source_value) SELECT i, CASE WHEN i % 2 = 0 THEN 8532 ELSE 8507 END, "
        f"1940 + i % 50, 0, 0, lpad(printf('%x', i), 40, '0') FROM range(1, {PERSONS + 1}) t(i)"
    )
    db.execute(
        "INSERT INTO observation_period SELECT i, i, DATE '2010-01-01', DATE '2024-12-31', 32817 "
        f"FROM range(1, {PERSONS + 1}) t(i)"
    )
    db.execute(
        "INSERT INTO person_site SELECT i, CASE WHEN i <= 80 THEN 'nord' ELSE 'sud' END "
        f"FROM range(1, {PERSONS + 1}) t(i)"
    )
    db.execute(
        "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, "
        f"condition_start_date, condition_type_concept_id) SELECT i, i, {T2DM}, DATE '2015-06-01', 32817 "
        f"FROM range(1, {DIABETICS + 1}) t(i)"
    )
    db.execute(
        "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date, "
        f"measurement_type_concept_id, value_as_number) SELECT i, i, {HBA1C}, DATE '2015-06-10', 32817, "
        "6 + i % 5 FROM range(1, 51) t(i)"
    )
    db.execute(
        "INSERT INTO drug_exposure (drug_exposure_id, person_id, drug_concept_id, drug_exposure_start_date, "
        f"drug_exposure_end_date, drug_type_concept_id) SELECT i, i, {METFORMIN}, DATE '2014-01-01', "
        "DATE '2014-03-01', 32817 FROM range(1, 31) t(i)"
    )
    concepts = [
        (T2DM, "Type 2 diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "S", "44054006"),
        (DIABETES, "Diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "S", "73211009"),
        (E11, "Type 2 diabetes mellitus", "Condition", "ICD10", "3-char nonbill code", None, "E11"),
        (
            HBA1C,
            "Hemoglobin A1c/Hemoglobin.total in Blood",
            "Measurement",
            "LOINC",
            "Lab Test",
            "S",
            "4548-4",
        ),
        (METFORMIN, "metformin", "Drug", "RxNorm", "Ingredient", "S", "6809"),
        (
            HOSTILE,
            '<script>alert("x")</script> finding',
            "Condition",
            "SNOMED",
            "Clinical Finding",
            "S",
            "X1",
        ),
    ]
    for row in concepts:
        db.execute(
            "INSERT INTO concept VALUES (?, ?, ?, ?, ?, ?, ?, DATE '2002-01-31', DATE '2099-12-31', NULL)",
            list(row),
        )
    db.execute(
        f"INSERT INTO concept_ancestor VALUES ({DIABETES}, {DIABETES}, 0, 0), ({DIABETES}, {T2DM}, 1, 1), "
        f"({T2DM}, {T2DM}, 0, 0)"
    )
    db.execute(
        f"INSERT INTO concept_relationship VALUES ({E11}, {T2DM}, 'Maps to', DATE '2002-01-31', "
        "DATE '2099-12-31', NULL)"
    )
    con.disconnect()
    return path


@pytest.fixture
def hub(local_hub: Hub, warehouse_file: Path) -> Hub:
    shutil.copyfile(warehouse_file, local_hub.settings.warehouse_url_resolved.removeprefix("duckdb:///"))
    with Session(local_hub.catalog) as s, s.begin():
        for name, role in (("dr-lambert", "clinician"), ("alice", "researcher"), ("eve", "data_engineer"),
                           ("root", "admin")):  # fmt: skip
            users.create_user(s, name, [role], password=PASSWORD)
    return local_hub


@pytest.fixture
def browser(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), base_url="http://hdhub.test") as client:
        yield client


def sign_in(client: TestClient, username: str) -> None:
    r = client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text


def text_of(page: Any) -> str:
    """The page's text, tags removed and entities decoded (for reading figures)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page.text))


def persons_shown(page: Any) -> str:
    found = re.search(r"Persons in the cohort : (\S+(?: \d+)?)", " ".join(text_of(page).split()))
    assert found, page.text
    return found.group(1)


def definition(**extra: Any) -> dict[str, Any]:
    return {
        "name": "t2dm",
        "concept_sets": {"t2dm": {"items": [{"concept_id": T2DM}]}},
        "entry": {"events": [{"domain": "condition", "concept_set": "t2dm"}]},
        **extra,
    }


BUILDER = {
    "b": "1", "entry_domain": "condition", "entry_occurrence": "first", "entry_concept": str(T2DM),
    "crit_domain": "measurement", "crit_concept": str(HBA1C), "crit_mode": "at_least", "crit_count": "1",
    "crit_before": "30", "crit_after": "30", "crit_name": "HbA1c around diagnosis",
    "age_min": "", "age_max": "", "site": "nord",
}  # fmt: skip


def test_sign_in_and_roles(browser: TestClient) -> None:
    r = browser.get("/cohorts", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/cohorts"
    for path in ("/cohorts/count", "/cohorts/save"):
        r = browser.post(path, data=BUILDER, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/cohorts"
    sign_in(browser, "dr-lambert")
    assert 'href="/cohorts"' not in browser.get("/").text
    for r in (
        browser.get("/cohorts"),
        browser.get("/cohorts?q=diabetes"),
        browser.post("/cohorts/count", data=BUILDER),
        browser.post("/cohorts/save", data={**BUILDER, "name": "x"}),
    ):
        assert r.status_code == 403 and "Type 2 diabetes" not in r.text
    sign_in(browser, "root")  # an admin counts but keeps no definitions
    page = browser.get("/cohorts")
    assert page.status_code == 200 and 'formaction="/cohorts/save"' not in page.text
    assert browser.post("/cohorts/save", data={**BUILDER, "name": "x"}).status_code == 403
    assert browser.get("/cohorts?load=x").status_code == 403


def test_a_researcher_searches_builds_and_counts(browser: TestClient, hub: Hub) -> None:
    sign_in(browser, "alice")
    page = browser.get("/cohorts?lang=en")
    assert page.status_code == 200 and 'href="/cohorts" aria-current="page"' in page.text
    assert "Cohort explorer" in page.text and "nord" in page.text and "sud" in page.text
    # by code: the exact SNOMED code first; by label: standard concepts before the ICD-10 code
    by_code = browser.get("/cohorts", params={"b": "1", "q": "44054006"})
    assert by_code.status_code == 200 and f'name="add_entry" value="{T2DM}"' in by_code.text
    by_label = browser.get("/cohorts", params={"b": "1", "q": "type 2 DIAB"})
    rows = re.findall(r'name="add_entry" value="(\d+)"', by_label.text)
    assert rows == [str(T2DM), str(E11)]
    assert "Maps to : 201826 Type 2 diabetes mellitus" in text_of(by_label)
    icd = browser.get("/cohorts", params={"b": "1", "q": "e11", "q_domain": "condition"})
    assert re.findall(r'name="add_entry" value="(\d+)"', icd.text)[0] == str(E11)
    assert "No concept matches" in browser.get("/cohorts", params={"b": "1", "q": "%_"}).text
    # add to the entry event (with descendants, the default), then the criterion
    added = browser.get("/cohorts", params={"b": "1", "q": "diab", "add_desc": "1", "add_entry": str(T2DM)})
    assert f'name="entry_concept" value="{T2DM}"' in added.text
    assert f'id="entry-desc-{T2DM}" name="entry_desc" value="{T2DM}" checked' in added.text
    crit = browser.get("/cohorts", params={"b": "1", "entry_concept": str(T2DM), "add_crit": str(HBA1C)})
    assert f'name="crit_concept" value="{HBA1C}"' in crit.text
    assert f'id="crit-desc-{HBA1C}" name="crit_desc" value="{HBA1C}"' in crit.text  # unticked: no add_desc
    removed = browser.get(
        "/cohorts", params={"b": "1", "entry_concept": str(T2DM), "remove_entry": str(T2DM)}
    )
    assert f'name="entry_concept" value="{T2DM}"' not in removed.text
    # the JSON field holds what the builder describes
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", crit.text, re.S)
    assert textarea and json.loads(html.unescape(textarea.group(1)))["concept_sets"]["entry"]["items"] == [
        {"concept_id": T2DM}
    ]
    # count: obfuscated figures, the note, attrition per rule, charts with tables
    counted = browser.post("/cohorts/count", data=BUILDER)
    assert counted.status_code == 200, counted.text
    shown = persons_shown(counted)
    assert shown.isdigit() and abs(int(shown) - 50) <= 6  # persons 1-50 have an HbA1c; all at nord
    assert "Protected counts" in counted.text and "HbA1c around diagnosis" in counted.text
    assert counted.text.count("<svg") == 3 and counted.text.count('<th scope="row">') > 5
    assert "< 10" in text_of(counted)  # age band cells of fewer than 10 persons are hidden
    # the page shows what the API shows the same user, nothing more
    with Session(hub.catalog) as s, s.begin():
        secret, _ = tokens.issue_token(s, users.get_user(s, "alice"), name="t", ttl=timedelta(hours=1))
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", counted.text, re.S)
    assert textarea
    body = {"definition": json.loads(html.unescape(textarea.group(1)))}
    api = browser.post("/api/v1/cohorts/count", json=body, headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200 and str(api.json()["persons"]) == shown
    assert [r["met"] for r in api.json()["attrition"]] == [
        int(x) for x in re.findall(r"HbA1c around diagnosis</th><td>(\d+)</td>", counted.text)
    ]
    # audited as the API's counts are: the definition's fingerprint, not exact, the figure shown
    event = next(e for e in hub.audit.search(actor="alice", limit=50) if e.action == "POST /cohorts/count")
    assert (event.resource_type, event.resource_id) == ("cohort", api.json()["fingerprint"][:16])
    assert event.outcome == "success" and event.role == "researcher"
    # a small cohort: "< 10"
    small = browser.post("/cohorts/count", data={**BUILDER, "age_min": "70", "age_max": "75"})
    assert small.status_code == 200 and persons_shown(small) == "< 10"


def test_exact_counts_for_data_engineers_and_opposition(browser: TestClient, hub: Hub) -> None:
    sign_in(browser, "eve")
    counted = browser.post("/cohorts/count?lang=en", data=BUILDER)
    assert counted.status_code == 200 and persons_shown(counted) == "50"
    assert "Exact counts." in counted.text and "Protected counts" not in counted.text
    plain = browser.post("/cohorts/count?lang=fr", data={"b": "1", "entry_domain": "condition",
                                                 "entry_concept": str(T2DM)})  # fmt: skip
    assert "Patients dans la cohorte : 70" in " ".join(text_of(plain).split())
    # with descendants of "diabetes mellitus", the same persons
    desc = browser.post("/cohorts/count?lang=en", data={"b": "1", "entry_concept": str(DIABETES),
                                                        "entry_desc": str(DIABETES)})  # fmt: skip
    assert persons_shown(desc) == "70"
    assert ">nord</th><td>70</td>" in desc.text  # the site chart's table
    assert ">female</th><td>35</td>" in desc.text and ">male</th><td>35</td>" in desc.text
    record_opposition(hub.catalog, f"{1:040x}", "dpo")
    assert persons_shown(browser.post("/cohorts/count?lang=en", data={**BUILDER})) == "49"
    # the advanced JSON field: a rule of the whole format, escaped names
    either = {"type": "any", "items": [{"event": {"domain": "drug"}}, {"event": {"domain": "measurement"}}]}
    hostile = definition(inclusion_rules=[{"name": "<script>alert(1)</script>", "criteria": either}])
    r = browser.post("/cohorts/count?lang=en", data={"definition": json.dumps(hostile)})
    assert r.status_code == 200 and persons_shown(r) == "49"
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "uses more than the builder shows" in r.text  # a group of two: not the builder's shape


def test_save_versions_and_load(browser: TestClient, hub: Hub) -> None:
    sign_in(browser, "alice")
    first = browser.post("/cohorts/save", data={**BUILDER, "name": "t2dm-hba1c"}, follow_redirects=False)
    assert (
        first.status_code == 303 and first.headers["location"] == "/cohorts?load=t2dm-hba1c&version=1&saved=1"
    )
    assert "Enregistrée : t2dm-hba1c, version 1." in browser.get(first.headers["location"]).text
    changed = {**BUILDER, "name": "t2dm-hba1c", "age_min": "40", "sex": "female"}
    second = browser.post("/cohorts/save", data=changed, follow_redirects=False)
    assert second.headers["location"] == "/cohorts?load=t2dm-hba1c&version=2&saved=1"
    again = browser.post("/cohorts/save", data=changed, follow_redirects=False)
    assert again.headers["location"].endswith("version=2&saved=1")  # unchanged: no new version
    via_json = browser.post("/cohorts/save", data={"definition": json.dumps(definition()), "name": "plain"},
                            follow_redirects=False)  # fmt: skip
    assert via_json.status_code == 303
    assert [(r.name, r.version) for r in list_definitions(hub.catalog, "alice")] == [
        ("plain", 1), ("t2dm-hba1c", 2), ("t2dm-hba1c", 1)
    ]  # fmt: skip
    page = browser.get("/cohorts?lang=en")
    assert 'href="/cohorts?load=t2dm-hba1c&amp;version=2"' in page.text
    assert 'href="/cohorts?load=t2dm-hba1c&amp;version=1"' in page.text
    v2 = browser.get("/cohorts?load=t2dm-hba1c&version=2&lang=en")
    assert v2.status_code == 200 and "Opened: t2dm-hba1c, version 2." in v2.text
    assert 'id="age_min" name="age_min" type="number" min="0" max="150" value="40"' in v2.text
    assert 'id="sex-female" name="sex" value="female" checked' in v2.text
    assert f'name="crit_concept" value="{HBA1C}"' in v2.text and 'value="HbA1c around diagnosis"' in v2.text
    v1 = browser.get("/cohorts?load=t2dm-hba1c&version=1")
    assert 'id="age_min" name="age_min" type="number" min="0" max="150" value=""' in v1.text
    plain = browser.get("/cohorts?load=plain")
    assert (
        f'name="entry_concept" value="{T2DM}"' in plain.text
        and 'id="name" name="name" value="plain"' in plain.text
    )
    assert browser.get("/cohorts?load=nothing").status_code == 404
    assert browser.get("/cohorts?load=plain&version=x").status_code == 422
    assert browser.get("/cohorts", params={"load": "plain", "version": "\u00b2"}).status_code == 422
    sign_in(browser, "eve")  # saved definitions are their author's alone
    assert browser.get("/cohorts?load=plain").status_code == 404
    assert "t2dm-hba1c" not in browser.get("/cohorts").text


def test_hostile_input_is_refused_and_nothing_saved(browser: TestClient, hub: Hub) -> None:
    sign_in(browser, "alice")

    def concepts(*ids: int) -> dict[str, str]:
        return {"definition": json.dumps(definition(concept_sets={"t2dm": {"items": [
            {"concept_id": i} for i in ids]}}))}  # fmt: skip

    cases = [
        ({"definition": "{not json"}, 422, "not valid JSON"),
        ({"definition": "[]"}, 422, "a cohort definition is a JSON object"),
        (concepts(*range(1, 10_001)), 422, "at most 1000 items"),
        ({"b": "1", "entry_concept": [str(i) for i in range(1, 10_001)]}, 422, "formulaire trop long"),
        (
            {"b": "1", "entry_concept": [str(i) for i in range(1, 1_500)]},
            422,
            "1499 concepts dans un ensemble",
        ),
        (concepts(424242), 422, "not in the loaded vocabulary"),
        ({**BUILDER, "entry_concept": "424242"}, 422, "not in the loaded vocabulary"),
        ({**BUILDER, "entry_concept": "12abc"}, 422, "identifiant de concept invalide"),
        ({**BUILDER, "entry_concept": "\u00b2"}, 422, "identifiant de concept invalide"),
        ({**BUILDER, "entry_concept": "9" * 5000}, 422, "identifiant de concept invalide"),
        ({**BUILDER, "crit_before": "\u00b2"}, 422, "un nombre entier positif est attendu"),
        ({**BUILDER, "entry_domain": "<script>"}, 422, "valeur inconnue"),
        ({**BUILDER, "age_min": "80", "age_max": "40"}, 422, "age range min 80 is above max 40"),
        ({**BUILDER, "age_min": "-3"}, 422, "un nombre entier positif est attendu"),
        ({**BUILDER, "value_min": "7"}, 422, "value and units apply to measurement and observation"),
    ]
    for data, status, message in cases:
        for path in ("/cohorts/count", "/cohorts/save"):
            r = browser.post(path, data={**data, "name": "hostile"}, follow_redirects=False)
            assert r.status_code == status, (path, message, r.text[:300])
            assert message in html.unescape(r.text), (path, message)
            assert 'role="alert"' in r.text
    named = browser.post("/cohorts/save", data={**BUILDER, "name": "<script>alert(1)</script>"})
    assert named.status_code == 422 and "<script>alert(1)" not in named.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in named.text  # the name kept in its field, escaped
    # a concept whose name holds markup is escaped in the search and in the builder
    found = browser.get("/cohorts", params={"b": "1", "q": "script", "add_entry": str(HOSTILE)})
    assert found.status_code == 200 and "<script>alert(" not in found.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; finding" in found.text
    reflected = browser.get("/cohorts", params={"b": "1", "q": '"><script>alert(2)</script>'})
    assert "<script>alert(2)" not in reflected.text
    # not a form, too large, unknown search domain, a 1-character search
    assert browser.post("/cohorts/count", json={"definition": definition()}).status_code == 422
    big = browser.post("/cohorts/save", content=b"definition=" + b"x" * 6_200_000,
                       headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert big.status_code == 413
    assert browser.get("/cohorts", params={"b": "1", "q": "ab", "q_domain": "nope"}).status_code == 422
    assert browser.get("/cohorts", params={"b": "1", "q": "a"}).status_code == 422
    assert browser.get("/cohorts", params={"b": "1", "q": "\u00b2"}).status_code == 422
    assert browser.get("/cohorts", params={"b": "1", "remove_entry": "\u00b2"}).status_code == 200
    assert browser.get("/cohorts", params={"b": "1", "add_crit": "9" * 5000}).status_code == 422
    # a form posted from another site is refused, counted nowhere, saved nowhere
    cross = browser.post("/cohorts/save", data={**BUILDER, "name": "cross"},
                         headers={"origin": "https://evil.example"})  # fmt: skip
    assert cross.status_code == 403
    assert (
        browser.post("/cohorts/count", data=BUILDER, headers={"origin": "https://evil.example"}).status_code
        == 403
    )
    assert list_definitions(hub.catalog, "alice") == []


def test_repeated_questions_are_limited_as_in_the_api(browser: TestClient, hub: Hub) -> None:
    sign_in(browser, "alice")
    limit = hub.settings.cohorts.max_repeats
    for i in range(limit):
        assert browser.post("/cohorts/count", data={**BUILDER, "crit_name": f"try {i}"}).status_code == 200
    refused = browser.post("/cohorts/count?lang=en", data=BUILDER)
    assert refused.status_code == 429 and "already asked" in refused.text
    assert 'value="HbA1c around diagnosis"' in refused.text  # the builder kept
    sign_in(browser, "eve")  # exact counts are not limited
    assert browser.post("/cohorts/count", data=BUILDER).status_code == 200
