"""A cohort definition compiled to one Ibis expression, for any engine.

``compile_cohort`` takes a parsed definition, its resolved concept sets and a function
giving OMOP tables (bound to a backend, or unbound ``ibis.table`` for SQL generation) and
builds, without touching data:

- ``index``: the index events (one row per entry event kept, with the columns that its
  criteria and the cohort periods read: the observation end, sex and year of birth when
  asked for) and one boolean column per inclusion rule;
- ``cohort``: the rows meeting every rule — person_id, cohort_start_date, cohort_end_date;
- ``summary()``: one row with the entry persons, the persons meeting each rule alone and
  those remaining after each rule in turn (ATLAS's attrition), and the final persons;
- ``breakdown(by)``: persons by sex and age band at index, or by site.

Semantics follow circe (ATLAS) where they overlap; docs/cohorts.md states each one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from hdhub.cohorts.concepts import ResolvedSet
from hdhub.cohorts.definition import (
    CohortDefinition,
    Criterion,
    DemographicCriterion,
    Demographics,
    DrugEraEnd,
    Event,
    FixedOffset,
    Group,
    Window,
    iter_items,
)

TableGetter = Callable[[str], ir.Table]

# OMOP gender concepts; anything else counts as "unknown".
SEX_CONCEPTS = {"female": 8532, "male": 8507}
# value_as_concept_id meaning abnormal (circe's "abnormal" criterion): Abnormal, High, Low.
ABNORMAL_VALUE_CONCEPTS = (4155142, 4155143, 4155144, 4135493, 4267416)
AGE_BAND_YEARS = 10


@dataclass(frozen=True)
class DomainTable:
    table: str
    id: str | None  # None: one row per person (death), keyed by person_id
    concept: str
    source_concept: str | None
    start: str
    end: str | None
    visit: str | None


DOMAINS: dict[str, DomainTable] = {
    "condition": DomainTable(
        "condition_occurrence",
        "condition_occurrence_id",
        "condition_concept_id",
        "condition_source_concept_id",
        "condition_start_date",
        "condition_end_date",
        "visit_occurrence_id",
    ),
    "drug": DomainTable(
        "drug_exposure",
        "drug_exposure_id",
        "drug_concept_id",
        "drug_source_concept_id",
        "drug_exposure_start_date",
        "drug_exposure_end_date",
        "visit_occurrence_id",
    ),
    "measurement": DomainTable(
        "measurement",
        "measurement_id",
        "measurement_concept_id",
        "measurement_source_concept_id",
        "measurement_date",
        None,
        "visit_occurrence_id",
    ),
    "procedure": DomainTable(
        "procedure_occurrence",
        "procedure_occurrence_id",
        "procedure_concept_id",
        "procedure_source_concept_id",
        "procedure_date",
        "procedure_end_date",
        "visit_occurrence_id",
    ),
    "observation": DomainTable(
        "observation",
        "observation_id",
        "observation_concept_id",
        "observation_source_concept_id",
        "observation_date",
        None,
        "visit_occurrence_id",
    ),
    "visit": DomainTable(
        "visit_occurrence",
        "visit_occurrence_id",
        "visit_concept_id",
        "visit_source_concept_id",
        "visit_start_date",
        "visit_end_date",
        "visit_occurrence_id",
    ),
    "device": DomainTable(
        "device_exposure",
        "device_exposure_id",
        "device_concept_id",
        "device_source_concept_id",
        "device_exposure_start_date",
        "device_exposure_end_date",
        "visit_occurrence_id",
    ),
    "death": DomainTable(
        "death", None, "cause_concept_id", "cause_source_concept_id", "death_date", None, None
    ),
    "note": DomainTable(
        "note", "note_id", "note_class_concept_id", None, "note_date", None, "visit_occurrence_id"
    ),
}
_DOMAIN_CODE = {name: i + 1 for i, name in enumerate(DOMAINS)}
# An id list (a concept set, the persons left out) is one literal in the expression, below
# any id OMOP can hold; the SQL gets the ids when it is generated (``to_sql(lists=…)``).
# With an Ibis literal per id, compiling grew with the sets: +1,000 ids, 3 to 6 times slower.
LIST_SENTINEL = -(2**41)
_KEY_SPACE = 2**32  # event_key = domain code * 2**32 + the row's id (OMOP ids are 32-bit)


def unbound_tables() -> TableGetter:
    """OMOP tables as unbound Ibis tables, for SQL generation on any dialect."""
    return _unbound_table


# Columns the compiler reads besides those DOMAINS names. An unbound table carries only
# the columns read: Ibis walks every column of both sides at each join and projection, so
# the full OMOP tables (up to 23 columns) made compiling 8-12 % slower, for the same SQL
# (a table is read by column name, or through ``*``, which the engine expands).
_READ_COLUMNS: dict[str, tuple[str, ...]] = {
    "measurement": ("value_as_number", "unit_concept_id", "value_as_concept_id", "range_low", "range_high"),
    "note": ("note_text",),
    "observation_period": ("observation_period_start_date", "observation_period_end_date"),
    "person": ("gender_concept_id", "year_of_birth"),
}


def _columns_read(name: str) -> frozenset[str] | None:
    """The columns of OMOP table ``name`` the compiler may read (None: every column)."""
    doms = [d for d in DOMAINS.values() if d.table == name]
    if not doms and name not in _READ_COLUMNS:
        return None
    cols = {"person_id", *_READ_COLUMNS.get(name, ())}
    for d in doms:
        cols.update(c for c in (d.id, d.concept, d.source_concept, d.start, d.end, d.visit) if c)
    return frozenset(cols)


@functools.cache
def _unbound_table(name: str) -> ir.Table:
    from hdhub.warehouse.schema import cdm_schema

    schema, read = cdm_schema(name), _columns_read(name)
    return ibis.table({c: t for c, t in schema.items() if read is None or c in read}, name=name)


def with_person(t: ir.Table, tables: TableGetter) -> ir.Table:
    """``t`` with the person's gender_concept_id and year_of_birth."""
    person = tables("person")
    return t.join(person, t.person_id == person.person_id).select(
        t, gender_concept_id=person.gender_concept_id, year_of_birth=person.year_of_birth
    )


def _days(d: ir.DateValue, n: float) -> ir.DateValue:
    """``d`` moved by ``n`` days, a date in the SQL too: date ± interval is a timestamp there,
    and a date column compared with a timestamp is cast on every row (Q1 and Q3 of
    benchmarks/cohorts.py ran 5-10 % slower)."""
    n = int(n)
    if n == 0:
        return d
    return _as_date(d + ibis.interval(days=n) if n > 0 else d - ibis.interval(days=-n))


def _as_date(d: ir.DateValue) -> ir.DateValue:
    """A date in the SQL too: Ibis types date + interval as a date and would drop a plain cast."""
    return d.cast("timestamp").cast("date")


@dataclass
class CompiledCohort:
    definition: CohortDefinition
    events: ir.Table  # the index events, with the columns their criteria and the periods read
    flags: dict[str, ir.BooleanValue]  # rule_<k>: whether an index event meets rule k
    lists: dict[int, tuple[int, ...]]  # sentinel -> ids, for to_sql (grows if ``cohort`` adds one)
    _sentinels: dict[tuple[str, ...], int]  # what each list stands for -> its sentinel
    _exit: Callable[[ir.Table], ir.Table]

    # The parts below are built when first asked: a count needs none of them, and every
    # node of an expression costs compile time (about 0.2 ms each), not run time.

    @property
    def rule_columns(self) -> list[str]:
        return list(self.flags)

    @functools.cached_property
    def index(self) -> ir.Table:
        """The index events and one boolean column per inclusion rule (rule_<k>)."""
        return self.events.select(self.events, **self.flags)

    @functools.cached_property
    def cohort(self) -> ir.Table:
        """person_id, cohort_start_date, cohort_end_date."""
        return self._exit(self.index)

    @property
    def list_keys(self) -> dict[int, tuple[str, ...]]:
        """sentinel -> what its list stands for (("standard" | "source", set name) or ("excluded",))."""
        return {sentinel: key for key, sentinel in self._sentinels.items()}

    def summary(self) -> ir.Table:
        """One row: entry, rule_<k>_met, after_rule_<k>, persons (distinct persons each)."""
        t = self.events.select("person_id", **self.flags)
        if self.definition.entry.occurrence == "first":  # one index event per person: plain counts

            def count(where: ir.BooleanValue | None = None) -> ir.IntegerScalar:
                return t.count(where=where)
        else:

            def count(where: ir.BooleanValue | None = None) -> ir.IntegerScalar:
                return t.person_id.nunique(where=where)

        metrics: dict[str, Any] = {"entry": count()}
        cumulative: ir.BooleanValue | None = None
        for col in self.rule_columns:
            metrics[f"{col}_met"] = count(t[col])
            cumulative = t[col] if cumulative is None else cumulative & t[col]
            metrics[f"after_{col}"] = (
                metrics[f"{col}_met"] if col == self.rule_columns[0] else count(cumulative)
            )
        metrics["persons"] = (
            metrics[f"after_{self.rule_columns[-1]}"] if self.rule_columns else metrics["entry"]
        )
        return t.aggregate(**metrics)

    def persons(self, tables: TableGetter) -> ir.Table:
        """One row per person of the cohort: first index date, sex, year of birth."""
        t = self.index
        for col in self.rule_columns:
            t = t.filter(t[col])
        return with_person(t.group_by("person_id").aggregate(index_date=t.start_date.min()), tables)

    def breakdown(self, by: str, tables: TableGetter) -> ir.Table:
        """Persons by ``sex_age`` (sex, age band at first index) or by ``site``."""
        p = self.persons(tables)
        if by == "site":
            ps = tables("person_site")
            j = p.left_join(ps, p.person_id == ps.person_id)
            return j.group_by(site=j.site.fill_null("unknown")).aggregate(persons=j.person_id.nunique())
        sex = ibis.cases(*((p.gender_concept_id == c, s) for s, c in SEX_CONCEPTS.items()), else_="unknown")
        age = p.index_date.year() - p.year_of_birth
        band = ((age // AGE_BAND_YEARS) * AGE_BAND_YEARS).cast("int32")
        return p.group_by(sex=sex, age_band=band).aggregate(persons=p.person_id.nunique())


class _Compiler:
    def __init__(
        self,
        definition: CohortDefinition,
        concept_sets: dict[str, ResolvedSet],
        tables: TableGetter,
        excluded_persons: Iterable[int],
        periods: bool = True,
    ) -> None:
        self.d = definition
        self.sets = concept_sets
        self.tables = tables
        self.excluded = sorted(set(excluded_persons))
        # Columns carried only where something reads them (each costs compile time): the
        # visit when a criterion asks for the same visit; what the cohort periods need
        # (observation end, the event's end) unless the compile is for counts only.
        self.periods = periods
        self.visits = any(
            isinstance(i, Criterion) and i.same_visit
            for r in definition.inclusion_rules
            for _, i in iter_items(r.criteria)
        )
        ex = definition.exit
        self.end_dates = periods and isinstance(ex, FixedOffset) and ex.from_ != "start"
        self.lists: dict[int, tuple[int, ...]] = {}
        self.list_keys: dict[tuple[str, ...], int] = {}

    def id_list(self, key: tuple[str, ...], ids: Iterable[int]) -> list[int]:
        """The one-literal list standing for ``ids`` (named by ``key``) in the expression."""
        sentinel = self.list_keys.get(key)
        if sentinel is None:
            sentinel = self.list_keys[key] = LIST_SENTINEL - len(self.list_keys)
            self.lists[sentinel] = tuple(sorted(ids))
        return [sentinel]

    # events -----------------------------------------------------------------------------

    def events(self, ev: Event, *, keyed: bool = False) -> ir.Table:
        """person_id, start_date, visit_id of the matching rows; with ``keyed`` (entry events)
        also event_key (unique across domains) and end_date."""
        dom = DOMAINS[ev.domain]
        t = self.tables(dom.table)
        preds: list[ir.BooleanValue] = []
        if ev.concept_set is not None:
            preds.append(self.in_set(t, dom, ev.concept_set))
        start = t[dom.start]
        if ev.date_range is not None:
            if ev.date_range.start is not None:
                preds.append(start >= ev.date_range.start)
            if ev.date_range.end is not None:
                preds.append(start <= ev.date_range.end)
        if ev.value is not None:
            v, r = t.value_as_number, ev.value
            if r.min is not None:
                preds.append(v > r.min if r.min_exclusive else v >= r.min)
            if r.max is not None:
                preds.append(v < r.max if r.max_exclusive else v <= r.max)
        if ev.units is not None:
            preds.append(t.unit_concept_id.isin(ev.units))
        if ev.abnormal is not None:
            abnormal = (
                t.value_as_concept_id.isin(ABNORMAL_VALUE_CONCEPTS)
                | (t.value_as_number < t.range_low)
                | (t.value_as_number > t.range_high)
            ).fill_null(False)
            preds.append(abnormal if ev.abnormal else ~abnormal)
        if ev.text is not None:
            preds.append(t.note_text.lower().contains(ev.text.lower()))
        if preds:
            t = t.filter(*preds)
        cols: dict[str, Any] = {"person_id": t.person_id}
        if keyed:
            row_id = t[dom.id] if dom.id is not None else t.person_id
            cols["event_key"] = row_id.cast("int64") + _DOMAIN_CODE[ev.domain] * _KEY_SPACE
        cols["start_date"] = t[dom.start]
        if keyed and self.end_dates:
            cols["end_date"] = t[dom.end].fill_null(t[dom.start]) if dom.end else t[dom.start]
        if self.visits:
            cols["visit_id"] = t[dom.visit] if dom.visit else ibis.null("int32")
        if not ev.first_occurrence:
            return t.select(**cols)
        order = [t[dom.start], t[dom.id] if dom.id is not None else t.person_id]
        first = ibis.row_number().over(group_by=t.person_id, order_by=order)
        out = t.select(**cols, _first=first)
        return out.filter(out._first == 0).drop("_first")

    def in_set(self, t: ir.Table, dom: DomainTable, name: str) -> ir.BooleanValue:
        rs = self.sets[name]
        preds = []
        if rs.standard:
            preds.append(t[dom.concept].isin(self.id_list(("standard", name), rs.standard)))
        if rs.source and dom.source_concept:
            preds.append(t[dom.source_concept].isin(self.id_list(("source", name), rs.source)))
        if not preds:
            return ibis.literal(False)
        out = preds[0]
        for p in preds[1:]:
            out = out | p
        return out

    # index events ------------------------------------------------------------------------

    def index_events(self) -> ir.Table:
        parts = [self.events(ev, keyed=True) for ev in self.d.entry.events]
        if len({p.schema() for p in parts}) > 1:  # e.g. visit_id NOT NULL in visit_occurrence only
            schema = ibis.schema({n: t.copy(nullable=True) for n, t in parts[0].schema().items()})
            parts = [p.select(**{n: p[n].cast(t) for n, t in schema.items()}) for p in parts]
        ev = parts[0]
        for p in parts[1:]:
            ev = ev.union(p, distinct=True)
        op = self.tables("observation_period")
        obs = self.d.observation
        joined = ev.join(
            op,
            [
                ev.person_id == op.person_id,
                _days(op.observation_period_start_date, obs.prior_days) <= ev.start_date,
                _days(ev.start_date, obs.post_days) <= op.observation_period_end_date,
            ],
        )
        columns = {name: ev[name] for name in ev.columns}
        if self.periods:
            columns["op_end"] = op.observation_period_end_date
        if self.needs_person():  # in the same join (a person is one row): one projection less
            person = self.tables("person")
            joined = joined.join(person, ev.person_id == person.person_id)
            columns |= {"gender_concept_id": person.gender_concept_id, "year_of_birth": person.year_of_birth}
        ev = joined.select(**columns)
        if self.excluded:
            ev = ev.filter(ev.person_id.notin(self.id_list(("excluded",), self.excluded)))
        if self.d.entry.occurrence == "first":
            first = ibis.row_number().over(group_by=ev.person_id, order_by=[ev.start_date, ev.event_key])
            ev = ev.filter(first == 0)
        if self.d.demographics is not None:
            ev = ev.filter(self.demographics(ev, self.d.demographics))
        return ev

    def needs_person(self) -> bool:
        """Sex or age is asked somewhere (the person table is joined only then)."""
        demos = [self.d.demographics] if self.d.demographics else []
        for rule in self.d.inclusion_rules:
            demos += [
                i.demographics for _, i in iter_items(rule.criteria) if isinstance(i, DemographicCriterion)
            ]
        return any(d.age is not None or d.sex is not None for d in demos)

    def demographics(self, ev: ir.Table, demo: Demographics) -> ir.BooleanValue:
        preds: list[ir.BooleanValue] = []
        if demo.age is not None:
            age = ev.start_date.year() - ev.year_of_birth
            if demo.age.min is not None:
                preds.append(age >= demo.age.min)
            if demo.age.max is not None:
                preds.append(age <= demo.age.max)
        if demo.sex is not None:
            codes = [SEX_CONCEPTS[s] for s in demo.sex if s in SEX_CONCEPTS]
            known = ev.gender_concept_id.isin(list(SEX_CONCEPTS.values()))
            pred = ev.gender_concept_id.isin(codes) if codes else ibis.literal(False)
            if "unknown" in demo.sex:
                pred = pred | ~known.fill_null(False)
            preds.append(pred)
        if demo.sites is not None:
            ps = self.tables("person_site")
            preds.append(ev.person_id.isin(ps.filter(ps.site.isin(demo.sites)).person_id.cast("int64")))
        if not preds:
            return ibis.literal(True)
        out = preds[0]
        for p in preds[1:]:
            out = out & p
        return out

    # inclusion rules -----------------------------------------------------------------------

    def criterion(self, idx: ir.Table, base: ir.Table, c: Criterion) -> ir.BooleanValue:
        """Whether each index event meets criterion ``c``: ``event_key IN (…)`` of the index
        events with enough matching events in the window (an uncorrelated subquery, which
        every engine runs once: a semi join in DuckDB and Spark, a hashed subplan in PostgreSQL)."""
        ev = self.events(c.event)
        preds = [base.person_id == ev.person_id]
        preds.extend(self.window(c.window, base.start_date, ev.start_date))
        if c.same_visit:
            preds.append(base.visit_id == ev.visit_id)
        j = base.join(ev, preds).select("event_key")
        n, kind = c.occurrences.count, c.occurrences.type

        def having(cond: Any) -> ir.Column:
            counted = j.group_by("event_key").aggregate(_n=j.count())
            return counted.filter(cond(counted._n)).event_key

        if kind == "at_least":
            met = idx.event_key.isin(j.event_key if n == 1 else having(lambda x: x >= n))
        elif kind == "at_most":
            met = ~idx.event_key.isin(having(lambda x: x > n))
        else:
            met = ~idx.event_key.isin(j.event_key) if n == 0 else idx.event_key.isin(having(lambda x: x == n))
        return ~met if c.negate else met

    @staticmethod
    def window(w: Window | None, index_date: ir.DateValue, event_date: ir.DateValue) -> list[ir.BooleanValue]:
        if w is None:
            return []
        preds = []
        lo, hi = w.start.offset(float("-inf")), w.end.offset(float("inf"))
        if lo != float("-inf"):
            preds.append(event_date >= _days(index_date, lo))
        if hi != float("inf"):
            preds.append(event_date <= _days(index_date, hi))
        return preds

    def compile(self) -> CompiledCohort:
        idx = self.index_events()
        # Each criterion: a count of matching events per index event, left-joined by key.
        criteria: list[tuple[Criterion, str]] = []

        def collect(group: Group) -> None:
            for item in group.items:
                if isinstance(item, Criterion):
                    criteria.append((item, f"c{len(criteria)}"))
                elif isinstance(item, Group):
                    collect(item)

        for rule in self.d.inclusion_rules:
            collect(rule.criteria)
        keys = ["person_id", "event_key", "start_date"] + (["visit_id"] if self.visits else [])
        base = idx if idx.columns == tuple(keys) else idx.select(*keys)
        met = iter([self.criterion(idx, base, c) for c, _ in criteria])
        flags: dict[str, ir.BooleanValue] = {}
        for k, rule in enumerate(self.d.inclusion_rules):
            flags[f"rule_{k}"] = self.group(idx, rule.criteria, met)
        return CompiledCohort(self.d, idx, flags, self.lists, self.list_keys, self.exit(flags))

    def exit(self, flags: dict[str, ir.BooleanValue]) -> Callable[[ir.Table], ir.Table]:
        """What builds the cohort periods from the index (refused when compiled for counts)."""

        def build(index: ir.Table) -> ir.Table:
            if not self.periods:
                raise ValueError("this cohort was compiled for counts only (periods=False)")
            return self.cohort(index, list(flags))

        return build

    def group(self, t: ir.Table, g: Group, met: Any) -> ir.BooleanValue:
        """The group's truth per index event; ``met`` yields each criterion's, in order."""
        values: list[ir.BooleanValue] = []
        for item in g.items:
            if isinstance(item, Criterion):
                values.append(next(met))
            elif isinstance(item, DemographicCriterion):
                v = self.demographics(t, item.demographics)
                values.append(~v if item.negate else v)
            else:
                values.append(self.group(t, item, met))
        if g.type == "all":
            out = values[0]
            for v in values[1:]:
                out = out & v
        elif g.type == "any":
            out = values[0]
            for v in values[1:]:
                out = out | v
        else:
            met = sum((v.ifelse(1, 0) for v in values[1:]), values[0].ifelse(1, 0))
            out = met >= g.count if g.type == "at_least" else met <= g.count
        return ~out if g.negate else out

    # exit --------------------------------------------------------------------------------

    def cohort(self, index: ir.Table, rules: list[str]) -> ir.Table:
        t = index
        for col in rules:
            t = t.filter(t[col])
        ex = self.d.exit
        if isinstance(ex, FixedOffset):
            base = t.start_date if ex.from_ == "start" else t.end_date
            end = ibis.least(_days(base, ex.days), t.op_end)
        elif isinstance(ex, DrugEraEnd):
            eras = self.drug_eras(ex)
            j = t.left_join(
                eras,
                [t.person_id == eras.person_id, eras.era_start <= t.start_date, t.start_date <= eras.era_end],
            )
            era_end = _days(j.era_end, ex.offset_days)
            t = j.select(*index.columns, era_end=era_end)
            end = ibis.least(t.era_end.fill_null(t.op_end), t.op_end)
        else:
            end = t.op_end
        return t.select(
            person_id=t.person_id,
            cohort_start_date=t.start_date,
            cohort_end_date=_as_date(ibis.greatest(end, t.start_date)),
        ).distinct()

    def drug_eras(self, ex: DrugEraEnd) -> ir.Table:
        """Exposures of the set merged into eras when less than gap_days apart (per person)."""
        dom = DOMAINS["drug"]
        d = self.tables(dom.table)
        d = d.filter(self.in_set(d, dom, ex.concept_set))
        exp = d.select(
            person_id=d.person_id.cast("int64"),
            s=d.drug_exposure_start_date,
            e=ibis.greatest(
                d.drug_exposure_end_date.fill_null(d.drug_exposure_start_date), d.drug_exposure_start_date
            ),
        )
        return merge_intervals(exp, "person_id", "s", "e", ex.gap_days).rename(era_start="s", era_end="e")


def merge_intervals(t: ir.Table, key: str, start: str, end: str, gap_days: int) -> ir.Table:
    """Gaps and islands: intervals of each ``key`` that overlap or lie within ``gap_days``
    of each other become one (start = first start, end = last end)."""
    w = ibis.window(group_by=t[key], order_by=[t[start], t[end]], rows=(None, -1))
    prev_end = t[end].max().over(w)
    new = (prev_end.isnull() | (t[start] > _days(prev_end, gap_days))).ifelse(1, 0)
    t = t.mutate(_new=new)
    upto = ibis.window(group_by=t[key], order_by=[t[start], t[end]], rows=(None, 0))
    t = t.mutate(_island=t._new.sum().over(upto))
    return (
        t.group_by([key, "_island"]).aggregate(**{start: t[start].min(), end: t[end].max()}).drop("_island")
    )


def compile_cohort(
    definition: CohortDefinition,
    concept_sets: dict[str, ResolvedSet],
    tables: TableGetter,
    excluded_persons: Iterable[int] = (),
    *,
    periods: bool = True,
) -> CompiledCohort:
    """The definition as Ibis expressions over ``tables``; nothing runs until executed. With
    ``periods=False`` (counts and breakdowns only) the index events carry fewer columns, so
    compiling is faster, and ``cohort`` is refused."""
    return _Compiler(definition, concept_sets, tables, excluded_persons, periods).compile()
