"""Imaging in the browser: find a patient, their studies, a study's series with thumbnails, a
series' images one by one; the session's own image routes; the audit; the OHIF link."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.config.settings import ImagingSettings
from hdhub.hub import Hub
from hdhub.imaging.rejection import reject
from hdhub.imaging.store import STORED, store_instances
from hdhub.privacy.identity_store import IdentityRecord
from hdhub.security import users
from hdhub.synth.dicom import ImagingPatient, SynthInstance, studies
from tests.web.conftest import PASSWORD, Site

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
INS = "280017512345608"
NORD_IPP, SUD_IPP, OTHER_IPP = "0012345678", "0187654321", "0055555555"
PNG, JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
# Marie Durand: seen at two sites (two IPPs, one INS); images at both. Jean Petit: someone else.
MARIE_NORD = ImagingPatient(NORD_IPP, "Durand", "Marie", "19560312", "F",
                            ("20190405093000", "20230611141500", "20240102080000"),
                            "https://hdhub.example/nord/ipp", "CHU Nord")  # fmt: skip
MARIE_SUD = ImagingPatient(SUD_IPP, "Durand", "Marie", "19560312", "F", ("20210910100000",),
                           "https://hdhub.example/sud/ipp", "CH Sud")  # fmt: skip
JEAN = ImagingPatient(OTHER_IPP, "Petit", "Jean", "19800101", "M", ("20220202120000",))


def patient_url(patient: ImagingPatient) -> str:
    """A patient's page: (Patient ID, issuer); no issuer in the images, none in the link."""
    issuer = f"?{urlencode({'issuer': patient.issuer})}" if patient.issuer else ""
    return f"/imaging/patients/{patient.patient_id}{issuer}"


@dataclass
class Archive:
    hub: Hub
    instances: list[SynthInstance]

    def of(self, patient_id: str) -> list[SynthInstance]:
        return [i for i in self.instances if i.patient_id == patient_id]


@pytest.fixture
def archive(site: Site) -> Archive:
    hub = site.hub
    with Session(hub.catalog) as s, s.begin():
        users.create_user(s, "comite", ["committee"], password=PASSWORD)
    marie = {"name": [{"family": "Durand", "given": ["Marie"]}], "birthDate": "1956-03-12"}
    hub.identities.put_many([
        IdentityRecord("nord", "11" * 20, "22" * 20, marie | {"identifier": [
            {"system": MARIE_NORD.issuer, "value": NORD_IPP}, {"system": INS_SYSTEM, "value": INS}]}),
        IdentityRecord("sud", "33" * 20, "22" * 20, marie | {"identifier": [
            {"system": MARIE_SUD.issuer, "value": SUD_IPP}, {"system": INS_SYSTEM, "value": INS}]}),
    ])  # fmt: skip
    made = [
        *studies(MARIE_NORD, seed=7, count=2),
        *studies(MARIE_SUD, seed=7, count=1),
        *studies(JEAN, seed=7, count=1),
    ]
    outcomes = store_instances(hub.catalog, hub.objects, [(i.data, i.path) for i in made])
    assert {o.status for o in outcomes} == {STORED}
    return Archive(hub, made)


@pytest.fixture
def browser(archive: Archive) -> Iterator[TestClient]:
    with TestClient(create_app(archive.hub), base_url="http://hdhub.test") as client:
        yield client


def sign_in(client: TestClient, username: str) -> None:
    r = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/imaging"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text


def links(html: str, pattern: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="([^"]*)"', html) if re.search(pattern, unescape(h))]


def image_routes(archive: Archive) -> list[str]:
    first = archive.of(NORD_IPP)[0]
    base = f"/imaging/studies/{first.study_uid}/series/{first.series_uid}"
    return [f"{base}/thumbnail", f"{base}/instances/{first.sop_uid}/rendered"]


def page_routes(archive: Archive) -> list[str]:
    first = archive.of(NORD_IPP)[0]
    study = f"/imaging/studies/{first.study_uid}"
    return ["/imaging", f"/imaging?identifier={INS}", patient_url(MARIE_NORD), study,
            f"{study}/series/{first.series_uid}?i=2"]  # fmt: skip


def test_the_pages_and_images_need_a_session(browser: TestClient, archive: Archive) -> None:
    r = browser.get("/imaging", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/imaging"
    for path in page_routes(archive)[2:] + image_routes(archive):
        r = browser.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/imaging/"), path


@pytest.mark.parametrize("username", ["alice", "comite"])  # a researcher, the committee
def test_other_roles_are_refused_every_page_and_image(browser: TestClient, archive: Archive,
                                                      username: str) -> None:  # fmt: skip
    sign_in(browser, username)
    assert 'href="/imaging"' not in browser.get("/").text  # not in their menu
    for path in page_routes(archive) + image_routes(archive):
        r = browser.get(path)
        assert r.status_code == 403, path
        assert "Durand" not in r.text and not r.content.startswith((PNG, JPEG)), path


def test_a_clinician_walks_from_patient_to_image(browser: TestClient, archive: Archive) -> None:
    sign_in(browser, "dr-lambert")
    home = browser.get("/imaging")
    assert home.status_code == 200 and 'href="/imaging" aria-current="page"' in home.text
    assert '<label for="identifier">' in home.text and '<label for="name">' in home.text
    assert "Patients trouvés" not in home.text  # nothing listed before a search

    # The INS finds the person through the identity store: both sites' Patient IDs, not Jean.
    found = browser.get("/imaging", params={"identifier": INS})
    assert found.status_code == 200 and "Patients trouvés (2)" in found.text
    assert links(found.text, "/imaging/patients/") == [patient_url(MARIE_NORD), patient_url(MARIE_SUD)]
    assert "DURAND Marie" in found.text and OTHER_IPP not in found.text and '<th scope="col">' in found.text
    # A site's IPP as system|value reaches the same person; a bare IPP is its Patient ID.
    by_ipp = browser.get("/imaging", params={"identifier": f"{MARIE_SUD.issuer}|{SUD_IPP}"})
    assert NORD_IPP in by_ipp.text and SUD_IPP in by_ipp.text
    bare = browser.get("/imaging", params={"identifier": OTHER_IPP})
    assert links(bare.text, "/imaging/patients/") == [patient_url(JEAN)]
    # A name through the QIDO index: any case, "Family Given", a Patient ID.
    for name in ("dur", "Durand Marie", "MARIE", NORD_IPP):
        page = browser.get("/imaging", params={"name": name})
        assert f"/imaging/patients/{NORD_IPP}" in page.text and OTHER_IPP not in page.text, name
    assert "Aucun patient" in browser.get("/imaging", params={"name": "Zzz"}).text

    # The patient's studies, newest first.
    patient = browser.get(patient_url(MARIE_NORD))
    assert patient.status_code == 200 and "<h1>DURAND Marie</h1>" in patient.text
    study_links = links(patient.text, r"^/imaging/studies/")
    dates = re.findall(r'studies/[\d.]+">(\d{4}-\d{2}-\d{2})', patient.text)
    assert len(study_links) == 2 and dates == sorted(dates, reverse=True)
    assert {s.study_uid for s in archive.of(NORD_IPP)} == {link.rsplit("/", 1)[1] for link in study_links}

    # A study: each series with a thumbnail (alt text), a link to its images; no OHIF link.
    study = browser.get(study_links[0])
    assert study.status_code == 200 and "OHIF" not in study.text
    thumbnails = re.findall(r'<img src="([^"]+/thumbnail)"[^>]*alt="([^"]+)"', study.text, re.S)
    series_links = links(study.text, r"/series/[\d.]+$")
    assert len(thumbnails) == len(series_links) >= 2 and all(alt.strip() for _, alt in thumbnails)
    thumb = browser.get(thumbnails[0][0])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content.startswith(JPEG) and thumb.headers["cache-control"].startswith("private")

    # A series, image by image: previous and next links, the rendered image.
    series = browser.get(series_links[0])
    assert series.status_code == 200 and "Image 1 sur" in series.text and 'rel="prev"' not in series.text
    following = links(series.text, r"\?i=2$")
    assert following
    second = browser.get(following[0])
    assert "Image 2 sur" in second.text and 'rel="prev"' in second.text
    [src] = re.findall(r'<img src="([^"]+/rendered)"', second.text)
    image = browser.get(src)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(PNG) and image.headers["cache-control"].startswith("private")
    last = browser.get(series_links[0] + "?i=999")  # past the end: the last image
    assert 'rel="next"' not in last.text and "Image 1 sur" not in last.text
    english = browser.get(series_links[0] + "?lang=en")
    assert "Image 1 of" in english.text and "Next image" in english.text


def test_each_request_is_audited_with_its_patient(browser: TestClient, archive: Archive) -> None:
    sign_in(browser, "dr-lambert")
    first = archive.of(NORD_IPP)[0]
    for path in page_routes(archive)[2:] + image_routes(archive):
        assert browser.get(path).status_code == 200, path
    events = archive.hub.audit.search(patient=NORD_IPP, actor="dr-lambert")
    actions = {e.action for e in events}
    assert {
        "GET /imaging/patients/{patient_id:path}",
        "GET /imaging/studies/{study_uid}",
        "GET /imaging/studies/{study_uid}/series/{series_uid}",
        "GET /imaging/studies/{study_uid}/series/{series_uid}/thumbnail",
        "GET /imaging/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered",
    } <= actions
    assert all(e.resource_type == "ImagingStudy" and e.role == "clinician" for e in events)
    assert any(first.study_uid in (e.resource_id or "") for e in events)
    # A search names every patient it listed.
    browser.get("/imaging", params={"identifier": INS})
    search = archive.hub.audit.search(action="GET /imaging", limit=1)[0]
    assert search.patient_id == f"{NORD_IPP},{SUD_IPP}" and json.loads(search.detail)["persons"] == [
        "22" * 20
    ]


def test_the_ohif_link_only_when_configured(browser: TestClient, archive: Archive) -> None:
    sign_in(browser, "dr-lambert")
    study = archive.of(NORD_IPP)[0].study_uid
    assert "OHIF" not in browser.get(f"/imaging/studies/{study}").text
    archive.hub.settings.imaging.ohif_url = "https://viewer.example/viewer?StudyInstanceUIDs={study}"
    page = browser.get(f"/imaging/studies/{study}")
    assert f'href="https://viewer.example/viewer?StudyInstanceUIDs={study}"' in page.text
    assert "Ouvrir dans OHIF" in page.text
    for bad in ("javascript:alert(1)//{study}", "https://viewer.example/no-placeholder"):
        with pytest.raises(ValueError, match="study"):
            ImagingSettings(ohif_url=bad)


def test_rejected_instances_are_never_shown(browser: TestClient, archive: Archive) -> None:
    sign_in(browser, "dr-lambert")
    first = archive.of(NORD_IPP)[0]
    series = [i for i in archive.instances if i.series_uid == first.series_uid]
    base = f"/imaging/studies/{first.study_uid}/series/{first.series_uid}"
    reject(archive.hub.catalog, first.study_uid, first.series_uid, first.sop_uid, "113001")
    page = browser.get(base)
    assert f"Image 1 sur {len(series) - 1}" in page.text and first.sop_uid not in page.text
    assert browser.get(f"{base}/instances/{first.sop_uid}/rendered").status_code == 404
    assert browser.get(f"{base}/thumbnail").status_code == 200  # the next image stands in
    reject(archive.hub.catalog, first.study_uid, first.series_uid, None, "113001")
    assert browser.get(f"{base}/thumbnail").status_code == 404
    assert browser.get(base).status_code == 404
    assert first.series_uid not in browser.get(f"/imaging/studies/{first.study_uid}").text
    reject(archive.hub.catalog, first.study_uid, None, None, "113001")
    assert browser.get(f"/imaging/studies/{first.study_uid}").status_code == 404
    assert first.study_uid not in browser.get(patient_url(MARIE_NORD)).text


def test_hostile_input_is_refused_not_a_crash(browser: TestClient, archive: Archive) -> None:
    sign_in(browser, "dr-lambert")
    first = archive.of(NORD_IPP)[0]
    base = f"/imaging/studies/{first.study_uid}/series/{first.series_uid}"
    for path in (
        "/imaging/studies/..%2F..%2Fetc%2Fpasswd",
        "/imaging/studies/<script>alert(1)</script>",
        "/imaging/studies/" + "1." * 40 + "1",
        f"{base}/instances/..%2F..%2Fsecrets/rendered",
        f"{base}/instances/<script>/rendered",
        f"/imaging/studies/{first.study_uid}/series/2.25.1<svg onload=alert(1)>/thumbnail",
        "/imaging/patients/<script>alert(1)</script>",
        "/imaging/patients/" + "9" * 65,
        "/imaging/patients/..%2F..%2F..%2Fetc",
        f"{base}?i=abc",
        f"{base}?i=-1",
        f"{base}?i=" + "9" * 40,
        "/imaging?identifier=" + "x" * 5000,
        "/imaging?name=" + "y" * 5000,
        "/imaging?identifier=no-value|",
        "/imaging?name=*",
        "/imaging?name=%3Cscript%3Ealert(1)%3C/script%3E",
        "/imaging?identifier=%3Cscript%3E%7Cx",
    ):
        r = browser.get(path)
        assert 400 <= r.status_code < 500 or (r.status_code == 200 and "Aucun patient" in r.text), path
        assert "<script>" not in r.text and "<svg onload" not in r.text, path


def test_pages_and_images_answer(browser: TestClient, archive: Archive) -> None:
    """Every page and image answers (how fast: the walk-through's timings, BENCHMARKS.md)."""
    sign_in(browser, "dr-lambert")
    for path in [*page_routes(archive), "/imaging?name=dur", *image_routes(archive)]:
        assert browser.get(path).status_code == 200, path


@pytest.mark.integration
def test_with_the_keyboard_in_a_browser(archive: Archive) -> None:
    """Debian's chromium (Playwright): search with the keyboard, follow the links, every image
    loaded through the session cookie; readable on a tablet."""
    from tests.conftest import live_server

    if not Path("/usr/bin/chromium").exists():
        if os.environ.get("CI_REQUIRE_SERVICES"):
            raise RuntimeError("chromium missing: scripts/debian-packages.sh installs it")
        pytest.skip("chromium missing (scripts/debian-packages.sh installs it)")
    from playwright.sync_api import sync_playwright

    with live_server(archive.hub) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            page.goto(f"{url}/login?next=/imaging")
            page.wait_for_function("document.activeElement && document.activeElement.id === 'username'")
            page.keyboard.type("dr-lambert")
            page.keyboard.press("Tab")
            page.keyboard.type(PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{url}/imaging")
            page.wait_for_function("document.activeElement && document.activeElement.id === 'identifier'")
            page.keyboard.type(INS)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{url}/imaging?identifier={INS}&name=")
            page.get_by_role("link", name="DURAND Marie").first.focus()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{url}{patient_url(MARIE_NORD)}")
            page.locator("main table a").first.click()
            page.wait_for_load_state()
            images = page.locator("main img")
            assert images.count() >= 2
            assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            assert all(images.nth(k).get_attribute("alt") for k in range(images.count()))
            page.locator("main li a").first.click()
            page.get_by_role("link", name="Image suivante").click()
            page.wait_for_url("**?i=2")
            assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            page.set_viewport_size({"width": 768, "height": 1024})  # a tablet
            assert page.locator("main img").bounding_box()["width"] <= 768  # type: ignore[index]
        finally:
            browser.close()
