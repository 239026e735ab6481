"""Generate a French hospital group's patients as FHIR R4 Bulk NDJSON, one directory per site.

Deterministic for a seed: patient ``i`` draws from its own random stream, so output does
not depend on how many patients come before it, and memory stays flat (one patient at a
time, buffered writers per site and resource type). About 10 % of patients are also seen
at a second site, under another local number (IPP) but the same INS.
"""

from __future__ import annotations

import base64
import gzip
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from hdhub.errors import ValidationError
from hdhub.synth import codes as c
from hdhub.synth import french
from hdhub.synth.identifiers import INS_SYSTEM, make_ipp, make_nir

END = datetime(2026, 10, 31, 12, 0)
SECOND_SITE_SHARE = 0.10
DEATH_SHARE = 0.03


@dataclass
class SynthReport:
    patients: int = 0
    sites: list[str] = field(default_factory=list)
    resources: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.resources.values())


class _Writers:
    def __init__(self, out: Path, compress: bool, report: SynthReport) -> None:
        self.out, self.compress, self.report = out, compress, report
        self.files: dict[tuple[str, str], IO[bytes]] = {}

    def write(self, site: str, resource: dict[str, Any]) -> None:
        rtype = resource["resourceType"]
        fh = self.files.get((site, rtype))
        if fh is None:
            folder = self.out / site
            folder.mkdir(parents=True, exist_ok=True)
            name = folder / f"{rtype}.ndjson{'.gz' if self.compress else ''}"
            raw = name.open("wb", buffering=1 << 20)
            fh = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) if self.compress else raw
            self.files[(site, rtype)] = fh
        fh.write(orjson.dumps(resource) + b"\n")
        self.report.resources[rtype] = self.report.resources.get(rtype, 0) + 1

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
            if isinstance(fh, gzip.GzipFile) and fh.fileobj is not None:
                fh.fileobj.close()


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+01:00")


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


class _Person:
    """Who the patient is: drawn once, shared by every site that sees them."""

    def __init__(self, rng: random.Random) -> None:
        self.sex = "female" if rng.random() < 0.52 else "male"
        age_days = int(min(max(rng.gauss(52, 22), 0.1), 98) * 365.25)
        self.birth = (END - timedelta(days=age_days)).date()
        self.given = rng.choice(french.FIRST_F if self.sex == "female" else french.FIRST_M)
        self.family = rng.choice(french.LAST)
        self.nir = make_nir(rng, self.sex, self.birth.year, self.birth.month)
        self.has_ins = rng.random() < 0.9
        town, postcode = rng.choice(french.TOWNS)
        self.street = f"{rng.randint(1, 180)} {rng.choice(french.STREETS)}"
        self.town, self.postcode = town, postcode
        self.phone = (
            f"0{rng.choice('67')} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} "
            f"{rng.randint(10, 99)}"
        )
        self.email = f"{_ascii(self.given)}.{_ascii(self.family)}{rng.randint(1, 99)}@exemple.fr".lower()
        self.chronic = [x for x in c.CONDITIONS if x[3] and rng.random() < 0.12 * (1 + self.age / 60)]
        self.meds = rng.sample(c.MEDICATIONS, k=min(len(self.chronic), 3))
        # One death date per person, whichever sites saw them (all record the same one).
        self.death: datetime | None = None
        if rng.random() < DEATH_SHARE * (1 + self.age / 40):
            born = datetime.combine(self.birth, datetime.min.time())
            self.death = END - (END - born) * rng.random() ** 4  # mostly recent deaths

    @property
    def age(self) -> float:
        return (END.date() - self.birth).days / 365.25


def _ascii(text: str) -> str:
    table = str.maketrans("éèêëàâäîïôöùûüçÉÈ", "eeeeaaaiioouuucEE")
    return text.translate(table).replace(" ", "-")


def _note(person: _Person, ipp: str, title: str, hospital: str, start: datetime, diagnoses: list[str]) -> str:
    born = person.birth.strftime("%d/%m/%Y")
    seen = start.strftime("%d/%m/%Y")
    return (
        f"{title} — {hospital}\n"
        f"Patient(e) : {person.given} {person.family.upper()}, né(e) le {born}, IPP {ipp}, NIR {person.nir}\n"
        f"Adresse : {person.street}, {person.postcode} {person.town}. "
        f"Tél. {person.phone}, courriel {person.email}\n\n"
        f"{'Mme' if person.sex == 'female' else 'M.'} {person.family} a été vu(e) le {seen}. "
        f"Motif : {', '.join(diagnoses) or 'bilan'}.\n"
        f"Conclusion : suivi par le médecin traitant, prochain rendez-vous dans trois mois. "
        f"Joindre le secrétariat au 04 72 11 00 00 en cas de besoin.\n"
    )


def _patient_at(w: _Writers, rng: random.Random, person: _Person, site: str, site_no: int, name: str) -> None:
    pid = f"{rng.getrandbits(64):016x}"
    ipp = make_ipp(rng, site_no)
    identifiers = [
        {
            "system": f"https://hdhub.example/{site}/ipp",
            "value": ipp,
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}]},
        }
    ]
    if person.has_ins:
        identifiers.append({"system": INS_SYSTEM, "value": person.nir})
    visits = rng.randint(1, 8) if site_no == 0 or rng.random() < 0.5 else rng.randint(1, 3)
    born = datetime.combine(person.birth, datetime.min.time())
    last = (person.death - timedelta(days=11)) if person.death else END  # stays end before death
    span = max(1, int((last - born).total_seconds()))
    starts = sorted(born + timedelta(seconds=rng.randint(0, span)) for _ in range(visits))
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": identifiers,
        "name": [{"use": "official", "family": person.family, "given": [person.given]}],
        "telecom": [{"system": "phone", "value": person.phone}, {"system": "email", "value": person.email}],
        "gender": person.sex,
        "birthDate": person.birth.isoformat(),
        "address": [
            {"line": [person.street], "city": person.town, "postalCode": person.postcode, "country": "FR"}
        ],
        "managingOrganization": _ref("Organization", site),
    }
    if person.death is not None:
        patient["deceasedDateTime"] = _ts(person.death)
    w.write(site, patient)
    for n, start in enumerate(starts):
        _encounter(w, rng, person, site, pid, ipp, name, start, first=n == 0)


def _encounter(
    w: _Writers,
    rng: random.Random,
    person: _Person,
    site: str,
    pid: str,
    ipp: str,
    hospital: str,
    start: datetime,
    first: bool,
) -> None:
    kind = rng.choices(c.VISIT_KINDS, weights=[k[1] for k in c.VISIT_KINDS])[0]
    cls, _w, note_code, note_display, title = kind
    hours = {"AMB": 0.5, "EMER": rng.uniform(2, 9), "IMP": rng.uniform(48, 240)}[cls]
    end = start + timedelta(hours=hours)
    eid = f"{rng.getrandbits(64):016x}"
    subject = _ref("Patient", pid)
    w.write(
        site,
        {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
            "subject": subject,
            "period": {"start": _ts(start), "end": _ts(end)},
            "serviceProvider": _ref("Organization", site),
        },
    )
    enc = _ref("Encounter", eid)
    diagnoses = []
    conditions = list(person.chronic) if first else []
    if rng.random() < 0.5:
        conditions.append(rng.choice([x for x in c.CONDITIONS if not x[3]]))
    for system, code, display, _chronic in conditions:
        diagnoses.append(display)
        w.write(
            site,
            {
                "resourceType": "Condition",
                "id": f"{rng.getrandbits(64):016x}",
                "subject": subject,
                "encounter": enc,
                "code": _coding(system, code, display),
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                "code": "encounter-diagnosis",
                            }
                        ]
                    }
                ],
                "onsetDateTime": _ts(start),
                "recordedDate": _ts(start),
            },
        )
    adult = person.age > 16
    for code, display, unit, mean, sd, decimals in c.VITALS:
        if (code == "29463-7" and not adult) or (code in ("59408-5", "8310-5") and cls == "AMB"):
            continue
        _observation(
            w,
            rng,
            site,
            subject,
            enc,
            start,
            "vital-signs",
            code,
            display,
            unit,
            round(min(rng.gauss(mean, sd), 100.0) if unit == "%" else rng.gauss(mean, sd), decimals),
            None,
        )
    if cls != "AMB" or rng.random() < 0.3:
        for code, display, unit, mean, sd, low, high, decimals in rng.sample(c.LABS, k=rng.randint(2, 6)):
            value = round(max(rng.gauss(mean, sd), 0.0), decimals)
            _observation(
                w,
                rng,
                site,
                subject,
                enc,
                start + timedelta(minutes=40),
                "laboratory",
                code,
                display,
                unit,
                value,
                (low, high),
            )
    for system, code, display in person.meds if first else rng.sample(c.MEDICATIONS, k=rng.randint(0, 1)):
        w.write(
            site,
            {
                "resourceType": "MedicationRequest",
                "id": f"{rng.getrandbits(64):016x}",
                "status": "active",
                "intent": "order",
                "subject": subject,
                "encounter": enc,
                "medicationCodeableConcept": _coding(system, code, display),
                "authoredOn": _ts(end),
            },
        )
    if rng.random() < 0.35:
        system, code, display = rng.choice(c.PROCEDURES)
        w.write(
            site,
            {
                "resourceType": "Procedure",
                "id": f"{rng.getrandbits(64):016x}",
                "status": "completed",
                "subject": subject,
                "encounter": enc,
                "code": _coding(system, code, display),
                "performedPeriod": {"start": _ts(start), "end": _ts(start + timedelta(minutes=20))},
            },
        )
    if cls != "AMB" or rng.random() < 0.2:
        text = _note(person, ipp, title, hospital, start, diagnoses)
        w.write(
            site,
            {
                "resourceType": "DocumentReference",
                "id": f"{rng.getrandbits(64):016x}",
                "status": "current",
                "type": _coding(c.LOINC, note_code, note_display),
                "subject": subject,
                "date": _ts(end),
                "context": {"encounter": [enc], "period": {"start": _ts(start), "end": _ts(end)}},
                "content": [
                    {
                        "attachment": {
                            "contentType": "text/plain; charset=utf-8",
                            "title": title,
                            "data": base64.b64encode(text.encode()).decode(),
                        }
                    }
                ],
            },
        )


def _observation(
    w: _Writers,
    rng: random.Random,
    site: str,
    subject: dict[str, str],
    enc: dict[str, str],
    when: datetime,
    category: str,
    code: str,
    display: str,
    unit: str,
    value: float,
    ref_range: tuple[float, float] | None,
) -> None:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{rng.getrandbits(64):016x}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}
                ]
            }
        ],
        "code": _coding(c.LOINC, code, display),
        "subject": subject,
        "encounter": enc,
        "effectiveDateTime": _ts(when),
        "valueQuantity": {"value": value, "unit": unit, "system": c.UCUM, "code": unit},
    }
    if ref_range:
        obs["referenceRange"] = [
            {
                "low": {"value": ref_range[0], "unit": unit, "system": c.UCUM, "code": unit},
                "high": {"value": ref_range[1], "unit": unit, "system": c.UCUM, "code": unit},
            }
        ]
    w.write(site, obs)


def generate(
    out: Path, *, patients: int, sites: int = 3, seed: int = 1, compress: bool = False
) -> SynthReport:
    """Write ``patients`` patients spread over ``sites`` sites into ``out/<site>/<Type>.ndjson``."""
    if not 1 <= sites <= len(french.HOSPITALS):
        raise ValidationError(f"--sites must be between 1 and {len(french.HOSPITALS)}")
    if patients < 1:
        raise ValidationError("--patients must be at least 1")
    chosen = french.HOSPITALS[:sites]
    report = SynthReport(patients=patients, sites=[s for s, _ in chosen])
    writers = _Writers(out, compress, report)
    try:
        for site, name in chosen:
            writers.write(
                site,
                {
                    "resourceType": "Organization",
                    "id": site,
                    "name": name,
                    "active": True,
                    "address": [{"country": "FR"}],
                },
            )
        for i in range(patients):
            rng = random.Random(f"{seed}:{i}")
            person = _Person(rng)
            home = rng.randrange(sites)
            seen = [home]
            if sites > 1 and rng.random() < SECOND_SITE_SHARE:
                seen.append((home + 1 + rng.randrange(sites - 1)) % sites)
            for order, s in enumerate(seen):
                site, name = chosen[s]
                _patient_at(writers, rng, person, site, order, name)
    finally:
        writers.close()
    return report
