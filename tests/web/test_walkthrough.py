"""Every role's main path, end to end, in a real browser against a running `hdhub demo`.

Debian's chromium, driven by Playwright (headless, ``--no-sandbox``), against the README's main
command run as a new user runs it (its own home, a free port, the printed passwords):

1. a researcher builds a cohort in the explorer, saves it and submits a project using it;
2. two committee members review and approve it;
3. a data engineer provisions its workspace from the project's page;
4. the researcher takes a project token, works in the workspace with the Python client and
   asks, in the browser, to release an aggregate table; the two checkers approve it;
5. the DPO finds all of it in the audit log, and the chain verifies;
6. a clinician opens a patient's study, looks at an image and acknowledges an alert.

On every page: axe-core (shipped by axe-playwright-python) finds no serious or critical
violation, and a screenshot is taken — into ``SCREENSHOTS_DIR`` when set (the README's
docs/screenshots are made this way), else into the test's temporary folder. Each page's load
time is written next to the screenshots (timings are reported, never asserted).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _free_port
from tests.web.test_browser import CHROMIUM

pytestmark = pytest.mark.integration
SLUG = "etude-walk"
SERIOUS = ("serious", "critical")


@dataclass
class Demo:
    url: str
    passwords: dict[str, str]
    ipp: str
    shots: Path
    timings: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    count: int = 0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if not CHROMIUM.exists():
        if os.environ.get("CI_REQUIRE_SERVICES"):
            raise RuntimeError("chromium missing: scripts/debian-packages.sh installs it")
        pytest.skip("chromium missing (scripts/debian-packages.sh installs it)")
    root = tmp_path_factory.mktemp("walkthrough")
    port = _free_port()
    log = (root / "demo.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hdhub.cli.main", "--home", str(root / "home"), "demo", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (root / "demo.log").read_text()
            assert time.monotonic() < deadline, "hdhub demo did not start serving"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        out = (root / "demo.log").read_text()
        passwords = dict(re.findall(r"^\s+(demo-[\w-]+)\s+password: (\S+)", out, re.M))
        ipp = re.search(r"e\.g\. IPP (\S+) at /imaging", out)
        assert ipp and {"demo-admin", "demo-researcher", "demo-committee", "demo-dpo"} <= set(passwords), out
        shots = Path(os.environ.get("SCREENSHOTS_DIR") or root / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield Demo(url, passwords, ipp.group(1), shots)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def check_page(demo: Demo, page: Any, name: str) -> None:
    """axe-core on the page as it is now, its screenshot, and its width at 1280 px and on a tablet."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    for violation in results.response["violations"]:
        if violation["impact"] in SERIOUS:
            targets = [n["target"] for n in violation["nodes"]][:3]
            demo.violations.append(f"{name} ({page.url}): {violation['id']} {targets}")
    demo.count += 1
    page.screenshot(path=str(demo.shots / f"{demo.count:02d}-{name}.png"))
    if page.evaluate(SIDEWAYS):
        demo.violations.append(f"{name} ({page.url}): scrolls sideways at {page.viewport_size['width']} px")
    # The same document on a tablet, in a page of its own (resizing this one upsets later clicks).
    tablet = page.context.new_page()
    tablet.set_viewport_size({"width": 768, "height": 1024})
    tablet.set_content(page.content().replace("<head>", f'<head><base href="{demo.url}/">', 1))
    if tablet.evaluate(SIDEWAYS):
        demo.violations.append(f"{name} ({page.url}): scrolls sideways on a tablet (768 px)")
    tablet.close()


SIDEWAYS = "document.documentElement.scrollWidth > document.documentElement.clientWidth"
INVALID_FIELDS = """b => b.form ? [...b.form.elements].filter(e => e.willValidate && !e.checkValidity())
                                   .map(e => `${e.name}: ${e.validationMessage}`) : []"""


def submit(page: Any, selector: str, expected: str | re.Pattern[str]) -> None:
    """Click a form's button and wait for the page it leads to; an error page fails with its text."""
    invalid = page.eval_on_selector(selector, INVALID_FIELDS)
    assert invalid == [], invalid  # the browser would refuse to send the form
    with page.expect_navigation():
        page.click(selector)
    ok = expected.fullmatch(page.url) if isinstance(expected, re.Pattern) else page.url == expected
    assert ok, (page.url, page.inner_text("main")[:1000])


class Session:
    """One person's browser: signs in, visits pages (checked with axe, photographed, timed)."""

    def __init__(self, demo: Demo, chromium: Any, user: str) -> None:
        self.demo = demo
        self.context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
        self.context.set_default_timeout(60_000)  # a loaded CI machine
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.context.on("requestfinished", self._timed)
        self.page.goto(f"{demo.url}/login")
        self.page.fill("#username", user)
        self.page.fill("#password", demo.passwords[user])
        submit(self.page, "form[action='/login'] button[type=submit]", f"{demo.url}/")

    def _timed(self, request: Any) -> None:
        """Every request the UI makes (pages, form posts, images), by its route: the slowest time."""
        if request.url.startswith(self.demo.url) and "/alerts/live" not in request.url:
            path = re.sub(
                r"/[0-9a-f.]{16,}|/\d+(?=/|$)", "/…", request.url[len(self.demo.url) :].split("?")[0]
            )
            key, seconds = f"{request.method} {path}", request.timing["responseEnd"] / 1000
            self.demo.timings[key] = round(max(seconds, self.demo.timings.get(key, 0.0)), 3)

    def visit(self, path: str) -> Any:
        response = self.page.goto(f"{self.demo.url}{path}")
        assert response is not None and response.ok, (path, response and response.status)
        return response

    def check(self, name: str) -> None:
        check_page(self.demo, self.page, name)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors


def image_shown(page: Any) -> None:
    """The page's first image has loaded and decoded (rendered on demand: it may take a moment on
    a busy machine); a broken image fails here after the timeout."""
    page.wait_for_selector("img")
    page.wait_for_function(
        "() => { const i = document.querySelector('img'); return i.complete && i.naturalWidth > 0 }",
        timeout=30_000,
    )


def test_every_role_walks_its_main_path(demo: Demo, chromium: Any, tmp_path: Path) -> None:
    from hdhub.workspaces.client import connect

    # 1. The researcher builds a cohort and submits a project using it.
    researcher = Session(demo, chromium, "demo-researcher")
    page = researcher.page
    researcher.check("home-researcher")
    researcher.visit("/cohorts")
    page.fill("#q", "diabetes")
    page.press("#q", "Enter")
    page.wait_for_selector("button[name=add_entry][value='201826']")
    researcher.check("cohorts-search")
    submit(page, "button[name=add_entry][value='201826']", re.compile(".*/cohorts\\?.*"))
    page.wait_for_selector("input[name=entry_concept][value='201826']", state="attached")
    submit(page, "button[formaction='/cohorts/count']", f"{demo.url}/cohorts/count")
    researcher.check("cohorts-count")
    page.fill("#name", "walk-t2dm")
    submit(page, "button[formaction='/cohorts/save']", re.compile(r".*/cohorts\?.*load=walk-t2dm.*"))
    researcher.check("cohorts-saved")
    researcher.visit("/projects/new")
    page.fill("#title", "Walk-through: type 2 diabetes in the group")
    page.fill("#slug", SLUG)
    page.fill("#purpose", "Describe the age and sex of the group's patients with type 2 diabetes.")
    page.select_option("#legal_basis", "MR-004")
    page.fill("#pi", "demo-clinician")
    page.fill("#members", "demo-researcher")
    page.select_option("#cohort", page.locator("#cohort option", has_text="walk-t2dm").get_attribute("value"))
    page.click("summary:has(code:text-is('person'))")
    page.check("#all-person")
    page.fill("#just-person", "Age and sex describe the cohort.")
    page.fill("#duration_months", "12")
    researcher.check("project-new")
    submit(page, "button[name=action][value=submit]", f"{demo.url}/projects/{SLUG}")
    researcher.check("project-submitted")
    researcher.visit("/projects")
    assert SLUG in page.content()

    # 2. Two committee members review and approve it.
    for n, member in enumerate(("demo-committee", "demo-committee-2")):
        committee = Session(demo, chromium, member)
        if n == 0:
            committee.visit("/projects")
            committee.check("projects-committee-queue")
        committee.visit(f"/projects/{SLUG}")
        committee.page.fill("#text", f"{member}: the perimeter is proportionate.")
        committee.page.select_option("#vote", "approve")
        submit(
            committee.page,
            f"form[action='/projects/{SLUG}/review'] button[type=submit]",
            f"{demo.url}/projects/{SLUG}",
        )
        if n == 1:
            committee.check("project-review")
            committee.page.select_option("#outcome", "approved")
            submit(
                committee.page,
                f"form[action='/projects/{SLUG}/decision'] button[type=submit]",
                f"{demo.url}/projects/{SLUG}",
            )
            assert "approved" in committee.page.content()
        committee.close()

    # 3. A data engineer provisions the workspace from the project's page.
    engineer = Session(demo, chromium, "demo-admin")
    engineer.visit(f"/projects/{SLUG}")
    submit(engineer.page, f"form[action='/projects/{SLUG}/provision'] button", f"{demo.url}/projects/{SLUG}")
    deadline = time.monotonic() + 120
    while "Espace de travail prêt" not in engineer.page.content():
        assert "La préparation a échoué" not in engineer.page.content()
        assert time.monotonic() < deadline, "provisioning did not finish"
        time.sleep(0.5)
        engineer.visit(f"/projects/{SLUG}")
    engineer.check("project-provisioned")

    # 4. The researcher works in the workspace and asks to release a table.
    researcher.visit(f"/projects/{SLUG}")
    submit(page, f"form[action='/projects/{SLUG}/token'] button", f"{demo.url}/projects/{SLUG}/token")
    snippet = page.locator("pre code").inner_text()
    token = re.search(r'ws\.connect\("[^"]+", "([^"]+)"\)', snippet)
    assert token, snippet
    with connect(SLUG, token.group(1), url=demo.url, directory=tmp_path / "ws") as workspace:
        rows = workspace.sql(
            "SELECT gender_concept_id AS sex, count(*) AS n FROM person GROUP BY 1"
        ).to_pandas()
    assert rows["n"].sum() > 0
    table = tmp_path / "sex.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sex", "n"])
        for sex, n in rows.itertuples(index=False):
            writer.writerow([sex, max(int(n), 10)])  # as published: no cell under 10
    researcher.visit(f"/projects/{SLUG}")
    page.set_input_files("#release-file", str(table))
    submit(
        page,
        f"form[action='/projects/{SLUG}/releases'] button[type=submit]",
        f"{demo.url}/projects/{SLUG}#releases",
    )
    assert "sex.csv" in page.content()
    researcher.check("project-release-requested")
    for member in ("demo-committee", "demo-committee-2"):
        checker = Session(demo, chromium, member)
        checker.visit(f"/projects/{SLUG}")
        submit(
            checker.page, "form[action^='/releases/'] button[value=approve]", f"{demo.url}/projects/{SLUG}"
        )
        checker.close()
    researcher.visit(f"/projects/{SLUG}")
    assert "publié (demo-committee, demo-committee-2)" in page.locator("#releases ~ table").inner_text()
    researcher.close()

    # 5. The DPO finds all of it in the audit log; the chain verifies.
    dpo = Session(demo, chromium, "demo-dpo")
    dpo.visit(f"/audit?project={SLUG}")
    log = dpo.page.content()
    for action in ("POST /projects/new", "POST /projects/{slug}/review", "POST /projects/{slug}/decision",
                   "project.provision", "POST /projects/{slug}/token", "POST /projects/{slug}/releases",
                   "POST /releases/{release_id}/review"):  # fmt: skip
        assert action in log, action
    dpo.check("audit-project")
    dpo.visit("/audit?verify=1")
    dpo.check("audit-verified")
    dpo.close()

    # 6. A clinician opens a patient's study and acknowledges an alert.
    clinician = Session(demo, chromium, "demo-clinician")
    page = clinician.page
    clinician.visit("/imaging")
    page.fill("#identifier", demo.ipp)
    submit(page, "form[action='/imaging'] button[type=submit]", re.compile(r".*/imaging\?.*"))
    page.wait_for_selector("a[href^='/imaging/patients/']")
    clinician.check("imaging-search")
    page.click("a[href^='/imaging/patients/']")
    clinician.check("imaging-patient")
    page.click("a[href^='/imaging/studies/']")
    image_shown(page)
    clinician.check("imaging-study")
    page.click("a[href*='/series/']")
    image_shown(page)
    clinician.check("imaging-series")
    clinician.visit("/alerts?lang=en")
    clinician.check("alerts-english")
    first = page.locator("tr[id^='alert-']").first
    alert_id = first.get_attribute("id")
    patient_link = first.locator("a[href^='/monitoring/patients/']").get_attribute("href")
    with page.expect_navigation():
        first.locator("button").click()
    assert page.url.startswith(f"{demo.url}/alerts"), page.url
    assert page.locator(f"#{alert_id}").count() == 0
    clinician.visit(patient_link)
    clinician.check("patient-vitals")
    clinician.close()

    # Every other page, as the roles that use them.
    for path, name in (("/warehouse", "warehouse"), ("/admin", "admin"), ("/admin/users", "admin-users"),
                       ("/admin/tokens", "admin-tokens"), ("/admin/sites", "admin-sites"),
                       ("/admin/policies", "admin-policies"), ("/audit", "audit")):  # fmt: skip
        engineer.visit(path)
        engineer.check(name)
    engineer.close()
    public = chromium.new_context(viewport={"width": 768, "height": 1024}, locale="en-GB")  # a tablet
    tab = public.new_page()
    tab.goto(f"{demo.url}/register?lang=en")
    assert SLUG in tab.content()
    check_page(demo, tab, "register-tablet")
    tab.goto(f"{demo.url}/login?lang=fr")
    check_page(demo, tab, "login-tablet")
    public.close()
    again = Session(demo, chromium, "demo-researcher")  # "my projects", and an error page
    again.visit("/projects")
    assert SLUG in again.page.content()
    again.check("projects-mine")
    missing = again.page.goto(f"{demo.url}/projects/no-such-project")
    assert missing is not None and missing.status == 404
    again.check("error-page")
    again.errors.remove("Failed to load resource: the server responded with a status of 404 (Not Found)")
    again.close()

    (tmp_path / "timings.json").write_text(json.dumps(demo.timings, indent=1, sort_keys=True))
    slowest = max(demo.timings.items(), key=lambda item: item[1])
    print(f"{len(demo.timings)} routes the pages used; the slowest, {slowest[0]}, took {slowest[1]:.3f} s")
    assert demo.violations == [], "\n".join(demo.violations)
