"""Synthetic device streams for part of a synthetic population, with injected episodes.

``hdhub synth OUT --devices 0.05`` gives 5 % of the first site's patients a home device
kit (cuff, oximeter, scale, a watch recording R-R intervals) and writes, under
``OUT/devices/``, one NDJSON file of FHIR vital-signs Observations per device — two
blood-pressure and heart-rate readings a day, a weight and a saturation a day, a 128-beat
R-R series a week, over ``days`` days up to ``end`` — and ``devices.json``: each device, its
patient (by the site's IPP), whether the patient has heart failure, and the episode injected
in the last three days, if any:

- ``hypertensive_crisis``: 188-198 / 112-120 mm Hg;
- ``atrial_fibrillation``: irregularly irregular R-R intervals and a fast heart rate;
- ``desaturation``: SpO2 88-90 %;
- ``fluid_retention``: a heart-failure patient gaining about 1.1 kg a day.

Half the devices carry one. Everything else stays within normal values, so the alerts the
demo shows are the episodes (and the occasional drift a real patient has too).
``hdhub monitoring replay OUT/devices`` registers the devices and sends the streams.
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hdhub.errors import ValidationError

EPISODES = ("hypertensive_crisis", "atrial_fibrillation", "desaturation", "fluid_retention")
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"


@dataclass(frozen=True)
class DeviceStreams:
    devices: int
    observations: int
    episodes: dict[str, int]


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(value, 1), "unit": unit, "system": UCUM, "code": unit}


def observation(device: str, code: str, when: dt.datetime, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": when.isoformat(),
        "device": {"identifier": {"value": device}},
        **value,
    }


def bp_panel(device: str, when: dt.datetime, systolic: float, diastolic: float) -> dict[str, Any]:
    parts = [("8480-6", systolic), ("8462-4", diastolic)]
    component = [{"code": {"coding": [{"system": LOINC, "code": c}]}, "valueQuantity": quantity(v, "mm[Hg]")}
                 for c, v in parts]  # fmt: skip
    return observation(device, "85354-9", when, component=component)


def _rr(device: str, when: dt.datetime, intervals: list[float]) -> dict[str, Any]:
    data = " ".join(str(round(x)) for x in intervals)
    origin = {"value": 0, "unit": "ms", "system": UCUM, "code": "ms"}
    sampled = {"origin": origin, "period": 0, "dimensions": 1, "data": data}
    return observation(device, "8637-1", when, valueSampledData=sampled)


def _patients(site_dir: Path) -> list[dict[str, Any]]:
    for name in ("Patient.ndjson", "Patient.ndjson.gz"):
        path = site_dir / name
        if path.exists():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as fh:  # type: ignore[operator]
                return [orjson.loads(line) for line in fh if line.strip()]
    return []


def _stream(
    rng: random.Random, device: str, end: dt.datetime, days: int, episode: str | None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    sys0, dia0 = rng.gauss(122, 5), rng.gauss(77, 4)
    hr0, weight0, spo0 = rng.gauss(68, 4), rng.uniform(55, 100), rng.uniform(96, 98.5)
    start = end - dt.timedelta(days=days)
    for day in range(days):
        base = start + dt.timedelta(days=day)
        last_days = day >= days - 3
        for hour in (8, 20):
            when = base.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60), microsecond=0)
            systolic = min(137.0, max(100.0, rng.gauss(sys0, 4)))
            diastolic = min(87.0, max(60.0, rng.gauss(dia0, 3)))
            heart = min(92.0, max(55.0, rng.gauss(hr0, 3)))
            if episode == "hypertensive_crisis" and last_days and hour == 20:
                systolic, diastolic = rng.uniform(188, 198), rng.uniform(112, 120)
            if episode == "atrial_fibrillation" and last_days:
                heart = rng.uniform(112, 128)
            out.append(bp_panel(device, when, systolic, diastolic))
            out.append(observation(device, "8867-4", when, valueQuantity=quantity(heart, "/min")))
        morning = base.replace(hour=7, minute=rng.randrange(30), second=rng.randrange(60), microsecond=0)
        weight = weight0 + rng.gauss(0, 0.25)
        if episode == "fluid_retention" and last_days:
            weight = weight0 + 1.1 * (day - (days - 4))  # +2.2 kg over the last two days alone
        out.append(observation(device, "29463-7", morning, valueQuantity=quantity(weight, "kg")))
        saturation = min(99.0, max(95.0, rng.gauss(spo0, 0.6)))
        if episode == "desaturation" and last_days:
            saturation = rng.uniform(88, 90)
        out.append(
            observation(
                device, "59408-5", morning + dt.timedelta(minutes=5), valueQuantity=quantity(saturation, "%")
            )
        )
        if day % 7 == 6 or (episode == "atrial_fibrillation" and day == days - 1):
            mean = 60_000 / (hr0 if not (episode == "atrial_fibrillation" and last_days) else 120)
            if episode == "atrial_fibrillation" and last_days:
                intervals = [min(1400.0, max(300.0, rng.gauss(mean, mean * 0.22))) for _ in range(128)]
            else:
                intervals = [mean + 25 * math.sin(i * 1.4) + rng.gauss(0, 8) for i in range(128)]
            out.append(_rr(device, morning + dt.timedelta(minutes=10), intervals))
    return out


def write_device_streams(out: Path, *, share: float, seed: int = 1, days: int = 30,
                         end: dt.datetime | None = None) -> DeviceStreams:  # fmt: skip
    """Device streams for ``share`` of the first site's patients; see the module docstring."""
    if not 0 < share <= 1:
        raise ValidationError("--devices: a share of patients between 0 and 1, e.g. 0.05")
    sites = sorted(p for p in out.iterdir() if p.is_dir() and p.name != "devices" and _patients(p))
    if not sites:
        raise ValidationError(f"no synthetic site with patients in {out}")
    site = sites[0]
    end = (end or dt.datetime.now(dt.UTC)).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(f"{seed}:devices")
    patients = _patients(site)
    chosen = [p for p in patients if rng.random() < share] or patients[:1]
    target = out / "devices"
    target.mkdir(parents=True, exist_ok=True)
    manifest, observations, episodes = [], 0, dict.fromkeys(EPISODES, 0)
    for k, patient in enumerate(chosen):
        ipp = next((i for i in patient.get("identifier", []) if i.get("system", "").endswith("/ipp")), None)
        if ipp is None:
            continue
        device_rng = random.Random(f"{seed}:device:{k}")
        device = f"SYN-{site.name}-{k:05d}"
        episode = EPISODES[k % len(EPISODES)] if device_rng.random() < 0.5 else None
        stream = _stream(device_rng, device, end, days, episode)
        with (target / f"{device}.ndjson").open("wb") as fh:
            fh.writelines(orjson.dumps(o) + b"\n" for o in stream)
        observations += len(stream)
        if episode:
            episodes[episode] += 1
        manifest.append({"device": device, "patient": f"{ipp['system']}|{ipp['value']}", "kind": "home kit",
                         "heart_failure": episode == "fluid_retention", "episode": episode})  # fmt: skip
    (target / "devices.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return DeviceStreams(len(manifest), observations, episodes)
