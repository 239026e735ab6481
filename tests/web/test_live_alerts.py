"""Live alerts: the demo's feed of device readings, and the alert page's Server-Sent Events."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.catalog.models import Alert, MonitoringDevice, VitalValue
from hdhub.synth.live_devices import LiveFeed
from tests.web.conftest import Site
from tests.web.test_pages import sign_in


def counts(site: Site) -> tuple[int, int]:
    with Session(site.hub.catalog) as s:
        values = s.scalar(select(func.count()).select_from(VitalValue))
        alerts = s.scalar(select(func.coalesce(func.sum(Alert.count), 0)))
    return values, alerts


def test_the_live_feed_sends_readings_through_the_ingest(site: Site) -> None:
    feed = LiveFeed(site.hub.catalog, abnormal_every=2, seed=5)
    values, alerts = counts(site)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    results = [feed.tick(start + dt.timedelta(minutes=i)) for i in range(6)]  # a reading a minute
    assert all(r is not None and r.accepted >= 1 and not r.rejected for r in results)
    new_values, new_alerts = counts(site)
    assert new_values > values and new_alerts >= alerts + 3  # every second reading is abnormal
    with Session(site.hub.catalog) as s, s.begin():
        s.scalar(select(MonitoringDevice)).revoked_at = func.now()
    assert feed.tick() is None  # no device left to send


def test_the_alert_page_streams_new_alerts(site: Site) -> None:
    with TestClient(create_app(site.hub), base_url="http://hdhub.test") as browser:
        assert browser.get("/alerts/live", follow_redirects=False).status_code == 303
        sign_in(browser, "alice")  # a researcher
        assert browser.get("/alerts/live?seconds=1").status_code == 403
        browser.cookies.clear()
        sign_in(browser, "dr-lambert")
        page = browser.get("/alerts")
        assert 'aria-live="polite"' in page.text and 'new EventSource("/alerts/live")' in page.text
        LiveFeed(site.hub.catalog, abnormal_every=1, seed=1).tick()  # an abnormal reading, now
        with browser.stream("GET", "/alerts/live?seconds=1.5") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            body = "".join(stream.iter_text())
        assert "event: alert" in body and '"status":"open"' in body
