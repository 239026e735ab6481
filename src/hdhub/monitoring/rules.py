"""Clinical rules on a patient's new values, with thresholds configurable per patient.

- ``bp_grade``: ESC/ESH 2018 grades, on systolic *or* diastolic — grade 1 (≥ 140 / 90 mm Hg)
  low, grade 2 (≥ 160 / 100) medium, grade 3 (≥ 180 / 110) urgent;
- ``tachycardia``: heart rate > 100 /min medium, > 130 high;
- ``bradycardia``: heart rate < 50 /min medium, < 40 high;
- ``desaturation``: SpO2 ≤ 93 % medium, ≤ 91 % high (NEWS2 scale 1: 92-93 % scores 2,
  ≤ 91 % scores 3);
- ``weight_gain``: heart-failure patients only, + 2 kg within 3 days (fluid retention): high.

Thresholds are plain numbers in a JSON object per patient, merged over the defaults; the
names are the keys of :data:`DEFAULTS` (e.g. ``tachycardia.medium=110`` for an athlete).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from hdhub.errors import ValidationError
from hdhub.monitoring.vitals import DIASTOLIC, HEART_RATE, SPO2, SPO2_PULSE, SYSTOLIC, WEIGHT

SEVERITIES = ("low", "medium", "high", "urgent")

DEFAULTS: dict[str, dict[str, float]] = {
    "bp_grade": {
        "grade1_sys": 140,
        "grade1_dia": 90,
        "grade2_sys": 160,
        "grade2_dia": 100,
        "grade3_sys": 180,
        "grade3_dia": 110,
    },
    "tachycardia": {"medium": 100, "high": 130},
    "bradycardia": {"medium": 50, "high": 40},
    "desaturation": {"medium": 93, "high": 91},
    "weight_gain": {"kg": 2.0, "days": 3},
}


class Value(NamedTuple):
    """A stored value as the rules see it (a named tuple: cheap to build by the hundred)."""

    id: int
    code: str
    value: float
    at: dt.datetime


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    message: str
    values: tuple[Value, ...]  # the values that raised it


def thresholds(overrides: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """The defaults with a patient's overrides (``{"tachycardia": {"medium": 110}}``)."""
    merged = {rule: dict(values) for rule, values in DEFAULTS.items()}
    for rule, values in (overrides or {}).items():
        if rule not in merged or not isinstance(values, dict):
            raise ValidationError(f"unknown rule {rule!r}: one of {', '.join(DEFAULTS)}")
        for name, number in values.items():
            if name not in merged[rule] or isinstance(number, bool) or not isinstance(number, int | float):
                raise ValidationError(f"{rule}.{name}: a number for one of {', '.join(DEFAULTS[rule])}")
            merged[rule][name] = float(number)
    return merged


def parse_threshold(text: str) -> tuple[str, str, float]:
    """``tachycardia.medium=110`` -> ("tachycardia", "medium", 110.0)."""
    key, sep, number = text.partition("=")
    rule, dot, name = key.partition(".")
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if not (sep and dot) or value != value:
        raise ValidationError(f"threshold {text!r}: write rule.name=number, e.g. tachycardia.medium=110")
    thresholds({rule: {name: value}})  # names checked
    return rule, name, value


def _bp(new: Sequence[Value], t: dict[str, float]) -> list[Finding]:
    out = []
    by_time: dict[dt.datetime, dict[str, Value]] = {}
    for v in new:
        if v.code in (SYSTOLIC, DIASTOLIC):
            by_time.setdefault(v.at, {})[v.code] = v
    for pair in by_time.values():
        sys_v, dia_v = pair.get(SYSTOLIC), pair.get(DIASTOLIC)
        s = sys_v.value if sys_v else 0.0
        d = dia_v.value if dia_v else 0.0
        for grade, severity in ((3, "urgent"), (2, "medium"), (1, "low")):
            if s >= t[f"grade{grade}_sys"] or d >= t[f"grade{grade}_dia"]:
                reading = f"{s:.0f}/{d:.0f}" if sys_v and dia_v else f"{s or d:.0f}"
                out.append(Finding("bp_grade", severity, f"blood pressure {reading} mm Hg: grade {grade} "
                                   "hypertension (ESC/ESH)", tuple(pair.values())))  # fmt: skip
                break
    return out


def _heart_rate(new: Sequence[Value], t: dict[str, dict[str, float]]) -> list[Finding]:
    out = []
    for v in new:
        if v.code != HEART_RATE:
            continue
        tachy, brady = t["tachycardia"], t["bradycardia"]
        if v.value > tachy["medium"]:
            severity = "high" if v.value > tachy["high"] else "medium"
            out.append(Finding("tachycardia", severity, f"heart rate {v.value:.0f}/min", (v,)))
        elif v.value < brady["medium"]:
            severity = "high" if v.value < brady["high"] else "medium"
            out.append(Finding("bradycardia", severity, f"heart rate {v.value:.0f}/min", (v,)))
    return out


def _spo2(new: Sequence[Value], t: dict[str, float]) -> list[Finding]:
    out = []
    for v in new:
        if v.code in (SPO2, SPO2_PULSE) and v.value <= t["medium"]:
            severity = "high" if v.value <= t["high"] else "medium"
            out.append(Finding("desaturation", severity, f"SpO2 {v.value:.0f} % (NEWS2)", (v,)))
    return out


def _weight(new: Sequence[Value], t: dict[str, float], history: Callable[[str, dt.datetime], list[Value]],
            heart_failure: bool) -> list[Finding]:  # fmt: skip
    weights = [v for v in new if v.code == WEIGHT]
    if not heart_failure or not weights:
        return []
    latest = max(weights, key=lambda v: v.at)
    since = latest.at - dt.timedelta(days=t["days"])
    window = [*history(WEIGHT, since), *weights]  # stored, and earlier in this message
    earlier = [v for v in window if since <= v.at < latest.at]
    if not earlier:
        return []
    lowest = min(earlier, key=lambda v: v.value)
    gain = latest.value - lowest.value
    if gain < t["kg"]:
        return []
    days = (latest.at - lowest.at).total_seconds() / 86_400
    return [Finding("weight_gain", "high", f"weight +{gain:.1f} kg in {days:.1f} days (heart failure: fluid "
                    "retention?)", (lowest, latest))]  # fmt: skip


def evaluate(new: Sequence[Value], config: dict[str, dict[str, float]], *, heart_failure: bool,
             history: Callable[[str, dt.datetime], list[Value]]) -> list[Finding]:  # fmt: skip
    """The findings of one patient's new values; ``history(code, since)`` gives stored values."""
    return [
        *_bp(new, config["bp_grade"]),
        *_heart_rate(new, config),
        *_spo2(new, config["desaturation"]),
        *_weight(new, config["weight_gain"], history, heart_failure),
    ]
