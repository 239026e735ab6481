"""Imaging archive: hdhub against Orthanc in the same run, STOW-RS and C-STORE ingest, QIDO latency.

Installs Orthanc and dcmtk from Debian when missing (scripts/debian-packages.sh orthanc).
Generates N small instances (pydicom's MR_small.dcm with new UIDs: ~10 KB each, 10 per
study), then for each archive started on loopback (Orthanc from the Debian packages
orthanc + orthanc-dicomweb, with SQLite index; hdhub with its embedded defaults):

- STOW-RS: POST the instances, 50 per multipart request, and time them;
- C-STORE: dcmtk's storescu (TCP_NODELAY=1) sends the same instances as files (new UIDs);
- QIDO-RS: exact PatientID study searches on that small archive, p50 and p99 latency.

Then QIDO-RS at scale: hdhub's catalog is filled with the index rows of --index-instances
instances (default 1,000,000: 100,000 studies of 2 series of 5 instances, 50,000
patients, each row with the DICOM JSON metadata of a real MR header) written straight
into the catalog, since storing a million objects would take the run's whole budget; the
API then answers a mix of searches, 200 of each kind, timed from the client.

Prints instances/s and the ratio hdhub / Orthanc. Targets (issue 4): ingest >= 1.0x
Orthanc; QIDO p50 <= 10 ms and p99 <= 50 ms at 1,000,000 instances.

    python benchmarks/dicom.py [--instances 2000] [--index-instances 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def _hdhub_home(root: Path) -> tuple[Path, str]:
    """A new deployment with a migrated catalog, and a token of a clinician data engineer."""
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
    return home, token


def _cli(home: Path) -> list[str]:
    return [sys.executable, "-m", "hdhub.cli.main", "--home", str(home)]


@contextmanager
def _hdhub_server(home: Path) -> Iterator[str]:
    http = free_port()
    server = subprocess.Popen(
        [*_cli(home), "serve", "--port", str(http)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{http}/healthz")
        yield f"http://127.0.0.1:{http}/dicomweb"
    finally:
        server.terminate()
        server.wait(30)


def hdhub(root: Path, stow_data: list[bytes], store_dir: Path, n_patients: int) -> dict[str, float]:
    home, token = _hdhub_home(root)
    headers = {"Authorization": f"Bearer {token}"}
    with _hdhub_server(home) as base:
        results = {"stow": stow(base, stow_data, headers)}
        results.update(zip(("qido_p50", "qido_p99"), qido(base, headers, n_patients), strict=True))
    dicom = free_port()
    scp = subprocess.Popen(
        [*_cli(home), "dicom", "scp", "--port", str(dicom), "--allow", "BENCH"],
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


SURNAMES = ["MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY",
            "MOREAU", "SIMON", "LAURENT", "LEFEBVRE", "MICHEL", "GARCIA", "DAVID", "BERTRAND", "ROUX",
            "VINCENT", "FOURNIER", "MOREL", "GIRARD", "ANDRE", "LEFEVRE", "MERCIER", "DUPONT", "LAMBERT",
            "BONNET", "FRANCOIS", "MARTINEZ"]  # fmt: skip
GIVEN = ["MARIE", "JEAN", "PIERRE", "MICHEL", "ANNE", "LEA", "PAUL", "LOUIS", "CLAIRE", "HUGO"]
MODALITIES = ["CT", "MR", "CR", "DX", "US", "PT", "MG"]


def _uid(kind: int, i: int) -> str:
    return f"1.2.826.0.1.3680043.10.1049.{kind}.{i}"


def fill_index(catalog: object, n_instances: int) -> int:
    """Index rows of ``n_instances`` (2 series of 5 per study, 2 studies per patient)."""
    from sqlalchemy import insert

    from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy, utcnow
    from hdhub.imaging.store import _metadata, parse

    rng = random.Random(1049)
    metadata = _metadata(parse(instances(1)[0]))
    n_studies = n_instances // 10
    now = utcnow()
    with catalog.begin() as conn:  # type: ignore[attr-defined]
        for start in range(0, n_studies, 5000):
            studies, series, rows = [], [], []
            for st in range(start, min(start + 5000, n_studies)):
                name = f"{SURNAMES[(st // 2) % len(SURNAMES)]}^{rng.choice(GIVEN)}"
                studies.append({
                    "study_uid": _uid(1, st), "patient_id": f"P{st // 2:07d}", "patient_name": name,
                    "patient_birth_date": f"{rng.randint(1930, 2020)}0101", "patient_sex": rng.choice("MF"),
                    "study_date": f"{rng.randint(2015, 2025)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",  # noqa: E501
                    "study_time": "101500", "accession_number": f"A{st:09d}", "study_id": str(st),
                    "study_description": "Scanner thoracique", "referring_physician_name": "DOC^TOR",
                    "created_at": now,
                })  # fmt: skip
                for se in range(2):
                    series_uid = _uid(2, st * 2 + se)
                    series.append({
                        "series_uid": series_uid, "study_uid": _uid(1, st), "modality": rng.choice(MODALITIES),  # noqa: E501
                        "series_number": str(se + 1), "series_description": "AX T1",
                        "body_part_examined": "CHEST",
                    })  # fmt: skip
                    for k in range(5):
                        sop = _uid(3, (st * 2 + se) * 5 + k)
                        rows.append({
                            "sop_instance_uid": sop, "series_uid": series_uid, "study_uid": _uid(1, st),
                            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.4", "instance_number": str(k + 1),
                            "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                            "object_key": f"dicom/{_uid(1, st)}/{series_uid}/{sop}.dcm", "size": 9000,
                            "sha256": "0" * 64, "metadata_json": metadata, "received_at": now,
                        })  # fmt: skip
            conn.execute(insert(DicomStudy), studies)
            conn.execute(insert(DicomSeries), series)
            conn.execute(insert(DicomInstance), rows)
    return n_studies * 10


def qido_at_scale(root: Path, n_instances: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of each kind of search over an index of ``n_instances``."""
    from hdhub.hub import Hub

    home, token = _hdhub_home(root)
    hub = Hub.open(home)
    started = time.perf_counter()
    fill_index(hub.catalog, n_instances)
    print(f"index of {n_instances:,} instances written in {time.perf_counter() - started:.0f} s")
    hub.close()
    return time_searches(home, token, n_instances // 10)


def time_searches(home: Path, token: str, n_studies: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of each kind of search, 200 of each after 20 to warm up."""
    rng = random.Random(7)

    def week() -> str:
        month = rng.randint(1, 12)
        return f"2023{month:02d}01-2023{month:02d}07"

    def series_instances() -> str:
        s = rng.randrange(n_studies * 2)
        return f"/studies/{_uid(1, s // 2)}/series/{_uid(2, s)}/instances"

    def name() -> str:
        return f"{rng.choice(SURNAMES)}^{rng.choice(GIVEN)[:2]}*"

    kinds = {
        "PatientID exact": lambda: ("/studies", {"PatientID": f"P{rng.randrange(n_studies // 2):07d}"}),
        "AccessionNumber": lambda: ("/studies", {"AccessionNumber": f"A{rng.randrange(n_studies):09d}"}),
        "PatientName prefix*": lambda: ("/studies", {"PatientName": name()}),
        "StudyDate week + MR": lambda: ("/studies", {"StudyDate": week(), "ModalitiesInStudy": "MR"}),
        "series of a study": lambda: (f"/studies/{_uid(1, rng.randrange(n_studies))}/series", {}),
        "instances of a series": lambda: (series_instances(), {}),
        "all studies, first page": lambda: ("/studies", {"limit": "100"}),
    }  # fmt: skip
    results = {}
    with _hdhub_server(home) as base, httpx.Client(timeout=60) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for kind, make in kinds.items():
            times = []
            for i in range(220):
                path, params = make()
                t = time.perf_counter()
                r = client.get(base + path, params=params, headers=headers)
                elapsed = (time.perf_counter() - t) * 1000
                if r.status_code not in (200, 204):
                    raise RuntimeError(f"{kind}: HTTP {r.status_code} {r.text[:200]}")
                if i >= 20:  # the first ones warm the caches
                    times.append(elapsed)
            times.sort()
            results[kind] = (statistics.median(times), times[int(len(times) * 0.99) - 1])
    return results


def pynetdicom_ceiling(store_dir: Path) -> float:
    """C-STORE/s into a pynetdicom SCP that stores nothing: the ceiling of any SCP built on it."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    def nodelay(event: object) -> None:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]

    ae = AE("NULL")
    ae.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    handlers = [(evt.EVT_C_STORE, lambda event: 0x0000), (evt.EVT_CONN_OPEN, nodelay)]
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    try:
        return cstore(store_dir, port, "NULL")
    finally:
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--index-instances", type=int, default=1_000_000, help="0: skip QIDO at scale")
    parser.add_argument("--qido-only", action="store_true", help="only QIDO-RS at --index-instances")
    args = parser.parse_args()
    if not args.qido_only:  # Orthanc and dcmtk from Debian, installed by the project's script when missing
        subprocess.run(
            ["bash", str(Path(__file__).parents[1] / "scripts" / "debian-packages.sh"), "orthanc"], check=True
        )
    n = args.instances
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.qido_only:
            print_scale(root, args.index_instances)
            return
        results = {}
        for name, run in (("orthanc", orthanc), ("hdhub", hdhub)):
            (root / name).mkdir()
            stow_data = instances(n)
            store_dir = write_files(root / name / "cstore", instances(n))
            results[name] = run(root / name, stow_data, store_dir, n // 10)
            if name == "hdhub":
                results[name]["null_scp"] = pynetdicom_ceiling(store_dir)
            shutil.rmtree(store_dir)
        print(f"{n:,} instances of ~{len(instances(1)[0]) // 1024} KB, 10 per study; 2 cores")
        print(f"{'':10} {'STOW-RS/s':>10} {'C-STORE/s':>10} {'QIDO p50 ms':>12} {'QIDO p99 ms':>12}")
        for name, r in results.items():
            rates = f"{r['stow']:>10,.0f} {r['cstore']:>10,.0f}"
            print(f"{name:10} {rates} {r['qido_p50']:>12.1f} {r['qido_p99']:>12.1f}")
        h, o = results["hdhub"], results["orthanc"]
        print(f"{'hdhub/orthanc':10} {h['stow'] / o['stow']:>9.2f}x {h['cstore'] / o['cstore']:>9.2f}x")
        print(f"pynetdicom SCP storing nothing, default 1 ms polling: {h['null_scp']:,.0f}/s")
        if args.index_instances:
            print_scale(root, args.index_instances)


def print_scale(root: Path, n_instances: int) -> None:
    (root / "scale").mkdir()
    scale = qido_at_scale(root / "scale", n_instances)
    print(f"\nhdhub QIDO-RS at {n_instances:,} instances (200 searches each)")
    print(f"{'':26} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, (p50, p99) in scale.items():
        print(f"{kind:26} {p50:>8.1f} {p99:>8.1f}")


if __name__ == "__main__":
    main()
