"""The imaging pages keep two sites' patients apart when both sites issued the same IPP: a
patient is (Patient ID, IssuerOfPatientID), listed, opened and audited as such."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from hdhub.api.app import create_app
from hdhub.hub import Hub
from hdhub.imaging.store import STORED, store_instances
from hdhub.privacy.identity_store import IdentityRecord
from hdhub.synth.dicom import ImagingPatient, SynthInstance, studies
from tests.web.conftest import PASSWORD, Site

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
INS = "280017512345608"
NORD, SUD = "https://hdhub.example/chu-nord/ipp", "https://hdhub.example/ch-sud/ipp"
SHARED = "0012345678"  # Marie's IPP at CHU Nord, and Paul's at CH Sud
# Marie Durand: seen at both sites (one INS). Paul Lefebvre: someone else, at CH Sud only, whose
# IPP there is the number CHU Nord gave Marie. Luc Martin: images stored without an issuer.
MARIE_NORD = ImagingPatient(SHARED, "Durand", "Marie", "19560312", "F", ("20230611141500",), NORD, "CHU Nord")
MARIE_SUD = ImagingPatient(
    "0187654321", "Durand", "Marie", "19560312", "F", ("20210910100000",), SUD, "CH Sud"
)
PAUL = ImagingPatient(SHARED, "Lefebvre", "Paul", "19700101", "M", ("20240202120000",), SUD, "CH Sud")
LUC = ImagingPatient(SHARED, "Martin", "Luc", "19400101", "M", ("20100101090000",))


@pytest.fixture
def archive(site: Site) -> Iterator[tuple[Hub, list[SynthInstance]]]:
    hub = site.hub
    marie = {"name": [{"family": "Durand", "given": ["Marie"]}], "birthDate": "1956-03-12"}
    hub.identities.put_many([
        IdentityRecord("chu-nord", "11" * 20, "22" * 20, marie | {"identifier": [
            {"system": NORD, "value": SHARED}, {"system": INS_SYSTEM, "value": INS}]}),
        IdentityRecord("ch-sud", "33" * 20, "22" * 20, marie | {"identifier": [
            {"system": SUD, "value": MARIE_SUD.patient_id}, {"system": INS_SYSTEM, "value": INS}]}),
        IdentityRecord("ch-sud", "44" * 20, "55" * 20, {"name": [{"family": "Lefebvre", "given": ["Paul"]}],
                                                        "identifier": [{"system": SUD, "value": SHARED}]}),
    ])  # fmt: skip
    made = [i for p in (MARIE_NORD, MARIE_SUD, PAUL, LUC) for i in studies(p, seed=3, count=1)]
    outcomes = store_instances(hub.catalog, hub.objects, [(i.data, i.path) for i in made])
    assert {o.status for o in outcomes} == {STORED}
    assert len({i.study_uid for i in made}) == 4  # the same IPP at two sites: studies of their own
    yield hub, made


@pytest.fixture
def browser(archive: tuple[Hub, list[SynthInstance]]) -> Iterator[TestClient]:
    with TestClient(create_app(archive[0]), base_url="http://hdhub.test") as client:
        r = client.post("/login", data={"username": "dr-lambert", "password": PASSWORD, "next": "/imaging"},
                        follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
        yield client


def patient_url(patient: ImagingPatient) -> str:
    issuer = f"?{urlencode({'issuer': patient.issuer})}" if patient.issuer else ""
    return f"/imaging/patients/{patient.patient_id}{issuer}"


def patient_links(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="(/imaging/patients/[^"]*)"', html)]


def rows(html: str) -> list[tuple[str, str, str]]:
    """The search's table: (name, Patient ID, issuer shown) per patient."""
    return [
        (name, pid, re.sub(r"<[^>]+>", "", issuer))
        for name, pid, issuer in re.findall(
            r'<th scope="row"><a href="[^"]*">([^<]*)</a></th><td><code>([^<]*)</code></td>\s*<td>(.*?)</td>',
            html,
        )
    ]


def study_of(made: list[SynthInstance], patient: ImagingPatient) -> str:
    """The patient's one study (made again from the seed: the same UIDs)."""
    [study] = {i.study_uid for i in studies(patient, seed=3, count=1)}
    assert study in {i.study_uid for i in made}
    return study


def test_one_ipp_two_sites_two_patients(
    browser: TestClient, archive: tuple[Hub, list[SynthInstance]]
) -> None:
    _, made = archive
    # A bare IPP: whoever issued it, each (IPP, issuer) a patient of its own, the issuer shown.
    bare = browser.get("/imaging", params={"identifier": SHARED})
    assert bare.status_code == 200 and "Patients trouvés (3)" in bare.text
    assert rows(bare.text) == [
        ("DURAND Marie", SHARED, NORD),
        ("LEFEBVRE Paul", SHARED, SUD),
        ("MARTIN Luc", SHARED, "inconnu"),
    ]
    assert patient_links(bare.text) == [patient_url(MARIE_NORD), patient_url(PAUL), patient_url(LUC)]
    assert "Émetteur (site)" in bare.text

    # Marie's INS: her IPP at each site with that site's issuer; never Paul, who holds the same
    # number at CH Sud. Images without an issuer stay findable, shown as issuer unknown.
    by_ins = browser.get("/imaging", params={"identifier": INS})
    assert rows(by_ins.text) == [
        ("DURAND Marie", SHARED, NORD),
        ("DURAND Marie", MARIE_SUD.patient_id, SUD),
        ("MARTIN Luc", SHARED, "inconnu"),
    ]
    assert "Lefebvre" not in by_ins.text and "LEFEBVRE" not in by_ins.text
    # CH Sud's IPP as system|value: Paul (and the issuer-less images), never Marie's CHU Nord images.
    by_sud = browser.get("/imaging", params={"identifier": f"{SUD}|{SHARED}"})
    assert [r[:1] + r[2:] for r in rows(by_sud.text)] == [("LEFEBVRE Paul", SUD), ("MARTIN Luc", "inconnu")]
    # A name through the QIDO index: the patient with the issuer of their images.
    assert rows(browser.get("/imaging", params={"name": "Lefebvre"}).text) == [("LEFEBVRE Paul", SHARED, SUD)]
    by_id = browser.get("/imaging", params={"name": SHARED})
    assert [r[2] for r in rows(by_id.text)] == [NORD, SUD, "inconnu"]

    # Each patient's page holds their studies only and shows the issuer next to the IPP.
    for patient, other in ((MARIE_NORD, PAUL), (PAUL, MARIE_NORD), (LUC, PAUL)):
        page = browser.get(patient_url(patient))
        assert page.status_code == 200, patient
        assert study_of(made, patient) in page.text and study_of(made, other) not in page.text
        assert f"<h1>{patient.family.upper()} {patient.given}</h1>" in page.text
        assert (f"<code>{patient.issuer}</code>" if patient.issuer else "<em>inconnu</em>") in page.text
    # An issuer no study has, or an invalid one: nothing.
    for issuer in ("https://hdhub.example/ailleurs/ipp", "x" * 65, "<script>alert(1)</script>", "a\\b"):
        page = browser.get(f"/imaging/patients/{SHARED}", params={"issuer": issuer})
        assert page.status_code == 404 and "<script>alert" not in page.text, issuer

    # The study and series pages name the patient with the issuer and link back to that patient.
    study = browser.get(f"/imaging/studies/{study_of(made, PAUL)}")
    assert study.status_code == 200 and f"<code>{SUD}</code>" in study.text
    assert patient_links(study.text) == [patient_url(PAUL)]
    series = next(i for i in made if i.study_uid == study_of(made, PAUL)).series_uid
    image = browser.get(f"/imaging/studies/{study_of(made, PAUL)}/series/{series}")
    assert image.status_code == 200 and patient_links(image.text) == [patient_url(PAUL)]
    assert f"<code>{SUD}</code>" in image.text
    english = browser.get("/imaging", params={"identifier": SHARED, "lang": "en"}).text
    assert "Issuer (site)" in english and "<em>unknown</em>" in english


def test_the_audit_names_each_patient_with_its_issuer(
    browser: TestClient, archive: tuple[Hub, list[SynthInstance]]
) -> None:
    hub, made = archive
    browser.get(patient_url(PAUL))
    event = hub.audit.search(action="GET /imaging/patients/{patient_id:path}", limit=1)[0]
    detail = json.loads(event.detail)
    assert event.patient_id == SHARED and detail["patients"] == [SHARED]  # searched by IPP, as before
    assert detail["patient_issuers"] == [{"patient_id": SHARED, "issuer": SUD}]
    assert event.resource_id == study_of(made, PAUL)

    browser.get("/imaging", params={"identifier": SHARED})
    search = hub.audit.search(action="GET /imaging", limit=1)[0]
    assert search.patient_id == SHARED
    assert json.loads(search.detail)["patient_issuers"] == [
        {"patient_id": SHARED, "issuer": None},
        {"patient_id": SHARED, "issuer": SUD},
        {"patient_id": SHARED, "issuer": NORD},
    ]

    study = study_of(made, MARIE_NORD)
    sop = next(i for i in made if i.study_uid == study)
    browser.get(f"/imaging/studies/{study}")
    browser.get(f"/imaging/studies/{study}/series/{sop.series_uid}/instances/{sop.sop_uid}/rendered")
    for action in (
        "GET /imaging/studies/{study_uid}",
        "GET /imaging/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered",
    ):
        event = hub.audit.search(action=action, limit=1)[0]
        assert json.loads(event.detail)["patient_issuers"] == [{"patient_id": SHARED, "issuer": NORD}], action


def test_a_sites_short_issuer_code_is_found_once_named_in_the_settings(
    browser: TestClient, archive: tuple[Hub, list[SynthInstance]]
) -> None:
    """An older CHU Nord modality writes "CHUNORD" as IssuerOfPatientID instead of the IPP
    system: Marie's images from it are found through her INS only once
    ``imaging.issuer_systems`` says which system that code stands for."""
    hub, _ = archive
    marie_old = ImagingPatient(SHARED, "Durand", "Marie", "19560312", "F", ("20190101080000",), "CHUNORD")
    [old_study] = {i.study_uid for i in studies(marie_old, seed=4, count=1)}
    stored = store_instances(hub.catalog, hub.objects, [(i.data, i.path) for i in studies(marie_old, seed=4)])
    assert {o.status for o in stored} == {STORED}

    def by_ins() -> list[tuple[str, str, str]]:
        return rows(browser.get("/imaging", params={"identifier": INS}).text)

    assert ("DURAND Marie", SHARED, "CHUNORD") not in by_ins()  # a code of no known system
    hub.settings.imaging.issuer_systems = {"CHUNORD": NORD}
    assert ("DURAND Marie", SHARED, "CHUNORD") in by_ins()
    page = browser.get(patient_url(marie_old))
    assert page.status_code == 200 and old_study in page.text
    # Never Paul's images: CH Sud's number, even with the code named.
    assert "LEFEBVRE" not in browser.get("/imaging", params={"identifier": f"{NORD}|{SHARED}"}).text
