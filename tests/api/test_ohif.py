"""The OHIF Viewer against hdhub's DICOMweb: study list, series thumbnail, image displayed.

OHIF v2 (its UMD build from the npm registry, fetched by scripts/ohif.sh) runs in Debian's
chromium, driven by Playwright. As in a hospital, the browser talks to a reverse proxy
that serves the viewer and forwards /dicomweb to hdhub with the bearer token (the viewer
never holds it).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pydicom.data
import pytest
import uvicorn
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.hub import Hub
from hdhub.imaging.store import STORED, store_instances
from hdhub.security import tokens, users

pytestmark = pytest.mark.integration
OHIF = Path(__file__).parents[2] / ".cache" / "ohif" / "4.12.51" / "index.umd.js"
CHROMIUM = Path("/usr/bin/chromium")
if not (OHIF.exists() and CHROMIUM.exists()):
    if os.environ.get("CI_REQUIRE_SERVICES"):
        raise RuntimeError(
            "OHIF or chromium missing: scripts/ohif.sh and scripts/debian-packages.sh fetch them"
        )
    pytest.skip(
        "OHIF viewer or chromium missing (scripts/ohif.sh, scripts/debian-packages.sh)",
        allow_module_level=True,
    )

INDEX = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>OHIF on hdhub</title></head>
<body><div id="root"></div><script src="/app-config.js"></script><script src="/index.umd.js"></script>
<script>window.OHIFViewer.installViewer(window.config, "root", function () {});</script></body></html>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ct_study() -> tuple[str, list[tuple[bytes, str]]]:
    study, series = generate_uid(), generate_uid()
    items = []
    for i in range(3):
        ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName, ds.PatientID, ds.InstanceNumber = "OHIF^Test", "IPP-OHIF", i + 1
        ds.ImagePositionPatient = [-158.1, -179.0, -75.7 - 5 * i]
        buf = BytesIO()
        ds.save_as(buf)
        items.append((buf.getvalue(), f"ct{i}"))
    return study, items


@pytest.fixture
def viewer(local_hub: Hub) -> Iterator[tuple[str, str, list[tuple[str, int]]]]:
    """hdhub on loopback holding one CT study, and the proxy serving OHIF in front of it."""
    study, items = _ct_study()
    assert {o.status for o in store_instances(local_hub.catalog, local_hub.objects, items)} == {STORED}
    with Session(local_hub.catalog) as s, s.begin():
        user = users.create_user(s, "radiologue", ["clinician"], password=secrets.token_urlsafe(16))
        token, _ = tokens.issue_token(s, user, name="ohif-proxy", ttl=timedelta(hours=1))
    port = _free_port()
    api = uvicorn.Server(
        uvicorn.Config(create_app(local_hub), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=api.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not api.started and time.monotonic() < deadline:
        time.sleep(0.05)
    upstream, seen = f"http://127.0.0.1:{port}", []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(upstream, token, seen))
    root = f"http://127.0.0.1:{proxy.server_address[1]}"
    config = {
        "routerBasename": "/",
        "showStudyList": True,
        "extensions": [],
        "servers": {
            "dicomWeb": [
                {
                    "name": "hdhub",
                    "qidoRoot": f"{root}/dicomweb",
                    "wadoRoot": f"{root}/dicomweb",
                    "wadoUriRoot": f"{root}/dicomweb/wado",
                    "qidoSupportsIncludeField": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": True,
                }
            ]
        },
    }
    proxy.config_js = f"window.config = {json.dumps(config)};".encode()  # type: ignore[attr-defined]
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield root, study, seen
    finally:
        proxy.shutdown()
        api.should_exit = True


def _proxy_handler(upstream: str, token: str, seen: list[tuple[str, int]]) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/dicomweb/"):
                headers = {"Authorization": f"Bearer {token}", "Accept": self.headers.get("Accept", "*/*")}
                r = httpx.get(upstream + self.path, headers=headers, timeout=60)
                seen.append((self.path, r.status_code))
                self._send(
                    r.status_code, r.content, r.headers.get("content-type", "application/octet-stream")
                )
            elif self.path == "/index.umd.js":
                self._send(200, OHIF.read_bytes(), "application/javascript")
            elif self.path == "/app-config.js":
                self._send(200, self.server.config_js, "application/javascript")  # type: ignore[attr-defined]
            else:  # the viewer's own routes (/, /viewer/<study>)
                self._send(200, INDEX.encode(), "text/html")

    return Proxy


def _lit_pixels(page: object, selector: str) -> int:
    """Pixels brighter than black in the first canvas matching ``selector``."""
    return page.evaluate(  # type: ignore[attr-defined]
        """(selector) => {
            const canvas = document.querySelector(selector);
            if (!canvas) return -1;
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let lit = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 30) lit++;
            return lit;
        }""",
        selector,
    )


def test_ohif_lists_the_study_shows_its_thumbnail_and_displays_its_images(
    viewer: tuple[str, str, list[tuple[str, int]]],
) -> None:
    from playwright.sync_api import sync_playwright

    root, study, seen = viewer
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{root}/")
            page.wait_for_selector("text=IPP-OHIF", timeout=60_000)  # the study list, from QIDO-RS
            page.goto(f"{root}/viewer/{study}")
            page.wait_for_selector(".ThumbnailEntry canvas, .ImageThumbnail canvas", timeout=60_000)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _lit_pixels(page, ".cornerstone-canvas") < 5000:
                time.sleep(0.5)
            assert _lit_pixels(page, ".cornerstone-canvas") >= 5000  # the CT slice is on screen
            assert _lit_pixels(page, ".ImageThumbnail canvas") > 100  # and its series thumbnail
            assert page.locator("text=OHIF, Test").count() > 0  # the viewport's patient overlay
        finally:
            browser.close()
    assert seen and all(status < 400 for _, status in seen), seen
    assert any(path.startswith("/dicomweb/studies?") for path, _ in seen)  # QIDO-RS
    assert any("/metadata" in path for path, _ in seen)  # WADO-RS metadata
    assert any("/frames/" in path for path, _ in seen)  # WADO-RS frames
