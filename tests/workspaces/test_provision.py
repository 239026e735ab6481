"""Provisioning: the approved perimeter, pseudonymised, encrypted under the project's key."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import utcnow
from hdhub.errors import ConfigError, Conflict
from hdhub.hub import Hub
from hdhub.workspaces.keys import project_key, project_store
from hdhub.workspaces.provision import current_manifest, provision


def read_table(hub: Hub, slug: str, table: str) -> Any:
    from hdhub.governance.projects import get_project

    with Session(hub.catalog) as s:
        p = get_project(s, slug)
        key = project_key(hub, s, p)
        prefix = f"projects/{slug}/extract-{p.extract_version}/"
    raw = project_store(hub, key).get_bytes(prefix + f"{table}.parquet")
    return pq.read_table(io.BytesIO(raw))


COHORT = (
    "SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 201826 OR condition_concept_id "
    "IN (SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id = 201826)"
)


def warehouse(hub: Hub, sql: str) -> list[tuple]:
    with duckdb.connect(str(hub.settings.home / "warehouse.duckdb"), read_only=True) as db:
        return db.execute(sql).fetchall()


def test_extract_holds_the_cohort_pseudonymised(ws_hub: Hub) -> None:
    result = provision(ws_hub, "study-a", by="eve")
    cohort = warehouse(ws_hub, f"SELECT count(DISTINCT person_id) FROM ({COHORT})")[0][0]
    assert result.persons == cohort > 0 and result.excluded_by_opposition == 0
    person = read_table(ws_hub, "study-a", "person")
    assert person.num_rows == cohort
    assert "person_source_value" not in person.column_names  # withheld: it links projects
    real_ids = {r[0] for r in warehouse(ws_hub, "SELECT person_id FROM person")}
    assert not set(person["person_id"].to_pylist()) & real_ids
    assert all(0 < i < 2**63 for i in person["person_id"].to_pylist())
    manifest = current_manifest(ws_hub, "study-a")
    assert manifest["withheld_columns"] == {"person": ["person_source_value"]}
    assert set(manifest["tables"]) == {"person", "condition_occurrence", "visit_occurrence", "measurement",
                                       "note", "cohort"}  # fmt: skip
    # joins inside the extract still work: every condition's visit is a visit of the extract
    conditions = read_table(ws_hub, "study-a", "condition_occurrence")
    visits = read_table(ws_hub, "study-a", "visit_occurrence")
    linked = {v for v in conditions["visit_occurrence_id"].to_pylist() if v is not None}
    assert linked and linked <= set(visits["visit_occurrence_id"].to_pylist())
    assert set(conditions["person_id"].to_pylist()) <= set(person["person_id"].to_pylist())


def test_files_are_unreadable_without_the_project_key(ws_hub: Hub) -> None:
    provision(ws_hub, "study-a", by="eve")
    keys = [i.key for i in ws_hub.objects.list("projects/study-a/")]
    assert any(k.endswith("/mart.duckdb") for k in keys) and any(k.endswith("/manifest.json") for k in keys)
    with pytest.raises(ConfigError, match="not in the keyring"):
        ws_hub.objects.get_bytes(keys[0])


def test_dates_shift_per_person_and_intervals_are_kept(ws_hub: Hub) -> None:
    provision(ws_hub, "study-a", by="eve")
    provision(ws_hub, "study-b", by="eve")
    a, b = read_table(ws_hub, "study-a", "person"), read_table(ws_hub, "study-b", "person")
    assert a.num_rows == b.num_rows
    assert not set(a["person_id"].to_pylist()) & set(b["person_id"].to_pylist())  # unlinkable
    # each person's birth moved by their own shift, never 0 days, within a year
    from hdhub.privacy.pseudonyms import ProjectPseudonyms

    ps = ProjectPseudonyms(ws_hub.keys.pseudonym, "study-a")
    real = warehouse(
        ws_hub, f"SELECT person_source_value, birth_datetime FROM person WHERE person_id IN ({COHORT})"
    )
    expected = {ps.person_id(k): (b, ps.date_shift(k)) for k, b in real}
    got = {r["person_id"]: r["birth_datetime"] for r in a.to_pylist()}
    assert set(got) == set(expected)
    for pid, (born, shift) in expected.items():
        assert 0 < abs(shift) <= 365
        if born is not None:
            assert got[pid] - born == dt.timedelta(days=shift)
    # the gap between a person's first and last visit is the same as in the warehouse
    visits = read_table(ws_hub, "study-a", "visit_occurrence").to_pylist()
    spans: dict[int, list] = {}
    for v in visits:
        spans.setdefault(v["person_id"], []).append(v["visit_start_date"])
    extract_spans = sorted((max(d) - min(d)).days for d in spans.values())
    sql = (
        "SELECT max(visit_start_date) - min(visit_start_date) FROM visit_occurrence "
        f"WHERE person_id IN ({COHORT}) GROUP BY person_id"
    )
    real_spans = sorted(r[0] for r in warehouse(ws_hub, sql))
    assert extract_spans == real_spans


def test_reprovisioning_gives_the_same_pseudonyms_and_deletes_the_old_extract(ws_hub: Hub) -> None:
    first = provision(ws_hub, "study-a", by="eve")
    ids = read_table(ws_hub, "study-a", "person").sort_by("person_id")
    second = provision(ws_hub, "study-a", by="eve")
    assert (first.version, second.version) == (1, 2)
    again = read_table(ws_hub, "study-a", "person").sort_by("person_id")
    assert again["person_id"] == ids["person_id"] and again["birth_datetime"] == ids["birth_datetime"]
    assert not ws_hub.objects.versions("projects/study-a/extract-1/")  # gone for good


def test_what_a_killed_provisioning_left_is_deleted_by_the_next(ws_hub: Hub) -> None:
    """A run killed after switching to its extract left the previous one (whose persons may have
    objected since); a run killed mid-way left a half-written extract: the next run deletes both."""
    provision(ws_hub, "study-a", by="eve")
    provision(ws_hub, "study-a", by="eve")
    with Session(ws_hub.catalog) as s:
        from hdhub.governance.projects import get_project

        store = project_store(ws_hub, project_key(ws_hub, s, get_project(s, "study-a")))
    store.put("projects/study-a/extract-1/person.parquet", b"left behind", content_type="x/y")
    store.put("projects/study-a/extract-3/person.parquet", b"half written", content_type="x/y")
    third = provision(ws_hub, "study-a", by="eve")
    assert third.version == 3
    assert not ws_hub.objects.versions("projects/study-a/extract-1/")
    assert not ws_hub.objects.versions("projects/study-a/extract-2/")
    assert len(ws_hub.objects.versions("projects/study-a/extract-3/person.parquet")) == 1
    assert read_table(ws_hub, "study-a", "person").num_rows > 0


def test_notes_are_deidentified(ws_hub: Hub) -> None:
    provision(ws_hub, "study-a", by="eve")
    notes = read_table(ws_hub, "study-a", "note")
    assert notes.num_rows > 0
    texts = "\n".join(notes["note_text"].to_pylist())
    from hdhub.privacy.identity_store import IdentityStore

    identities = IdentityStore(ws_hub.catalog, ws_hub.keys)
    originals = warehouse(ws_hub, "SELECT note_text FROM note LIMIT 5")
    assert originals and all("IPP" in t for (t,) in originals)  # the synthetic notes name the patient
    assert "[NOM]" in texts and "[IPP]" in texts and "[NIR]" in texts
    del identities


def test_keep_dates_and_date_range(ws_hub: Hub) -> None:
    from tests.workspaces.conftest import approve

    with Session(ws_hub.catalog) as s, s.begin():
        approve(s, "study-dates", keep_dates=True, date_from=dt.date(2015, 1, 1))
    provision(ws_hub, "study-dates", by="eve")
    visits = read_table(ws_hub, "study-dates", "visit_occurrence")
    dates = visits["visit_start_date"].to_pylist()
    assert dates and min(dates) >= dt.date(2015, 1, 1)
    real = {r[0] for r in warehouse(ws_hub, "SELECT visit_start_date FROM visit_occurrence")}
    assert set(dates) <= real
    manifest = current_manifest(ws_hub, "study-dates")
    assert manifest["keep_dates"] is True


def test_only_approved_projects_are_provisioned(ws_hub: Hub) -> None:
    from hdhub.governance.projects import get_project

    with Session(ws_hub.catalog) as s, s.begin():
        get_project(s, "study-b").status = "closed"
    with pytest.raises(Conflict, match="is closed"):
        provision(ws_hub, "study-b", by="eve")
    with pytest.raises(Exception, match="no project"):
        provision(ws_hub, "nope", by="eve")


def test_manifest_checksums_match_the_files(ws_hub: Hub) -> None:
    import hashlib

    provision(ws_hub, "study-a", by="eve")
    manifest = current_manifest(ws_hub, "study-a")
    from hdhub.governance.projects import get_project

    with Session(ws_hub.catalog) as s:
        key = project_key(ws_hub, s, get_project(s, "study-a"))
    store = project_store(ws_hub, key)
    for entry in [*manifest["tables"].values(), manifest["database"]]:
        raw = store.get_bytes(f"projects/study-a/extract-1/{entry['file']}")
        assert hashlib.sha256(raw).hexdigest() == entry["sha256"] and len(raw) == entry["bytes"]
    stored = orjson.loads(store.get_bytes("projects/study-a/extract-1/manifest.json"))
    assert stored == manifest


def test_an_objection_removes_the_patient_at_reprovisioning_and_from_counts(ws_hub: Hub) -> None:
    from hdhub.cohorts.service import project_count
    from hdhub.privacy.pseudonyms import ProjectPseudonyms
    from hdhub.security.principal import Principal
    from hdhub.warehouse.connection import read_only
    from tests.conftest import hdhub_ok

    alice = Principal("alice", frozenset({"researcher"}), "token")

    def count() -> dict:
        with read_only(ws_hub.settings.warehouse_url_resolved) as con:
            return project_count(ws_hub, con, alice, "study-a")

    before = provision(ws_hub, "study-a", by="eve")
    counted = count()
    assert counted["persons"] == before.persons and counted["excluded_by_opposition"] == 0
    key = warehouse(ws_hub, f"SELECT person_source_value FROM person WHERE person_id IN ({COHORT}) "
                            "ORDER BY person_id LIMIT 1")[0][0]  # fmt: skip
    [identity, *_] = ws_hub.identities.by_person(key)
    ident = identity["identifier"][0]
    hdhub_ok("--home", str(ws_hub.settings.home), "opposition", "add", f"{ident['system']}|{ident['value']}")
    after = provision(ws_hub, "study-a", by="eve")
    assert (after.persons, after.excluded_by_opposition) == (before.persons - 1, 1)
    gone = ProjectPseudonyms(ws_hub.keys.pseudonym, "study-a").person_id(key)
    ids = set(read_table(ws_hub, "study-a", "person")["person_id"].to_pylist())
    assert gone not in ids and len(ids) == before.persons - 1
    for table in ("condition_occurrence", "measurement", "note", "cohort"):
        column = "subject_id" if table == "cohort" else "person_id"
        assert gone not in set(read_table(ws_hub, "study-a", table)[column].to_pylist())
    counted = count()
    assert (counted["persons"], counted["excluded_by_opposition"]) == (before.persons - 1, 1)


def test_images_are_deidentified_with_the_same_uids_as_the_table(ws_hub: Hub) -> None:
    import pydicom

    from hdhub.governance import projects as gov
    from hdhub.imaging.store import store_instance
    from tests.api.conftest import dicom_instance

    study, series = "1.2.826.0.1.3680043.10.9", "1.2.826.0.1.3680043.10.9.1"
    for n in (1, 2):
        raw = dicom_instance(study, series, f"{series}.{n}", PatientName="DUPONT^JEANNE", PatientID="IPP-778")
        assert store_instance(ws_hub.catalog, ws_hub.objects, raw).status == "stored"
    [(person,)] = warehouse(ws_hub, f"SELECT min(person_id) FROM ({COHORT})")
    with duckdb.connect(str(ws_hub.settings.home / "warehouse.duckdb")) as db:
        db.execute(
            "INSERT INTO image_occurrence (image_occurrence_id, person_id, procedure_occurrence_id, "
            "image_occurrence_date, image_study_uid, image_series_uid, modality_concept_id, wadors_uri) "
            f"VALUES (1, {person}, 1, DATE '2020-03-01', '{study}', '{series}', 0, '/dicomweb/x')"
        )
    columns = ("image_occurrence_id", "person_id", "image_occurrence_date", "image_study_uid",
               "image_series_uid", "wadors_uri")  # fmt: skip
    item = gov.DataItem("image_occurrence", columns, "The MRIs of the patients.")
    with Session(ws_hub.catalog) as s, s.begin():
        request = gov.ProjectRequest(
            slug="study-img", title="Images", purpose="Imaging.", legal_basis="MR-004", pi="dr-martin",
            duration_months=6, data=(item,), members=("alice",), cohort=("t2dm", 1),
        )  # fmt: skip
        p = gov.create_project(s, request, created_by="alice")
        gov.submit(s, p, by="alice")
        gov.start_review(s, p, "c1")
        gov.review(s, p, "c1", vote="approve")
        gov.decide(s, p, "c1", "approved")
    result = provision(ws_hub, "study-img", by="eve")
    assert result.images == 2
    [row] = read_table(ws_hub, "study-img", "image_occurrence").to_pylist()
    assert "wadors_uri" not in row and row["image_study_uid"].startswith("2.25.")
    with Session(ws_hub.catalog) as s:
        from hdhub.governance.projects import get_project

        key = project_key(ws_hub, s, get_project(s, "study-img"))
    store = project_store(ws_hub, key)
    files = [i.key for i in store.list("projects/study-img/extract-1/dicom/")]
    assert len(files) == 2
    assert all(f"/dicom/{row['image_study_uid']}/{row['image_series_uid']}/" in k for k in files)
    raw = store.get_bytes(files[0])
    assert b"DUPONT" not in raw and b"IPP-778" not in raw and study.encode() not in raw
    ds = pydicom.dcmread(io.BytesIO(raw))
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientID) == str(row["person_id"])
    manifest = current_manifest(ws_hub, "study-img")
    assert manifest["images"] == {"instances": 2, "left_out_burned_in_annotation": 0}
    assert manifest["withheld_columns"] == {"image_occurrence": ["wadors_uri"]}


def test_a_run_taken_for_stopped_neither_switches_nor_deletes_what_followed_it(ws_hub: Hub) -> None:
    """A process frozen past STALE_AFTER is taken for dead and another run starts. The two
    write different extracts (each run reserves its version); when the first wakes up it
    deletes only its own files and the project stays on the second's extract."""
    from hdhub.catalog.models import ProvisioningRun
    from hdhub.workspaces import runs

    provision(ws_hub, "study-a", by="eve")  # the current extract: 1
    frozen = runs.start_run(ws_hub, "study-a", "eve", "web")
    stale = utcnow() - runs.STALE_AFTER - dt.timedelta(minutes=1)
    with Session(ws_hub.catalog) as s, s.begin():
        s.get(ProvisioningRun, frozen).heartbeat_at = stale
    follower = runs.start_run(ws_hub, "study-a", "frank", "web")  # marks the frozen one interrupted
    with Session(ws_hub.catalog) as s:
        reserved = {r.id: r.extract_version for r in s.scalars(select(ProvisioningRun))}
    assert (reserved[frozen], reserved[follower]) == (2, 3)
    # The follower is writing its extract when the frozen run wakes up and starts over its work.
    with Session(ws_hub.catalog) as s:
        from hdhub.governance.projects import get_project

        store = project_store(ws_hub, project_key(ws_hub, s, get_project(s, "study-a")))
    store.put("projects/study-a/extract-3/person.parquet", b"being written", content_type="x/y")
    with pytest.raises(Conflict, match="taken for stopped"):
        provision(ws_hub, "study-a", by="eve", run=frozen)
    assert len(ws_hub.objects.versions("projects/study-a/extract-3/person.parquet")) == 1  # spared
    assert not ws_hub.objects.versions("projects/study-a/extract-2/")  # its own files, deleted
    with Session(ws_hub.catalog) as s:
        assert get_project(s, "study-a").extract_version == 1  # not switched
    done = provision(ws_hub, "study-a", by="frank", run=follower)
    assert done.version == 3
    with Session(ws_hub.catalog) as s:
        assert get_project(s, "study-a").extract_version == 3
    assert read_table(ws_hub, "study-a", "person").num_rows > 0
    assert not ws_hub.objects.versions("projects/study-a/extract-1/")  # the previous one, deleted
