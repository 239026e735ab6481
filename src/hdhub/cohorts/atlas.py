"""Import OHDSI ATLAS (circe) cohort-definition JSON into the hdhub format.

The supported subset maps one to one; anything else is *named*, never dropped: the import
fails with the list of every construct it cannot carry (``UnsupportedAtlas``), so a
definition never silently means something else. Supported:

- ConceptSets (items with includeDescendants, includeMapped, isExcluded);
- PrimaryCriteria: a list of ConditionOccurrence, DrugExposure, Measurement,
  ProcedureOccurrence, Observation, VisitOccurrence, DeviceExposure, Death criteria with
  CodesetId, First, OccurrenceStartDate, and for measurements and observations
  ValueAsNumber, Unit and (measurements) Abnormal; ObservationWindow; PrimaryCriteriaLimit
  First or All;
- AdditionalCriteria (as a first inclusion rule) when the limits make it equivalent;
- InclusionRules: groups ALL / ANY / AT_LEAST / AT_MOST with CriteriaList (StartWindow,
  RestrictVisit, Occurrence exactly / at most / at least), DemographicCriteriaList (Age,
  Gender) and nested Groups;
- EndStrategy: none (end of observation), DateOffset, CustomEra (drug era, no
  DaysSupplyOverride).

Strict inequalities on integers (age, dates) become inclusive bounds (``gt 17`` → ``min 18``);
on measured values, exclusive bounds (``min_exclusive``). "Not between" (``!bt``) is named.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from hdhub.cohorts.definition import CohortDefinition, parse_definition
from hdhub.errors import ValidationError

DOMAINS = {
    "ConditionOccurrence": "condition",
    "DrugExposure": "drug",
    "Measurement": "measurement",
    "ProcedureOccurrence": "procedure",
    "Observation": "observation",
    "VisitOccurrence": "visit",
    "DeviceExposure": "device",
    "Death": "death",
}
GENDERS = {8532: "female", 8507: "male"}
_OCCURRENCE = {0: "exactly", 1: "at_most", 2: "at_least"}
_COMMON = {"CodesetId", "First", "OccurrenceStartDate"}
_VALUED = {"ValueAsNumber", "Unit"}
_ALLOWED = {
    "measurement": _COMMON | _VALUED | {"Abnormal"},
    "observation": _COMMON | _VALUED,
}


class UnsupportedAtlas(ValidationError):
    """An ATLAS definition using constructs the hdhub format does not carry."""

    code = "unsupported_atlas"


def is_atlas(data: Any) -> bool:
    return isinstance(data, dict) and ("PrimaryCriteria" in data or "ConceptSets" in data)


class _Importer:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.unsupported: list[str] = []
        self.set_names: dict[Any, str] = {}

    def nope(self, what: str) -> None:
        if what not in self.unsupported:
            self.unsupported.append(what)

    # concept sets -------------------------------------------------------------------------

    def concept_sets(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for cs in self.data.get("ConceptSets") or []:
            name = _slug(cs.get("name") or f"set-{cs.get('id')}", taken=set(out))
            self.set_names[cs.get("id")] = name
            items = []
            for item in (cs.get("expression") or {}).get("items") or []:
                concept = item.get("concept") or {}
                concept_id = concept.get("CONCEPT_ID", concept.get("conceptId"))
                if not isinstance(concept_id, int):
                    self.nope(f"concept set {name!r}: an item without a CONCEPT_ID")
                    continue
                items.append(
                    {
                        "concept_id": concept_id,
                        "descendants": bool(item.get("includeDescendants")),
                        "mapped": bool(item.get("includeMapped")),
                        "exclude": bool(item.get("isExcluded")),
                    }
                )
            out[name] = {"items": items}
        return out

    def codeset(self, where: str, codeset_id: Any) -> str | None:
        if codeset_id is None:
            return None
        if codeset_id not in self.set_names:
            self.nope(f"{where}: CodesetId {codeset_id} names no concept set")
            return None
        return self.set_names[codeset_id]

    # criteria ---------------------------------------------------------------------------

    def event(self, criteria: dict[str, Any], where: str) -> dict[str, Any] | None:
        if not isinstance(criteria, dict) or len(criteria) != 1:
            self.nope(f"{where}: a criteria object with one domain")
            return None
        ((kind, body),) = criteria.items()
        domain = DOMAINS.get(kind)
        if domain is None:
            self.nope(f"{where}: {kind} criteria")
            return None
        body = body or {}
        for key in sorted(set(body) - _ALLOWED.get(domain, _COMMON)):
            if body[key] not in (None, [], False, {}):
                self.nope(f"{where}: {kind}.{key}")
        event: dict[str, Any] = {"domain": domain}
        concept_set = self.codeset(where, body.get("CodesetId"))
        if concept_set:
            event["concept_set"] = concept_set
        if body.get("First"):
            event["first_occurrence"] = True
        if body.get("OccurrenceStartDate"):
            event["date_range"] = self.date_range(
                body["OccurrenceStartDate"], f"{where}: OccurrenceStartDate"
            )
        if body.get("ValueAsNumber"):
            event["value"] = self.value_range(body["ValueAsNumber"], f"{where}: ValueAsNumber")
        if body.get("Unit"):
            event["units"] = [c.get("CONCEPT_ID") for c in body["Unit"]]
        if body.get("Abnormal"):
            event["abnormal"] = True
        return event

    def date_range(self, r: dict[str, Any], where: str) -> dict[str, Any]:
        op, value, extent = r.get("Op"), r.get("Value"), r.get("Extent")
        try:
            v = dt.date.fromisoformat(value) if value else None
            e = dt.date.fromisoformat(extent) if extent else None
        except ValueError:
            self.nope(f"{where}: a date that is not YYYY-MM-DD")
            return {}
        day = dt.timedelta(days=1)
        forms = {
            "lt": lambda: {"end": v - day}, "lte": lambda: {"end": v},
            "gt": lambda: {"start": v + day}, "gte": lambda: {"start": v},
            "eq": lambda: {"start": v, "end": v}, "bt": lambda: {"start": v, "end": e},
        }  # fmt: skip
        if op not in forms or v is None or (op == "bt" and e is None):
            self.nope(f"{where}: operator {op!r}")
            return {}
        return {k: d.isoformat() for k, d in forms[op]().items()}

    def value_range(self, r: dict[str, Any], where: str) -> dict[str, Any]:
        op, value, extent = r.get("Op"), r.get("Value"), r.get("Extent")
        forms = {
            "lt": {"max": value, "max_exclusive": True}, "lte": {"max": value},
            "gt": {"min": value, "min_exclusive": True}, "gte": {"min": value},
            "eq": {"min": value, "max": value}, "bt": {"min": value, "max": extent},
        }  # fmt: skip
        if op not in forms or value is None or (op == "bt" and extent is None):
            self.nope(f"{where}: operator {op!r}")
            return {}
        return forms[op]

    def age(self, r: dict[str, Any], where: str) -> dict[str, Any]:
        op, value, extent = r.get("Op"), r.get("Value"), r.get("Extent")
        forms = {
            "lt": {"max": (value or 0) - 1}, "lte": {"max": value}, "gt": {"min": (value or 0) + 1},
            "gte": {"min": value}, "eq": {"min": value, "max": value}, "bt": {"min": value, "max": extent},
        }  # fmt: skip
        if op not in forms or not isinstance(value, int) or (op == "bt" and not isinstance(extent, int)):
            self.nope(f"{where}: Age operator {op!r}")
            return {}
        return forms[op]

    def demographic(self, d: dict[str, Any], where: str) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for key in sorted(set(d) - {"Age", "Gender"}):
            if d[key] not in (None, [], {}):
                self.nope(f"{where}: demographic {key}")
        if d.get("Age"):
            out["age"] = self.age(d["Age"], where)
        if d.get("Gender"):
            sexes = []
            for c in d["Gender"]:
                sex = GENDERS.get(c.get("CONCEPT_ID"))
                if sex is None:
                    self.nope(f"{where}: gender concept {c.get('CONCEPT_ID')}")
                else:
                    sexes.append(sex)
            out["sex"] = sexes
        return {"demographics": out} if out else None

    def window(self, w: dict[str, Any] | None, where: str) -> dict[str, Any] | None:
        if not w:
            return None
        if w.get("UseIndexEnd") or w.get("UseEventEnd"):
            self.nope(f"{where}: a window on the index's or the event's end date")

        def bound(b: dict[str, Any] | None, unbounded: str) -> dict[str, Any]:
            if not b or b.get("Days") is None:
                return {"direction": unbounded}
            coeff = b.get("Coeff", -1)
            return {"days": b["Days"], "direction": "before" if coeff < 0 else "after"}

        return {"start": bound(w.get("Start"), "before"), "end": bound(w.get("End"), "after")}

    def group(self, g: dict[str, Any], where: str) -> dict[str, Any]:
        kind = str(g.get("Type", "ALL")).upper()
        types = {"ALL": "all", "ANY": "any", "AT_LEAST": "at_least", "AT_MOST": "at_most"}
        if kind not in types:
            self.nope(f"{where}: group type {kind}")
            kind = "ALL"
        items: list[dict[str, Any]] = []
        for i, c in enumerate(g.get("CriteriaList") or []):
            at = f"{where}, criterion {i + 1}"
            event = self.event(c.get("Criteria"), at)
            if event is None:
                continue
            if c.get("EndWindow"):
                self.nope(f"{at}: EndWindow")
            if c.get("IgnoreObservationPeriod"):
                self.nope(f"{at}: IgnoreObservationPeriod")
            occ = c.get("Occurrence") or {"Type": 2, "Count": 1}
            if occ.get("IsDistinct"):
                self.nope(f"{at}: distinct occurrence counts")
            item: dict[str, Any] = {"event": event}
            window = self.window(c.get("StartWindow"), at)
            if window:
                item["window"] = window
            if c.get("RestrictVisit"):
                item["same_visit"] = True
            occ_type, count = _OCCURRENCE.get(occ.get("Type"), "at_least"), occ.get("Count", 1)
            if occ_type == "at_least" and count == 0:
                continue  # "at least 0" is always true: circe keeps it, it changes nothing
            if (occ_type, count) != ("at_least", 1):
                item["occurrences"] = {"type": occ_type, "count": count}
            items.append(item)
        for i, d in enumerate(g.get("DemographicCriteriaList") or []):
            demo = self.demographic(d, f"{where}, demographic criterion {i + 1}")
            if demo:
                items.append(demo)
        for i, sub in enumerate(g.get("Groups") or []):
            items.append(self.group(sub, f"{where}, group {i + 1}"))
        out: dict[str, Any] = {"type": types[kind], "items": items}
        if kind in ("AT_LEAST", "AT_MOST"):
            out["count"] = g.get("Count", 1)
        return out

    # the whole definition -----------------------------------------------------------------

    def convert(self, name: str) -> dict[str, Any]:
        d = self.data
        out: dict[str, Any] = {"name": name, "concept_sets": self.concept_sets()}
        primary = d.get("PrimaryCriteria") or {}
        events = []
        for i, c in enumerate(primary.get("CriteriaList") or []):
            event = self.event(c, f"entry event {i + 1}")
            if event:
                events.append(event)
        limit = str((primary.get("PrimaryCriteriaLimit") or {}).get("Type", "First"))
        if limit not in ("First", "All"):
            self.nope(f"PrimaryCriteriaLimit {limit}")
        out["entry"] = {"events": events, "occurrence": "first" if limit == "First" else "all"}
        window = primary.get("ObservationWindow") or {}
        out["observation"] = {
            "prior_days": window.get("PriorDays", 0),
            "post_days": window.get("PostDays", 0),
        }
        rules = []
        qualified = str((d.get("QualifiedLimit") or {}).get("Type", "First"))
        expression = str((d.get("ExpressionLimit") or {}).get("Type", "First"))
        if limit == "All" and (qualified != "All" or expression != "All"):
            self.nope("QualifiedLimit or ExpressionLimit First after PrimaryCriteriaLimit All")
        if d.get("AdditionalCriteria"):
            rules.append(
                {
                    "name": "additional criteria",
                    "criteria": self.group(d["AdditionalCriteria"], "additional criteria"),
                }
            )
        for i, rule in enumerate(d.get("InclusionRules") or []):
            rule_name = rule.get("name") or f"rule {i + 1}"
            entry: dict[str, Any] = {
                "name": rule_name,
                "criteria": self.group(rule.get("expression") or {}, f"inclusion rule {rule_name!r}"),
            }
            if rule.get("description"):
                entry["description"] = rule["description"]
            rules.append(entry)
        out["inclusion_rules"] = rules
        out["exit"] = self.exit(d.get("EndStrategy"))
        if d.get("CensoringCriteria"):
            self.nope("CensoringCriteria")
        if (d.get("CensorWindow") or {}).get("StartDate") or (d.get("CensorWindow") or {}).get("EndDate"):
            self.nope("CensorWindow")
        if ((d.get("CollapseSettings") or {}).get("EraPad") or 0) > 0:
            self.nope("CollapseSettings.EraPad above 0")
        return out

    def exit(self, strategy: dict[str, Any] | None) -> dict[str, Any]:
        if not strategy:
            return {"type": "end_of_observation"}
        if "DateOffset" in strategy:
            o = strategy["DateOffset"] or {}
            field = o.get("DateField", "StartDate")
            return {
                "type": "fixed_offset",
                "days": o.get("Offset", 0),
                "from": "start" if field == "StartDate" else "end",
            }
        if "CustomEra" in strategy:
            e = strategy["CustomEra"] or {}
            if e.get("DaysSupplyOverride") is not None:
                self.nope("EndStrategy.CustomEra.DaysSupplyOverride")
            concept_set = self.codeset("exit", e.get("DrugCodesetId"))
            if concept_set is None:
                self.nope("EndStrategy.CustomEra without a DrugCodesetId")
                return {"type": "end_of_observation"}
            return {
                "type": "drug_era",
                "concept_set": concept_set,
                "gap_days": e.get("GapDays", 0),
                "offset_days": e.get("Offset", 0),
            }
        self.nope(f"EndStrategy {', '.join(strategy)}")
        return {"type": "end_of_observation"}


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:56] or "set"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def import_atlas(data: dict[str, Any], name: str = "") -> CohortDefinition:
    """The hdhub definition of an ATLAS cohort expression; UnsupportedAtlas names what it lacks."""
    if not is_atlas(data):
        raise ValidationError("not an ATLAS cohort definition (no PrimaryCriteria)")
    importer = _Importer(data)
    converted = importer.convert(name)
    if importer.unsupported:
        raise UnsupportedAtlas(
            "this ATLAS definition uses what hdhub cannot carry: " + "; ".join(importer.unsupported)
        )
    return parse_definition(converted)
