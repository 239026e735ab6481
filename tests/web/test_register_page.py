"""The public register of research projects: a page of the site, public, in French and English."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.governance import projects as gov
from tests.web.conftest import Site
from tests.web.test_pages import sign_in


def test_the_register_needs_no_login_and_speaks_both_languages(site: Site) -> None:
    item = gov.DataItem("person", ("person_id",), "Count the patients.")
    with Session(site.hub.catalog) as s, s.begin():
        for slug, title in (("etude-hta", "Hypertension <à> domicile"), ("brouillon", "Un brouillon privé")):
            request = gov.ProjectRequest(slug, title, "Mesurer l'effet des alertes.", "MR-004", "dr-lambert",
                                         12, (item,), members=("alice",))  # fmt: skip
            gov.create_project(s, request, created_by="alice")
        gov.submit(s, gov.get_project(s, "etude-hta"), by="alice")
    with TestClient(create_app(site.hub), base_url="http://hdhub.test") as browser:
        fr = browser.get("/register", follow_redirects=False)
        assert fr.status_code == 200 and '<html lang="fr">' in fr.text
        assert "<h1>Registre public des projets</h1>" in fr.text and "soumis" in fr.text
        assert (
            "Hypertension &lt;à&gt; domicile" in fr.text and "dr-lambert" in fr.text and "MR-004" in fr.text
        )
        assert "brouillon" not in fr.text  # drafts stay private
        assert 'href="/login"' in fr.text and 'href="/register" aria-current="page"' in fr.text  # the layout
        assert "Count the patients" not in fr.text and "alice" not in fr.text  # no more than the register
        en = browser.get("/register?lang=en")
        assert '<html lang="en">' in en.text and "<h1>Public register of projects</h1>" in en.text
        assert "1 project(s)" in en.text and "hdhub_lang=en" in en.headers["set-cookie"]
        assert browser.get("/register", headers={"accept-language": "en-GB"}).text.count(
            "Principal investigator"
        )
        sign_in(browser, "alice")
        signed = browser.get("/register")
        assert (
            signed.status_code == 200
            and 'href="/projects"' in signed.text
            and "Sign out" in signed.text  # the language remembered
        )
        assert browser.get("/api/v1/register").json()[0]["project"] == "etude-hta"


def test_an_empty_register(site: Site) -> None:
    with TestClient(create_app(site.hub), base_url="http://hdhub.test") as browser:
        assert "Aucun projet soumis pour l'instant." in browser.get("/register").text.replace("&#39;", "'")
        assert "No project has been submitted yet." in browser.get("/register?lang=en").text
