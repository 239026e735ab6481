"""The cohort definition format (``hdhub.cohort/1``): JSON, checked by pydantic, with a JSON Schema.

Modelled on OHDSI ATLAS (circe) cohort definitions and i2b2 query panels; docs/cohorts.md
describes every field with examples. A definition has:

- named **concept sets** (items with descendants / mapped / exclude flags, and other sets
  they include),
- **entry events**: one or more domain events (any of them opens an index date), the
  first or all of them per person, with the continuous observation required around them,
- **demographics** at the index date (age, sex, site),
- **inclusion rules**, each a group (ALL / ANY / AT_LEAST n / AT_MOST n) of criteria and
  nested groups; a criterion counts a person's events in a window around the index date,
- the **exit**: end of observation, a fixed offset, or the end of a drug era.

Everything a definition could get wrong is refused here or in ``check_references`` with a
message naming the field: no definition reaches the compiler in a state it cannot run.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

FORMAT = "hdhub.cohort/1"

# Limits that keep a definition reviewable and its query bounded. An ATLAS concept set
# rarely lists more than a few hundred concepts: descendants cover hierarchies.
MAX_CONCEPT_SET_ITEMS = 1_000
MAX_CONCEPT_SETS = 100
MAX_ENTRY_EVENTS = 20
MAX_RULES = 50
MAX_CRITERIA = 200  # criteria and groups in all inclusion rules together
MAX_DEPTH = 8  # nesting of groups
MAX_DAYS = 36_600  # a hundred years
MAX_CONCEPT_ID = 2**31 - 1  # OMOP concept ids are 32-bit integers

Domain = Literal[
    "condition", "drug", "measurement", "procedure", "observation", "visit", "device", "death", "note"
]
Sex = Literal["female", "male", "unknown"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # concept sets and saved definitions
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Days = Annotated[int, Field(ge=0, le=MAX_DAYS)]


def _printable(text: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError("control characters (NUL, tab, newline …) are not allowed")
    return text


SearchText = Annotated[str, Field(min_length=2, max_length=200), AfterValidator(_printable)]


class _Model(BaseModel):
    # allow_inf_nan: a bound of NaN or ±Infinity ("NaN" is a number to pydantic's lax mode)
    # would vanish on the way through JSON and let every value match. strict: JSON's own types
    # (lax mode read "days": false as 0 and "descendants": 1 as true); dates alone are read
    # from their ISO strings.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False, strict=True
    )


class ConceptItem(_Model):
    """One concept of a concept set."""

    concept_id: int = Field(gt=0, le=MAX_CONCEPT_ID, description="An OMOP concept_id of the vocabulary.")
    descendants: bool = Field(False, description="Also its descendants (concept_ancestor).")
    mapped: bool = Field(
        False, description="Also events recorded with a source concept that 'Maps to' it (source_concept_id)."
    )
    exclude: bool = Field(False, description="Remove it (and, with the flags, its descendants) from the set.")


class ConceptSet(_Model):
    items: list[ConceptItem] = Field(default_factory=list, max_length=MAX_CONCEPT_SET_ITEMS)
    include: list[Name] = Field(
        default_factory=list,
        max_length=MAX_CONCEPT_SETS,
        description="Other concept sets of this definition.",
    )


class DateRange(_Model):
    start: dt.date | None = Field(None, strict=False, description="On or after this date (ISO 8601).")
    end: dt.date | None = Field(None, strict=False, description="On or before this date (ISO 8601).")

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"date range ends ({self.end}) before it starts ({self.start})")
        return self


class ValueRange(_Model):
    min: float | None = Field(None, description="value_as_number >= min (> min with min_exclusive)")
    max: float | None = Field(None, description="value_as_number <= max (< max with max_exclusive)")
    min_exclusive: bool = False
    max_exclusive: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ValueRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"value range min {self.min:g} is above max {self.max:g}")
        return self


_VALUE_DOMAINS = ("measurement", "observation")


class Event(_Model):
    """Events of one domain, optionally restricted to a concept set and by value, date, text."""

    domain: Domain
    concept_set: Name | None = Field(
        None, description="Name of a concept set; none means any event of the domain."
    )
    first_occurrence: bool = Field(False, description="Only the person's first event of this kind.")
    date_range: DateRange | None = None
    value: ValueRange | None = Field(None, description="measurement, observation: value_as_number range.")
    units: list[Annotated[int, Field(ge=0, le=MAX_CONCEPT_ID)]] | None = Field(
        None, max_length=100, description="measurement, observation: unit_concept_id in these."
    )
    abnormal: bool | None = Field(
        None,
        description="measurement: true = outside [range_low, range_high] or value_as_concept abnormal; "
        "false = the opposite.",
    )
    text: SearchText | None = Field(
        None, description="note: note_text contains this (case-insensitive); no control characters."
    )

    @model_validator(mode="after")
    def _fits_domain(self) -> Event:
        if (self.value is not None or self.units is not None) and self.domain not in _VALUE_DOMAINS:
            raise ValueError(f"value and units apply to measurement and observation, not {self.domain}")
        if self.abnormal is not None and self.domain != "measurement":
            raise ValueError(f"abnormal applies to measurement, not {self.domain}")
        if self.text is not None and self.domain != "note":
            raise ValueError(f"text applies to note, not {self.domain}")
        return self


class Entry(_Model):
    events: list[Event] = Field(
        min_length=1, max_length=MAX_ENTRY_EVENTS, description="Any of them opens an index date."
    )
    occurrence: Literal["first", "all"] = Field(
        "first", description="Keep each person's earliest entry event, or all of them."
    )


class AgeRange(_Model):
    min: int | None = Field(None, ge=0, le=150)
    max: int | None = Field(None, ge=0, le=150)

    @model_validator(mode="after")
    def _ordered(self) -> AgeRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"age range min {self.min} is above max {self.max}")
        return self


class Demographics(_Model):
    """At the index date: age in years (index year minus year of birth), sex, site."""

    age: AgeRange | None = None
    sex: list[Sex] | None = Field(None, min_length=1)
    sites: list[Name] | None = Field(None, min_length=1, description="Sites that sent data about the person.")


class ObservationRequired(_Model):
    prior_days: Days = Field(0, description="Continuous observation before the index date.")
    post_days: Days = Field(0, description="Continuous observation after the index date.")


class Bound(_Model):
    days: Days | None = Field(None, description="None: unbounded (all time).")
    direction: Literal["before", "after"] = "before"

    def offset(self, unbounded: float) -> float:
        if self.days is None:
            return unbounded
        return -self.days if self.direction == "before" else self.days


class Window(_Model):
    """The event's start date lies within [index + start, index + end]."""

    start: Bound = Field(default_factory=Bound)
    end: Bound = Field(default_factory=lambda: Bound(days=None, direction="after"))

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start.days is None and self.start.direction == "after":
            raise ValueError("an unbounded window start must be 'before'")
        if self.end.days is None and self.end.direction == "before":
            raise ValueError("an unbounded window end must be 'after'")
        if self.start.offset(float("-inf")) > self.end.offset(float("inf")):
            raise ValueError(
                f"window starts after it ends ({_say(self.start)} is later than {_say(self.end)}): "
                "it can match nothing"
            )
        return self


def _say(b: Bound) -> str:
    return "all time" if b.days is None else f"{b.days} days {b.direction}"


class Occurrences(_Model):
    type: Literal["at_least", "at_most", "exactly"] = "at_least"
    count: int = Field(1, ge=0, le=10_000)

    @model_validator(mode="after")
    def _meaningful(self) -> Occurrences:
        if self.type == "at_least" and self.count == 0:
            raise ValueError("'at least 0' occurrences is always true: use at_most or exactly")
        return self


class Criterion(_Model):
    """A count of the person's events in a window around the index date."""

    event: Event
    window: Window | None = Field(None, description="None: any time.")
    same_visit: bool = Field(False, description="The event happened in the index event's visit.")
    occurrences: Occurrences = Field(default_factory=Occurrences)
    negate: bool = False


class DemographicCriterion(_Model):
    demographics: Demographics
    negate: bool = False


def _item_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, tag in (("event", "criterion"), ("demographics", "demographic"), ("items", "group")):
            if key in value:
                return tag
        return None
    return {Criterion: "criterion", DemographicCriterion: "demographic", Group: "group"}.get(type(value))


Item = Annotated[
    Annotated[Criterion, Tag("criterion")]
    | Annotated[DemographicCriterion, Tag("demographic")]
    | Annotated["Group", Tag("group")],
    Discriminator(
        _item_kind,
        custom_error_type="item_kind",
        custom_error_message="an item has 'event' (a criterion), 'demographics' or 'items' (a group)",
    ),
]


class Group(_Model):
    type: Literal["all", "any", "at_least", "at_most"] = "all"
    count: int | None = Field(None, ge=0, description="For at_least / at_most: how many items.")
    items: list[Item] = Field(min_length=1, max_length=MAX_CRITERIA)
    negate: bool = False

    @model_validator(mode="after")
    def _count(self) -> Group:
        if self.type in ("at_least", "at_most"):
            if self.count is None:
                raise ValueError(f"a group of type {self.type} needs a count")
            if self.count > len(self.items):
                raise ValueError(f"{self.type} {self.count} of {len(self.items)} items")
        elif self.count is not None:
            raise ValueError(f"count applies to at_least and at_most groups, not {self.type}")
        return self


class InclusionRule(_Model):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2_000)
    criteria: Group


class EndOfObservation(_Model):
    type: Literal["end_of_observation"]


class FixedOffset(_Model):
    type: Literal["fixed_offset"]
    days: Days
    from_: Literal["start", "end"] = Field("start", alias="from", description="Of the index event.")


class DrugEraEnd(_Model):
    """The end of the drug era (exposures of the set joined across gaps) holding the index date."""

    type: Literal["drug_era"]
    concept_set: Name
    gap_days: Days = Field(
        30, description="Exposures this close belong to one era (OMOP's drug_era uses 30)."
    )
    offset_days: Days = Field(0, description="Days added after the era's end.")


Exit = Annotated[EndOfObservation | FixedOffset | DrugEraEnd, Field(discriminator="type")]


class CohortDefinition(_Model):
    format: Literal["hdhub.cohort/1"] = Field(FORMAT, description="Format and version of this document.")
    name: str = Field("", max_length=200)
    description: str | None = Field(None, max_length=5_000)
    concept_sets: dict[Name, ConceptSet] = Field(default_factory=dict, max_length=MAX_CONCEPT_SETS)
    entry: Entry
    observation: ObservationRequired = Field(default_factory=ObservationRequired)
    demographics: Demographics | None = None
    inclusion_rules: list[InclusionRule] = Field(default_factory=list, max_length=MAX_RULES)
    exit: Exit = Field(default_factory=lambda: EndOfObservation(type="end_of_observation"))

    @model_validator(mode="after")
    def _references(self) -> CohortDefinition:
        check_references(self)
        return self


def iter_items(group: Group, depth: int = 1) -> Any:
    """(depth, item) for every item of a group, nested groups included."""
    for item in group.items:
        yield depth, item
        if isinstance(item, Group):
            yield from iter_items(item, depth + 1)


def events_of(definition: CohortDefinition) -> list[Event]:
    events = list(definition.entry.events)
    for rule in definition.inclusion_rules:
        events.extend(item.event for _, item in iter_items(rule.criteria) if isinstance(item, Criterion))
    return events


def check_references(d: CohortDefinition) -> None:
    """Concept sets named exist and include no cycle; groups are within the size limits."""
    named = set(d.concept_sets)
    used = [(f"entry event {i + 1}", e.concept_set) for i, e in enumerate(d.entry.events)]
    total = 0
    for rule in d.inclusion_rules:
        for depth, item in iter_items(rule.criteria):
            total += 1
            if depth > MAX_DEPTH:
                raise ValueError(
                    f"inclusion rule {rule.name!r}: groups nested deeper than {MAX_DEPTH} levels"
                )
            if isinstance(item, Criterion):
                used.append((f"inclusion rule {rule.name!r}", item.event.concept_set))
    if total > MAX_CRITERIA:
        raise ValueError(f"{total} criteria and groups in the inclusion rules: the limit is {MAX_CRITERIA}")
    if isinstance(d.exit, DrugEraEnd):
        used.append(("exit", d.exit.concept_set))
    for where, name in used:
        if name is not None and name not in named:
            raise ValueError(f"{where} names the concept set {name!r}, which the definition does not define")
    for name, cs in d.concept_sets.items():
        for inc in cs.include:
            if inc not in named:
                raise ValueError(
                    f"concept set {name!r} includes {inc!r}, which the definition does not define"
                )
    _check_cycles(d.concept_sets)


def _check_cycles(sets: dict[str, ConceptSet]) -> None:
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise ValueError("concept sets include each other in a cycle: " + " -> ".join(cycle))
        state[name] = 1
        for inc in sets[name].include:
            visit(inc, [*path, name])
        state[name] = 2

    for name in sets:
        visit(name, [])


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the format (docs/cohort-definition.schema.json is generated from it)."""
    schema = CohortDefinition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://hdhub.example/schemas/cohort-definition-1.json"
    return schema


def load_json(data: bytes | str) -> Any:
    """Decoded JSON of a definition file or body, within the size limit."""
    import orjson

    from hdhub.errors import ValidationError

    if len(data) > MAX_DEFINITION_BYTES:
        raise ValidationError(f"the definition is larger than {MAX_DEFINITION_BYTES // 1_000_000} MB")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the definition is not valid JSON: {exc}") from None


def parse_any(data: bytes | str | dict[str, Any], name: str = "") -> CohortDefinition:
    """hdhub.cohort/1, or an ATLAS (circe) cohort definition converted by the importer."""
    from hdhub.cohorts.atlas import import_atlas, is_atlas

    if isinstance(data, (bytes, str)):
        data = load_json(data)
    if is_atlas(data):
        return import_atlas(data, name=name)
    return parse_definition(data)


def parse_definition(data: bytes | str | dict[str, Any]) -> CohortDefinition:
    """A definition from JSON text or a decoded object; ValidationError names each problem."""
    import pydantic

    from hdhub.errors import ValidationError

    if isinstance(data, (bytes, str)):
        data = load_json(data)
    if not isinstance(data, dict):
        raise ValidationError("a cohort definition is a JSON object")
    try:
        return CohortDefinition.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError("invalid cohort definition: " + describe_errors(exc)) from None


MAX_DEFINITION_BYTES = 2_000_000


def describe_errors(exc: Any, shown: int = 5) -> str:
    """Pydantic's errors as 'where: what' phrases, the first few of them."""
    parts = []
    for err in exc.errors(include_url=False)[:shown]:
        where = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in _TAGS))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    more = exc.error_count() - shown
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


_TAGS = {"criterion", "demographic", "group", "end_of_observation", "fixed_offset", "drug_era"}
