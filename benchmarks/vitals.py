"""Device vitals: sustained ingest over HTTP and over MQTT, and alert latency under that load.

An embedded deployment (SQLite catalog) with 200 registered devices. ``hdhub serve --workers
N`` (``--workers``, one per core by default) runs in its own processes; this one is the devices.

1. **HTTP**: 8 client threads post batches of ``--batch`` Observations (heart rate, blood
   pressure panels, SpO2, weights, each device's times increasing) to ``POST /api/v1/vitals``
   for ``--seconds``; the rate is the values the server accepted per second. Meanwhile a
   probe device posts a grade-3 blood pressure every 0.25 s and a clinician's live stream
   (``GET /api/v1/alerts/stream``) times when each alert update arrives: the alert latency,
   from the reading's POST to the clinician's screen, p50 and p99.
2. **MQTT**: ``hdhub monitoring mqtt`` runs in its own process on Mosquitto (127.0.0.1:1883);
   this process publishes messages of ``--batch`` Observations at QoS 1 as fast as the broker
   takes them; the rate is the values stored per second, from the first publish to the last
   value stored.

The devices' HTTP load comes from wrk (``bash scripts/debian-packages.sh wrk``) when it is
installed, else from Python threads (``--client``); ``--catalog postgresql`` runs on a
throwaway database of the local PostgreSQL instead of the embedded SQLite catalog.

Targets: >= 50,000 observations/s over HTTP on 2 cores; alert latency p99 <= 1 s.

    python benchmarks/vitals.py [--seconds 20] [--batch 500] [--workers N] [--skip-mqtt]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

DEVICES = 200
CLIENTS = 8  # Python client threads: enough to keep every server worker busy
WRK_CONNECTIONS = 16  # as many devices' connections, which the kernel spreads over the server's workers
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def obs(code: str, when: dt.datetime, **value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "effectiveDateTime": when.isoformat(),
            "code": {"coding": [{"system": LOINC, "code": code}]}, **value}  # fmt: skip


def reading(i: int, when: dt.datetime) -> dict[str, Any]:
    """Mostly normal readings, as a monitored population sends them."""
    kind = i % 4
    if kind == 0:
        return obs("8867-4", when, valueQuantity=quantity(60 + i % 25, "/min"))
    if kind == 1:
        return obs("59408-5", when, valueQuantity=quantity(95 + i % 4, "%"))
    if kind == 2:
        return obs("29463-7", when, valueQuantity=quantity(70 + (i % 50) / 10, "kg"))
    return obs("85354-9", when, component=panel(118 + i % 15, 76 + i % 10))


def panel(systolic: float, diastolic: float) -> list[dict[str, Any]]:
    return [
        {
            "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
            "valueQuantity": quantity(systolic, "mm[Hg]"),
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
            "valueQuantity": quantity(diastolic, "mm[Hg]"),
        },
    ]


class Clock:
    """Distinct, increasing times per device (each batch a new stretch of seconds)."""

    def __init__(self) -> None:
        self.start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        self.next: dict[int, int] = {}
        self.lock = threading.Lock()

    def batch(self, device: int, size: int) -> list[dt.datetime]:
        with self.lock:
            first = self.next.get(device, 0)
            self.next[device] = first + size
        return [self.start + dt.timedelta(seconds=first + k) for k in range(size)]


@contextmanager
def catalog(kind: str) -> Iterator[str | None]:
    """None for the embedded SQLite catalog; for ``postgresql``, a throwaway database on the
    local server (127.0.0.1:5432, user postgres), dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    from hdhub.catalog.scratch import scratch_database

    with scratch_database("hdhub_bench") as url:
        yield url


def setup(home: Path, catalog_url: str | None = None) -> tuple[list[str], dict[str, str], str]:
    """The deployment: devices (their ids and tokens), a clinician's token, a probe device."""
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from hdhub.catalog.migrate import upgrade
    from hdhub.config.deployment import init_deployment
    from hdhub.hub import Hub
    from hdhub.monitoring.devices import register_device
    from hdhub.security import tokens, users

    init_deployment(home, **({"catalog_url": catalog_url} if catalog_url else {}))
    hub = Hub.open(home)
    upgrade(hub.catalog)
    devices, secrets_by_device = [], {}
    with Session(hub.catalog) as s, s.begin():
        for n in range(DEVICES + 1):
            device = f"bench-{n:04d}"
            secrets_by_device[device] = register_device(s, device, secrets.token_hex(20))
            devices.append(device)
        clinician = users.create_user(s, "clinician", ["clinician"])
        token, _ = tokens.issue_token(s, clinician, name="bench", ttl=timedelta(hours=2))
    hub.close()
    return devices, secrets_by_device, token


def serve(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HDHUB_HOME": str(home)}
    prefix = os.environ.get("BENCH_SERVER_PROFILER", "").split()  # e.g. "py-spy record -o server.svg --"
    command = [*prefix, sys.executable, "-m", "hdhub.cli.main", "serve", "--port", str(port), "--workers",
               str(workers)]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


# wrk (C, from Debian) as the devices: each request is built in LuaJIT as it is sent — a new
# stretch of seconds of one device, the same mix of readings as reading() — so the load
# generator takes a small share of the two cores the server runs on.
WRK_SCRIPT = r"""
local tokens = {%(tokens)s}
local batch, base, counter, nexts = %(batch)d, %(base)d, 0, {}
local hr = '{"resourceType":"Observation","status":"final","effectiveDateTime":"%%s","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":%%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}'
local spo2 = '{"resourceType":"Observation","status":"final","effectiveDateTime":"%%s","code":{"coding":[{"system":"http://loinc.org","code":"59408-5"}]},"valueQuantity":{"value":%%d,"unit":"%%%%","system":"http://unitsofmeasure.org","code":"%%%%"}}'
local kg = '{"resourceType":"Observation","status":"final","effectiveDateTime":"%%s","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"valueQuantity":{"value":%%.1f,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}'
local bp = '{"resourceType":"Observation","status":"final","effectiveDateTime":"%%s","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":%%d,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":%%d,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}'
request = function()
  counter = counter + 1
  local d = (counter %% #tokens) + 1
  local first = nexts[d] or 0
  nexts[d] = first + batch
  local parts = {}
  for i = 0, batch - 1 do
    local when = os.date("!%%Y-%%m-%%dT%%H:%%M:%%S+00:00", base + first + i)
    local kind = i %% 4
    if kind == 0 then parts[#parts + 1] = string.format(hr, when, 60 + i %% 25)
    elseif kind == 1 then parts[#parts + 1] = string.format(spo2, when, 95 + i %% 4)
    elseif kind == 2 then parts[#parts + 1] = string.format(kg, when, 70 + (i %% 50) / 10)
    else parts[#parts + 1] = string.format(bp, when, 118 + i %% 15, 76 + i %% 10) end
  end
  return wrk.format("POST", "/api/v1/vitals",
    {["Authorization"] = "Bearer " .. tokens[d], ["Content-Type"] = "application/json"},
    "[" .. table.concat(parts, ",") .. "]")
end
"""


def wrk_load(url: str, devices: list[str], tokens: dict[str, str], seconds: float, batch: int,
             stop_at: float) -> float:  # fmt: skip
    """Observations/s that wrk got accepted (every request must answer 200, none a duplicate)."""
    base = int((dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).timestamp())
    script = WRK_SCRIPT % {
        "tokens": ", ".join(f'"{tokens[d]}"' for d in devices),
        "batch": batch,
        "base": base,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    duration = max(1, int(stop_at - time.monotonic()))
    command = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{duration}s", "--timeout", "30s", "-s", fh.name, url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(fh.name)
    requests, elapsed, unit = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out).groups()
    if "Non-2xx" in out:
        raise SystemExit(f"wrk: some requests failed\n{out}")
    seconds_taken = float(elapsed) * {"ms": 0.001, "s": 1, "m": 60}[unit]  # wrk: "1.00m" past a minute
    return int(requests) * batch / seconds_taken


def http_phase(url: str, devices: list[str], tokens: dict[str, str], clinician: str, seconds: float,
               batch: int, client_kind: str = "python") -> tuple[float, list[float]]:  # fmt: skip
    clock = Clock()
    accepted = [0]
    lock = threading.Lock()
    workers = devices[:-1]
    probe = devices[-1]

    # The devices' requests are made before the clock starts: this process should spend its
    # core sending, not building JSON.
    per_client = 0 if client_kind == "wrk" else int(seconds * 60_000 / batch / CLIENTS) + 10
    bodies = [[] for _ in range(CLIENTS)]
    for k in range(CLIENTS):
        for n in range(per_client):
            device = workers[(k + CLIENTS * n) % len(workers)]
            times = clock.batch(hash(device), batch)
            bodies[k].append((device, orjson.dumps([reading(i, t) for i, t in enumerate(times)])))

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for device, body in bodies[k]:
                if time.monotonic() >= stop:
                    return
                r = http.post(
                    "/api/v1/vitals", content=body, headers={"Authorization": f"Bearer {tokens[device]}"}
                )
                r.raise_for_status()
                with lock:
                    accepted[0] += r.json()["accepted"]

    arrivals: dict[int, float] = {}
    sent: dict[int, float] = {}

    def listen() -> None:
        auth = {"Authorization": f"Bearer {clinician}"}
        path, params = f"{url}/api/v1/alerts/stream", {"seconds": seconds + 3}
        with httpx.stream("GET", path, params=params, headers=auth, timeout=seconds + 10) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    alert = orjson.loads(line[6:])
                    arrivals.setdefault(alert["count"], time.perf_counter())

    def probing() -> None:
        n = 0
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < stop - 0.5:
                n += 1
                when = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=n)
                comps = panel(190, 115)
                sent[n] = time.perf_counter()
                http.post("/api/v1/vitals", content=orjson.dumps(obs("85354-9", when, component=comps)),
                          headers={"Authorization": f"Bearer {tokens[probe]}"})  # fmt: skip
                time.sleep(0.25)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    stop = time.monotonic() + seconds
    started = time.perf_counter()
    senders = (
        [] if client_kind == "wrk" else [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    )
    threads = [*senders, threading.Thread(target=probing)]
    for t in threads:
        t.start()
    rate = wrk_load(url, workers, tokens, seconds, batch, stop) if client_kind == "wrk" else None
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    time.sleep(1.0)
    latencies = [arrivals[n] - sent[n] for n in sent if n in arrivals]
    return (rate if rate is not None else accepted[0] / elapsed), latencies


def mqtt_phase(home: Path, devices: list[str], batch: int, messages: int) -> float | None:
    import paho.mqtt.client as mqtt
    from sqlalchemy import create_engine, func, select

    from hdhub.catalog.models import VitalValue

    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        print("no MQTT broker on 127.0.0.1:1883: MQTT phase skipped")
        return None
    env = {**os.environ, "HDHUB_HOME": str(home)}
    command = [sys.executable, "-m", "hdhub.cli.main", "monitoring", "mqtt", "--seconds", "600"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from hdhub.config.settings import load_settings

    engine = create_engine(load_settings(home).catalog_url_resolved)

    def stored() -> int:
        with engine.connect() as c:
            return c.scalar(select(func.count()).select_from(VitalValue).where(VitalValue.source == "mqtt"))

    try:
        time.sleep(3)  # subscribed
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{secrets.token_hex(3)}")
        client.connect("127.0.0.1", 1883)
        client.loop_start()
        clock = Clock()
        clock.start = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
        payloads = []
        for m in range(messages):
            device = devices[m % (len(devices) - 1)]
            payloads.append(
                (device, orjson.dumps([reading(n, t) for n, t in enumerate(clock.batch(m % 199, batch))]))
            )
        started = time.perf_counter()
        for device, payload in payloads:
            client.publish(f"hdhub/devices/{device}/vitals", payload, qos=1).wait_for_publish(30)
        expected = messages * batch * 5 // 4  # blood-pressure panels give two values
        deadline = time.monotonic() + 300
        while stored() < expected * 0.99 and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        client.loop_stop()
        return stored() / elapsed
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--mqtt-messages", type=int, default=400)
    parser.add_argument("--skip-mqtt", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="Server processes: one per core by default."
    )
    parser.add_argument(
        "--catalog",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="The catalog: embedded SQLite, or a throwaway database on the local PostgreSQL.",
    )
    parser.add_argument(
        "--client",
        choices=("python", "wrk"),
        default="wrk" if shutil.which("wrk") else "python",
        help="The devices' load generator: wrk (C, Debian; the default when installed) or Python threads.",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hdhub-bench-vitals-") as tmp, catalog(args.catalog) as url:
        home = Path(tmp) / "home"
        devices, tokens, clinician = setup(home, url)
        port = free_port()
        server = serve(home, port, args.workers)
        try:
            rate, latencies = http_phase(f"http://127.0.0.1:{port}", devices, tokens, clinician, args.seconds,
                                         args.batch, args.client)  # fmt: skip
        finally:
            server.terminate()
            server.wait(20)
        mqtt_rate = None if args.skip_mqtt else mqtt_phase(home, devices, args.batch, args.mqtt_messages)
    latencies.sort()
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(
        f"{DEVICES} devices, batches of {args.batch} observations, {args.seconds:g} s, "
        f"{args.catalog} catalog, {args.workers} server worker(s), "
        f"load: {args.client}"
    )
    print("| measure | figure | target |")
    print("|---|---|---|")
    print(f"| HTTP ingest, sustained | {rate:,.0f} observations/s | >= 50,000 |")
    label = f"alert latency under that load (POST -> live stream), {len(latencies)} alerts"
    print(f"| {label} | p50 {p50:.3f} s, p99 {p99:.3f} s | p99 <= 1 s |")
    if mqtt_rate is not None:
        print(f"| MQTT ingest, sustained | {mqtt_rate:,.0f} values/s | |")


if __name__ == "__main__":
    main()
