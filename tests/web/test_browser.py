"""The alert page in a real browser (Debian's chromium driven by Playwright): sign in with the
keyboard, see the alert, acknowledge it, switch to English."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import live_server
from tests.web.conftest import PASSWORD, Site

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI_REQUIRE_SERVICES"):
            raise RuntimeError("chromium missing: scripts/debian-packages.sh installs it")
        pytest.skip("chromium missing (scripts/debian-packages.sh installs it)")
    return CHROMIUM


def test_sign_in_and_acknowledge_in_a_browser(site: Site, chromium: Path) -> None:
    from playwright.sync_api import sync_playwright

    with live_server(site.hub) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{url}/alerts")
            assert page.url.endswith("/login?next=/alerts")
            page.wait_for_function("document.activeElement && document.activeElement.id === 'username'")
            page.keyboard.type("dr-lambert")
            page.keyboard.press("Tab")
            page.keyboard.type(PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{url}/alerts")
            row = page.locator(f"#alert-{site.alert_id}")
            assert "191/113 mm Hg" in row.inner_text() and "urgent" in row.inner_text()
            row.get_by_role("button", name="Acquitter").click()
            page.wait_for_url(f"{url}/alerts")
            assert page.locator(f"#alert-{site.alert_id}").count() == 0  # gone from the open alerts
            page.get_by_role("link", name="English").click()
            assert page.get_by_role("heading", name="Remote-monitoring alerts").is_visible()
            page.set_viewport_size({"width": 768, "height": 1024})  # a tablet
            assert page.get_by_role("button", name="Sign out").is_visible()
            assert errors == []
        finally:
            browser.close()
