"""Device observations: the vital signs hdhub accepts, and their checks.

A device sends FHIR R4 Observations of the vital-signs profile — one per value, or a
blood-pressure panel with its two components — alone, as a JSON array, or in a Bundle. Each
becomes zero or more :class:`Vital` values, or a :class:`Rejection` with a reason; nothing
rejected is ever stored as data. The checks are plain Python on parsed JSON (orjson): a
vital is a handful of fields, and pydantic/fhir.resources would cost ten times more.

| code | what | UCUM units accepted (stored as) | plausible range |
|---|---|---|---|
| 85354-9 | blood-pressure panel: components 8480-6 systolic, 8462-4 diastolic | mm[Hg] | 40-300 / 20-200 |
| 8867-4 | heart rate | /min | 20-300 |
| 2708-6, 59408-5 | oxygen saturation (SpO2) | % | 50-100 |
| 29463-7 | body weight | kg, g, [lb_av] (kg) | 0.5-500 |
| 8637-1 | R-R intervals (``valueSampledData``, ms, 8 to 2,000 beats) | ms | 200-3000 each |
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
BP_PANEL, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"
HEART_RATE, SPO2, SPO2_PULSE, WEIGHT, RR = "8867-4", "2708-6", "59408-5", "29463-7", "8637-1"
ACCEPTED_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_AGE = dt.timedelta(days=366)  # a device's backlog; older readings are history, not monitoring
MAX_RR_BEATS = 2_000


@dataclass(frozen=True)
class Measure:
    """How one code is checked and stored."""

    name: str
    units: dict[str, float]  # UCUM code -> factor to the stored unit
    unit: str  # the stored unit (UCUM)
    low: float
    high: float
    concept_id: int  # OMOP measurement_concept_id (LOINC)
    unit_concept_id: int  # OMOP unit_concept_id (UCUM)


MEASURES: dict[str, Measure] = {
    SYSTOLIC: Measure("systolic blood pressure", {"mm[Hg]": 1.0}, "mm[Hg]", 40, 300, 3004249, 8876),
    DIASTOLIC: Measure("diastolic blood pressure", {"mm[Hg]": 1.0}, "mm[Hg]", 20, 200, 3012888, 8876),
    HEART_RATE: Measure("heart rate", {"/min": 1.0}, "/min", 20, 300, 3027018, 8541),
    SPO2: Measure("oxygen saturation", {"%": 1.0}, "%", 50, 100, 3016502, 8554),
    SPO2_PULSE: Measure("oxygen saturation (pulse oximetry)", {"%": 1.0}, "%", 50, 100, 40762499, 8554),
    WEIGHT: Measure(
        "body weight", {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237}, "kg", 0.5, 500, 3025315, 9529
    ),
    RR: Measure("R-R interval", {"ms": 1.0}, "ms", 200, 3000, 0, 9593),  # series: screened, not stored
}


class Vital(NamedTuple):
    """One accepted value: ``rr`` holds the intervals of an R-R series (``value`` their mean).
    A named tuple: a batch makes hundreds of them, and a frozen dataclass costs 4x to build."""

    code: str
    value: float
    effective: dt.datetime
    rr: tuple[float, ...] = ()


@dataclass(frozen=True)
class Rejection:
    reason: str  # a stable code, counted: malformed, unsupported_code, unknown_unit, out_of_range …
    detail: str


@dataclass
class Parsed:
    vitals: list[Vital] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def observations(body: Any) -> list[Any]:
    """The Observations of a request body: one, a JSON array, or a Bundle's entries."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        entries = body.get("entry")
        if not isinstance(entries, list):
            return []
        return [e.get("resource") if isinstance(e, dict) else e for e in entries]
    return [body]


def _code(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    codings = concept.get("coding")
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, dict) and coding.get("system") == LOINC and isinstance(coding.get("code"), str):
            return coding["code"]
    return None


def _when(obs: dict[str, Any], now: dt.datetime) -> dt.datetime | Rejection:
    raw = obs.get("effectiveDateTime")
    if raw is None and isinstance(obs.get("effectivePeriod"), dict):
        raw = obs["effectivePeriod"].get("end") or obs["effectivePeriod"].get("start")
    if not isinstance(raw, str) or len(raw) < 20:  # a dateTime with a time needs its offset
        return Rejection("malformed", "effectiveDateTime: a date and time with a UTC offset is required")
    try:
        when = dt.datetime.fromisoformat(raw)  # Python 3.11 reads "Z" too
    except ValueError:
        return Rejection("malformed", f"effectiveDateTime {raw[:40]!r} is not an ISO 8601 date-time")
    if when.tzinfo is None:
        return Rejection("malformed", "effectiveDateTime: a UTC offset is required")
    if when > now:  # ``now`` already allows the clock skew
        return Rejection("future", f"effectiveDateTime {raw[:40]} is in the future")
    if when < now - MAX_AGE:
        return Rejection("too_old", f"effectiveDateTime {raw[:40]} is more than a year old")
    try:
        return when if when.tzinfo is dt.UTC else when.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:30:00+01:00 is before year 1 in UTC
        return Rejection("malformed", f"effectiveDateTime {raw[:40]} is out of range")


def _quantity(code: str, quantity: Any) -> float | Rejection:
    measure = MEASURES[code]
    if not isinstance(quantity, dict):
        return Rejection("malformed", f"{code}: valueQuantity is required")
    value = quantity.get("value")
    if value.__class__ not in (int, float):  # not bool, not a string
        return Rejection("malformed", f"{code}: valueQuantity.value must be a number")
    unit = quantity.get("code")
    system = quantity.get("system")
    if system != UCUM or not isinstance(unit, str) or unit not in measure.units:
        return Rejection(
            "unknown_unit",
            f"{code}: unit {unit!r} ({system}) is not one of {', '.join(measure.units)} (UCUM)",
        )
    try:
        value = float(value) * measure.units[unit]
    except OverflowError:  # an integer beyond any float
        value = float("inf")
    if not measure.low <= value <= measure.high:
        return Rejection(
            "out_of_range",
            f"{measure.name} {value:g} {measure.unit} is outside {measure.low:g}-{measure.high:g}",
        )
    return value


def _rr(sampled: Any) -> tuple[float, ...] | Rejection:
    if not isinstance(sampled, dict) or not isinstance(sampled.get("data"), str):
        return Rejection("malformed", f"{RR}: valueSampledData with data (intervals in ms) is required")
    unit = (sampled.get("origin") or {}).get("code") if isinstance(sampled.get("origin"), dict) else None
    if unit not in (None, "ms"):
        return Rejection("unknown_unit", f"{RR}: intervals must be in ms, not {unit!r}")
    parts = sampled["data"].split()
    if not 8 <= len(parts) <= MAX_RR_BEATS:
        return Rejection("malformed", f"{RR}: 8 to {MAX_RR_BEATS} intervals are required, not {len(parts)}")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        return Rejection("malformed", f"{RR}: the intervals must be numbers in ms")
    if not all(200 <= v <= 3000 for v in values):
        return Rejection("out_of_range", f"{RR}: intervals must lie within 200-3000 ms")
    return values


def parse_observation(obs: Any, now: dt.datetime) -> list[Vital] | Rejection:
    """The values of one Observation, or why it is refused (``now``: the latest acceptable time)."""
    if not isinstance(obs, dict) or obs.get("resourceType") != "Observation":
        return Rejection("malformed", "not a FHIR Observation")
    status = obs.get("status")
    if not isinstance(status, str) or status not in ACCEPTED_STATUS:
        return Rejection(
            "malformed", f"status {str(obs.get('status'))[:20]!r}: final, amended, corrected or preliminary"
        )
    code = _code(obs.get("code"))
    if code is None:
        return Rejection("unsupported_code", "no LOINC code")
    when = _when(obs, now)
    if isinstance(when, Rejection):
        return when
    if code == BP_PANEL:
        found: dict[str, float] = {}
        components = obs.get("component")
        for component in components if isinstance(components, list) else ():
            part = _code(component.get("code")) if isinstance(component, dict) else None
            if part in (SYSTOLIC, DIASTOLIC):
                value = _quantity(part, component.get("valueQuantity"))
                if isinstance(value, Rejection):
                    return value
                found[part] = value
        if set(found) != {SYSTOLIC, DIASTOLIC}:
            return Rejection("malformed", f"{BP_PANEL}: components {SYSTOLIC} and {DIASTOLIC} are required")
        return [Vital(SYSTOLIC, found[SYSTOLIC], when), Vital(DIASTOLIC, found[DIASTOLIC], when)]
    if code == RR:
        intervals = _rr(obs.get("valueSampledData"))
        if isinstance(intervals, Rejection):
            return intervals
        return [Vital(RR, sum(intervals) / len(intervals), when, intervals)]
    if code not in MEASURES or code in (SYSTOLIC, DIASTOLIC):
        return Rejection("unsupported_code", f"LOINC {code[:20]} is not a supported vital sign")
    value = _quantity(code, obs.get("valueQuantity"))
    if isinstance(value, Rejection):
        return value
    return [Vital(code, value, when)]


def device_reference(obs: Any) -> str | None:
    """The device an Observation names (``device.identifier.value`` or ``Device/<id>``), if any."""
    if not isinstance(obs, dict) or not isinstance(obs.get("device"), dict):
        return None
    ref = obs["device"]
    ident = ref.get("identifier")
    if isinstance(ident, dict) and isinstance(ident.get("value"), str):
        return ident["value"]
    reference = ref.get("reference")
    if isinstance(reference, str) and reference.startswith("Device/"):
        return reference[len("Device/") :]
    return ""  # names a device we cannot read: never ours


def parse(body: Any, device_id: str, now: dt.datetime | None = None) -> Parsed:
    """Every value of a request body from ``device_id``; an Observation naming another device
    is refused (``foreign_device``)."""
    latest = (now or dt.datetime.now(dt.UTC)) + MAX_CLOCK_SKEW
    out = Parsed()
    for obs in observations(body):
        named = device_reference(obs)
        if named is not None and named != device_id:
            out.rejections.append(Rejection("foreign_device", f"the observation names device {named[:64]!r}"))
            continue
        result = parse_observation(obs, latest)
        if isinstance(result, Rejection):
            out.rejections.append(result)
        else:
            out.vitals.extend(result)
    return out
