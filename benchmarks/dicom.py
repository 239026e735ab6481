"""Imaging archive: hdhub against Orthanc in the same run, STOW-RS and C-STORE ingest, QIDO latency.

Installs Orthanc and dcmtk from Debian when missing (scripts/debian-packages.sh orthanc).
Generates N small instances (pydicom's MR_small.dcm with new UIDs: ~10 KB each, 10 per
study), then for each archive started on loopback (Orthanc from the Debian packages
orthanc + orthanc-dicomweb, with SQLite index; hdhub with its embedded defaults):

- STOW-RS: POST the instances, 50 per multipart request, and time them;
- C-STORE: dcmtk's storescu (TCP_NODELAY=1) sends the same instances as files (new UIDs);
- QIDO-RS: exact PatientID study searches, p50 and p99 latency.

Prints instances/s and the ratio hdhub / Orthanc. Target (issue 4): ingest >= 1.0x Orthanc.
The issue's QIDO target at 1,000,000 instances is not measured by this script yet.

    python benchmarks/dicom.py [--instances 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pydicom.data
from pydicom.uid import generate_uid

PER_REQUEST = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instances(n: int) -> list[bytes]:
    template = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small.dcm"))
    out = []
    study = series = ""
    for i in range(n):
        if i % 10 == 0:
            study, series = generate_uid(), generate_uid()
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = f"BENCH{i // 10:06d}"
        buf = BytesIO()
        ds.save_as(buf)
        out.append(buf.getvalue())
    return out


def wait_http(url: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def stow(base: str, data: list[bytes], headers: dict[str, str]) -> float:
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(data), PER_REQUEST):
            body = b"".join(
                b"--bench\r\nContent-Type: application/dicom\r\n\r\n" + d + b"\r\n"
                for d in data[i : i + PER_REQUEST]
            )
            r = client.post(
                f"{base}/studies",
                content=body + b"--bench--\r\n",
                headers=headers
                | {"Content-Type": 'multipart/related; type="application/dicom"; boundary=bench'},
            )
            r.raise_for_status()
    return len(data) / (time.perf_counter() - started)


def cstore(folder: Path, port: int, aec: str) -> float:
    files = list(folder.iterdir())
    started = time.perf_counter()
    subprocess.run(
        ["/usr/bin/storescu", "-aet", "BENCH", "-aec", aec, "+sd", "127.0.0.1", str(port), str(folder)],
        check=True,
        env=os.environ | {"TCP_NODELAY": "1"},
        capture_output=True,
    )
    return len(files) / (time.perf_counter() - started)


def qido(base: str, headers: dict[str, str], n_patients: int) -> tuple[float, float]:
    times = []
    with httpx.Client(timeout=30) as client:
        for i in range(200):
            t = time.perf_counter()
            r = client.get(
                f"{base}/studies", params={"PatientID": f"BENCH{i % n_patients:06d}"}, headers=headers
            )
            r.raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def write_files(folder: Path, data: list[bytes]) -> Path:
    folder.mkdir(parents=True)
    for i, d in enumerate(data):
        (folder / f"{i:06d}.dcm").write_bytes(d)
    return folder


def orthanc(root: Path, stow_data: list[bytes], store_dir: Path, n_patients: int) -> dict[str, float]:
    http, dicom = free_port(), free_port()
    config = {
        "Name": "bench", "HttpPort": http, "DicomPort": dicom, "DicomAet": "ORTHANC",
        "StorageDirectory": str(root / "storage"), "IndexDirectory": str(root / "index"),
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"], "DicomWeb": {"Enable": True},
    }  # fmt: skip
    (root / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen(  # TCP_NODELAY=1: Orthanc's dcmtk leaves Nagle on otherwise
        ["/usr/sbin/Orthanc", str(root / "orthanc.json")],
        stderr=subprocess.DEVNULL,
        env=os.environ | {"TCP_NODELAY": "1"},
    )
    try:
        wait_http(f"http://127.0.0.1:{http}/system")
        base = f"http://127.0.0.1:{http}/dicom-web"
        return {
            "stow": stow(base, stow_data, {}),
            "cstore": cstore(store_dir, dicom, "ORTHANC"),
            **dict(zip(("qido_p50", "qido_p99"), qido(base, {}, n_patients), strict=True)),
        }
    finally:
        proc.terminate()
        proc.wait(30)


def hdhub(root: Path, stow_data: list[bytes], store_dir: Path, n_patients: int) -> dict[str, float]:
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from hdhub.catalog.migrate import upgrade
    from hdhub.config.deployment import init_deployment
    from hdhub.hub import Hub
    from hdhub.security import tokens, users

    home = root / "hdhub"
    init_deployment(home)
    hub = Hub.open(home)
    upgrade(hub.catalog)
    with Session(hub.catalog) as s, s.begin():
        user = users.create_user(
            s, "bench", ["data_engineer", "clinician"], password=secrets.token_urlsafe(16)
        )
        token, _ = tokens.issue_token(s, user, name="bench", ttl=timedelta(hours=2))
    hub.close()
    headers = {"Authorization": f"Bearer {token}"}
    http, dicom = free_port(), free_port()
    hdhub_cli = [sys.executable, "-m", "hdhub.cli.main", "--home", str(home)]
    server = subprocess.Popen(
        [*hdhub_cli, "serve", "--port", str(http)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{http}/healthz")
        base = f"http://127.0.0.1:{http}/dicomweb"
        results = {"stow": stow(base, stow_data, headers)}
        results.update(zip(("qido_p50", "qido_p99"), qido(base, headers, n_patients), strict=True))
    finally:
        server.terminate()
        server.wait(30)
    scp = subprocess.Popen(
        [*hdhub_cli, "dicom", "scp", "--port", str(dicom), "--allow", "BENCH"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", dicom)) == 0:
                    break
            time.sleep(0.2)
        results["cstore"] = cstore(store_dir, dicom, "HDHUB")
    finally:
        scp.terminate()
        scp.wait(30)
    return results


def main() -> None:
    # Orthanc and dcmtk from Debian, installed by the project's script when missing.
    subprocess.run(
        ["bash", str(Path(__file__).parents[1] / "scripts" / "debian-packages.sh"), "orthanc"], check=True
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    args = parser.parse_args()
    n = args.instances
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {}
        for name, run in (("orthanc", orthanc), ("hdhub", hdhub)):
            (root / name).mkdir()
            stow_data = instances(n)
            store_dir = write_files(root / name / "cstore", instances(n))
            results[name] = run(root / name, stow_data, store_dir, n // 10)
            shutil.rmtree(store_dir)
        print(f"{n:,} instances of ~{len(instances(1)[0]) // 1024} KB, 10 per study; 2 cores")
        print(f"{'':10} {'STOW-RS/s':>10} {'C-STORE/s':>10} {'QIDO p50 ms':>12} {'QIDO p99 ms':>12}")
        for name, r in results.items():
            rates = f"{r['stow']:>10,.0f} {r['cstore']:>10,.0f}"
            print(f"{name:10} {rates} {r['qido_p50']:>12.1f} {r['qido_p99']:>12.1f}")
        h, o = results["hdhub"], results["orthanc"]
        print(f"{'hdhub/orthanc':10} {h['stow'] / o['stow']:>9.2f}x {h['cstore'] / o['cstore']:>9.2f}x")


if __name__ == "__main__":
    main()
