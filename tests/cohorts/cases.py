# ruff: noqa: E501  (hand-written SQL reads best on long lines)
"""Cohort definitions with the same logic written by hand as SQL (DuckDB), for two warehouses.

``SAMPLE``: OHDSI's Eunomia Synthea27Nj (../shared/data/omop-synthea27nj), with
concept_ancestor derived from its 'Is a' relationships. ``POPULATION``: ``hdhub synth``
loaded through the FHIR ingest (three sites, French notes, lab reference ranges), with one
vocabulary update (a 'Maps to' for a source concept the data carries).

Each case: a definition, the hand-written SQL giving its persons (one column, one row),
and optionally SQL giving the cohort rows (person_id, start, end) to check the exit.
Together they use every construct of the format; tests/cohorts/test_counts.py checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    definition: dict[str, Any]
    persons_sql: str
    rows_sql: str | None = None
    attrition_sql: tuple[str, ...] = ()  # persons after each rule in turn


def in_op(alias: str, date: str, prior: int = 0, post: int = 0) -> str:
    """The event lies in one of the person's observation periods, with prior/post days."""
    return (
        f"EXISTS (SELECT 1 FROM observation_period op WHERE op.person_id = {alias}.person_id "
        f"AND op.observation_period_start_date + INTERVAL {prior} DAY <= {alias}.{date} "
        f"AND {alias}.{date} + INTERVAL {post} DAY <= op.observation_period_end_date)"
    )


def cs(
    *ids: int, descendants: bool = False, mapped: bool = False, exclude: bool = False
) -> list[dict[str, Any]]:
    return [{"concept_id": i, "descendants": descendants, "mapped": mapped, "exclude": exclude} for i in ids]


SINUSITIS, HYPERTENSION, PHARYNGITIS, STREP = 4283893, 320128, 4112343, 28060
HGB, SBP = 3000963, 3004249
ACET_325, IBU_200, HCTZ, AMOX_500 = 1127433, 19078461, 19078106, 19073188
SMOKING = 43054909
MED_RECON, SUBST, ANXIETY, NEEDS, AUDIT_C = 4326177, 762506, 46272472, 46272459, 35621997
INPATIENT, OUTPATIENT, EMERGENCY = 9201, 9202, 9203
DESC_SINUSITIS = (
    f"(SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id = {SINUSITIS})"
)

SAMPLE: list[Case] = [
    Case(
        "descendants, first occurrence",
        {
            "concept_sets": {"sinusitis": {"items": cs(SINUSITIS, descendants=True)}},
            "entry": {"events": [{"domain": "condition", "concept_set": "sinusitis"}]},
        },
        f"SELECT count(DISTINCT person_id) FROM condition_occurrence c WHERE condition_concept_id IN {DESC_SINUSITIS} "
        f"AND {in_op('c', 'condition_start_date')}",
    ),
    Case(
        "measurement value, unit, date range; age and sex at every occurrence",
        {
            "concept_sets": {"hgb": {"items": cs(HGB)}},
            "entry": {
                "events": [
                    {
                        "domain": "measurement",
                        "concept_set": "hgb",
                        "value": {"min": 12, "max": 16},
                        "units": [8713],
                        "date_range": {"start": "2010-01-01", "end": "2020-12-31"},
                    }
                ],
                "occurrence": "all",
            },
            "demographics": {"age": {"min": 18, "max": 64}, "sex": ["female"]},
        },
        f"SELECT count(DISTINCT m.person_id) FROM measurement m JOIN person p USING (person_id) "
        f"WHERE measurement_concept_id = {HGB} AND value_as_number BETWEEN 12 AND 16 AND unit_concept_id = 8713 "
        "AND measurement_date BETWEEN DATE '2010-01-01' AND DATE '2020-12-31' "
        "AND year(measurement_date) - p.year_of_birth BETWEEN 18 AND 64 AND p.gender_concept_id = 8532 "
        f"AND {in_op('m', 'measurement_date')}",
    ),
    Case(
        "included concept set, first event after 365 days of observation, age at that event",
        {
            "concept_sets": {
                "analgesics": {"items": cs(ACET_325), "include": ["nsaid"]},
                "nsaid": {"items": cs(IBU_200)},
            },
            "entry": {"events": [{"domain": "drug", "concept_set": "analgesics"}], "occurrence": "first"},
            "observation": {"prior_days": 365},
            "demographics": {"age": {"max": 17}},
        },
        "WITH e AS (SELECT d.person_id, d.drug_exposure_start_date AS s, row_number() OVER "
        "(PARTITION BY d.person_id ORDER BY d.drug_exposure_start_date, d.drug_exposure_id) AS k "
        f"FROM drug_exposure d WHERE drug_concept_id IN ({ACET_325}, {IBU_200}) "
        f"AND {in_op('d', 'drug_exposure_start_date', prior=365)}) "
        "SELECT count(*) FROM e JOIN person p USING (person_id) WHERE k = 1 AND year(s) - p.year_of_birth <= 17",
    ),
    Case(
        "occurrence count in a window before and after",
        {
            "concept_sets": {"htn": {"items": cs(HYPERTENSION)}, "sbp": {"items": cs(SBP)}},
            "entry": {"events": [{"domain": "condition", "concept_set": "htn"}], "occurrence": "all"},
            "inclusion_rules": [
                {
                    "name": "two systolic readings >= 120 within a year before or after",
                    "criteria": {
                        "items": [
                            {
                                "event": {
                                    "domain": "measurement",
                                    "concept_set": "sbp",
                                    "value": {"min": 120},
                                },
                                "window": {
                                    "start": {"days": 365},
                                    "end": {"days": 365, "direction": "after"},
                                },
                                "occurrences": {"type": "at_least", "count": 2},
                            }
                        ]
                    },
                }
            ],
        },
        f"SELECT count(DISTINCT c.person_id) FROM condition_occurrence c WHERE condition_concept_id = {HYPERTENSION} "
        f"AND {in_op('c', 'condition_start_date')} AND (SELECT count(*) FROM measurement m "
        f"WHERE m.person_id = c.person_id AND measurement_concept_id = {SBP} AND value_as_number >= 120 "
        "AND m.measurement_date BETWEEN c.condition_start_date - INTERVAL 365 DAY "
        "AND c.condition_start_date + INTERVAL 365 DAY) >= 2",
    ),
    Case(
        "nested ANY within ALL, same visit, negated criterion; attrition",
        {
            "concept_sets": {
                "sinusitis": {"items": cs(SINUSITIS, descendants=True)},
                "recon": {"items": cs(MED_RECON)},
                "acet": {"items": cs(ACET_325)},
            },
            "entry": {"events": [{"domain": "visit"}], "occurrence": "all"},
            "inclusion_rules": [
                {
                    "name": "sinusitis or reconciliation in the visit",
                    "criteria": {
                        "type": "all",
                        "items": [
                            {
                                "type": "any",
                                "items": [
                                    {
                                        "event": {"domain": "condition", "concept_set": "sinusitis"},
                                        "same_visit": True,
                                    },
                                    {
                                        "event": {"domain": "procedure", "concept_set": "recon"},
                                        "same_visit": True,
                                    },
                                ],
                            }
                        ],
                    },
                },
                {
                    "name": "no acetaminophen in the 30 days after",
                    "criteria": {
                        "items": [
                            {
                                "event": {"domain": "drug", "concept_set": "acet"},
                                "window": {
                                    "start": {"days": 0, "direction": "after"},
                                    "end": {"days": 30, "direction": "after"},
                                },
                                "negate": True,
                            }
                        ]
                    },
                },
            ],
        },
        "SELECT count(DISTINCT v.person_id) FROM visit_occurrence v WHERE "
        f"{in_op('v', 'visit_start_date')} AND ("
        "EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = v.person_id "
        f"AND c.visit_occurrence_id = v.visit_occurrence_id AND c.condition_concept_id IN {DESC_SINUSITIS}) OR "
        "EXISTS (SELECT 1 FROM procedure_occurrence p WHERE p.person_id = v.person_id "
        f"AND p.visit_occurrence_id = v.visit_occurrence_id AND p.procedure_concept_id = {MED_RECON})) "
        "AND NOT EXISTS (SELECT 1 FROM drug_exposure d WHERE d.person_id = v.person_id "
        f"AND d.drug_concept_id = {ACET_325} AND d.drug_exposure_start_date BETWEEN v.visit_start_date "
        "AND v.visit_start_date + INTERVAL 30 DAY)",
        attrition_sql=(
            "SELECT count(DISTINCT v.person_id) FROM visit_occurrence v WHERE "
            f"{in_op('v', 'visit_start_date')} AND ("
            "EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = v.person_id "
            f"AND c.visit_occurrence_id = v.visit_occurrence_id AND c.condition_concept_id IN {DESC_SINUSITIS}) OR "
            "EXISTS (SELECT 1 FROM procedure_occurrence p WHERE p.person_id = v.person_id "
            f"AND p.visit_occurrence_id = v.visit_occurrence_id AND p.procedure_concept_id = {MED_RECON}))",
        ),
    ),
    Case(
        "AT_LEAST 2 of 3 criteria, first emergency visit",
        {
            "concept_sets": {
                "er": {"items": cs(EMERGENCY)},
                "htn": {"items": cs(HYPERTENSION)},
                "hctz": {"items": cs(HCTZ)},
                "sbp": {"items": cs(SBP)},
            },
            "entry": {"events": [{"domain": "visit", "concept_set": "er"}]},
            "inclusion_rules": [
                {
                    "name": "two of: hypertension before, HCTZ ever, high systolic in the year before",
                    "criteria": {
                        "type": "at_least",
                        "count": 2,
                        "items": [
                            {
                                "event": {"domain": "condition", "concept_set": "htn"},
                                "window": {"end": {"days": 0, "direction": "after"}},
                            },
                            {"event": {"domain": "drug", "concept_set": "hctz"}},
                            {
                                "event": {
                                    "domain": "measurement",
                                    "concept_set": "sbp",
                                    "value": {"min": 130},
                                },
                                "window": {"start": {"days": 365}, "end": {"days": 0, "direction": "after"}},
                            },
                        ],
                    },
                }
            ],
        },
        "WITH e AS (SELECT v.person_id, v.visit_start_date AS s, row_number() OVER (PARTITION BY v.person_id "
        "ORDER BY v.visit_start_date, v.visit_occurrence_id) AS k FROM visit_occurrence v "
        f"WHERE visit_concept_id = {EMERGENCY} AND {in_op('v', 'visit_start_date')}) "
        "SELECT count(*) FROM e WHERE k = 1 AND "
        "(EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = e.person_id "
        f"AND c.condition_concept_id = {HYPERTENSION} AND c.condition_start_date <= e.s))::INT + "
        "(EXISTS (SELECT 1 FROM drug_exposure d WHERE d.person_id = e.person_id "
        f"AND d.drug_concept_id = {HCTZ}))::INT + "
        "(EXISTS (SELECT 1 FROM measurement m WHERE m.person_id = e.person_id "
        f"AND m.measurement_concept_id = {SBP} AND m.value_as_number >= 130 "
        "AND m.measurement_date BETWEEN e.s - INTERVAL 365 DAY AND e.s))::INT >= 2",
    ),
    Case(
        "exactly n occurrences, AT_MOST 0 group",
        {
            "concept_sets": {
                "pharyngitis": {"items": cs(PHARYNGITIS)},
                "strep": {"items": cs(STREP)},
                "amox": {"items": cs(AMOX_500)},
            },
            "entry": {"events": [{"domain": "condition", "concept_set": "pharyngitis"}], "occurrence": "all"},
            "inclusion_rules": [
                {
                    "name": "exactly one strep throat ever",
                    "criteria": {
                        "items": [
                            {
                                "event": {"domain": "condition", "concept_set": "strep"},
                                "occurrences": {"type": "exactly", "count": 1},
                            }
                        ]
                    },
                },
                {
                    "name": "no amoxicillin within 7 days after",
                    "criteria": {
                        "type": "at_most",
                        "count": 0,
                        "items": [
                            {
                                "event": {"domain": "drug", "concept_set": "amox"},
                                "window": {
                                    "start": {"days": 0, "direction": "after"},
                                    "end": {"days": 7, "direction": "after"},
                                },
                            }
                        ],
                    },
                },
            ],
        },
        "SELECT count(DISTINCT c.person_id) FROM condition_occurrence c "
        f"WHERE c.condition_concept_id = {PHARYNGITIS} AND {in_op('c', 'condition_start_date')} "
        "AND (SELECT count(*) FROM condition_occurrence s WHERE s.person_id = c.person_id "
        f"AND s.condition_concept_id = {STREP}) = 1 "
        "AND NOT EXISTS (SELECT 1 FROM drug_exposure d WHERE d.person_id = c.person_id "
        f"AND d.drug_concept_id = {AMOX_500} AND d.drug_exposure_start_date BETWEEN c.condition_start_date "
        "AND c.condition_start_date + INTERVAL 7 DAY)",
    ),
    Case(
        "observation, the person's first ever, age, observation after",
        {
            "concept_sets": {"smoking": {"items": cs(SMOKING)}},
            "entry": {
                "events": [{"domain": "observation", "concept_set": "smoking", "first_occurrence": True}],
                "occurrence": "all",
            },
            "observation": {"post_days": 365},
            "demographics": {"age": {"min": 30}},
        },
        "WITH f AS (SELECT o.person_id, o.observation_date AS observation_date, row_number() OVER "
        "(PARTITION BY o.person_id ORDER BY o.observation_date, o.observation_id) AS k FROM observation o "
        f"WHERE observation_concept_id = {SMOKING}) "
        "SELECT count(DISTINCT f.person_id) FROM f JOIN person p USING (person_id) WHERE k = 1 "
        f"AND {in_op('f', 'observation_date', post=365)} AND year(f.observation_date) - p.year_of_birth >= 30",
    ),
    Case(
        "excluded concept, date range; a negated demographic in a group",
        {
            "concept_sets": {
                "assessments": {
                    "items": [
                        *cs(SUBST, ANXIETY, NEEDS, AUDIT_C),
                        *cs(NEEDS, exclude=True),
                    ]
                }
            },
            "entry": {
                "events": [
                    {
                        "domain": "procedure",
                        "concept_set": "assessments",
                        "date_range": {"start": "2015-01-01"},
                    }
                ],
                "occurrence": "all",
            },
            "inclusion_rules": [
                {
                    "name": "not a man",
                    "criteria": {"items": [{"demographics": {"sex": ["male"]}, "negate": True}]},
                }
            ],
        },
        "SELECT count(DISTINCT pr.person_id) FROM procedure_occurrence pr JOIN person p USING (person_id) "
        f"WHERE procedure_concept_id IN ({SUBST}, {ANXIETY}, {AUDIT_C}) AND procedure_date >= DATE '2015-01-01' "
        f"AND {in_op('pr', 'procedure_date')} AND p.gender_concept_id <> 8507",
    ),
    Case(
        "death or device as entry; a condition in the year before",
        {
            "entry": {"events": [{"domain": "death"}, {"domain": "device"}], "occurrence": "all"},
            "inclusion_rules": [
                {
                    "name": "any condition within the year before",
                    "criteria": {
                        "items": [
                            {
                                "event": {"domain": "condition"},
                                "window": {"start": {"days": 365}, "end": {"days": 0, "direction": "after"}},
                            }
                        ]
                    },
                }
            ],
        },
        "WITH e AS (SELECT person_id, death_date AS s FROM death UNION ALL "
        "SELECT person_id, device_exposure_start_date FROM device_exposure) "
        f"SELECT count(DISTINCT e.person_id) FROM e WHERE {in_op('e', 's')} AND EXISTS (SELECT 1 "
        "FROM condition_occurrence c WHERE c.person_id = e.person_id "
        "AND c.condition_start_date BETWEEN e.s - INTERVAL 365 DAY AND e.s)",
    ),
    Case(
        "exit: fixed offset from the start, capped by the observation period",
        {
            "concept_sets": {"sinusitis": {"items": cs(SINUSITIS, descendants=True)}},
            "entry": {"events": [{"domain": "condition", "concept_set": "sinusitis"}], "occurrence": "all"},
            "exit": {"type": "fixed_offset", "days": 30, "from": "start"},
        },
        f"SELECT count(DISTINCT person_id) FROM condition_occurrence c WHERE condition_concept_id IN {DESC_SINUSITIS} "
        f"AND {in_op('c', 'condition_start_date')}",
        rows_sql="SELECT DISTINCT c.person_id, c.condition_start_date, "
        "least(c.condition_start_date + INTERVAL 30 DAY, op.observation_period_end_date)::DATE "
        "FROM condition_occurrence c JOIN observation_period op ON op.person_id = c.person_id "
        "AND c.condition_start_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date "
        f"WHERE condition_concept_id IN {DESC_SINUSITIS}",
    ),
    Case(
        "exit: end of the drug era (30-day gaps) plus 7 days",
        {
            "concept_sets": {"hctz": {"items": cs(HCTZ)}},
            "entry": {"events": [{"domain": "drug", "concept_set": "hctz"}], "occurrence": "all"},
            "exit": {"type": "drug_era", "concept_set": "hctz", "gap_days": 30, "offset_days": 7},
        },
        f"SELECT count(DISTINCT person_id) FROM drug_exposure d WHERE drug_concept_id = {HCTZ} "
        f"AND {in_op('d', 'drug_exposure_start_date')}",
        rows_sql="WITH x AS (SELECT person_id, drug_exposure_start_date AS s, "
        "greatest(coalesce(drug_exposure_end_date, drug_exposure_start_date), drug_exposure_start_date) AS e "
        f"FROM drug_exposure WHERE drug_concept_id = {HCTZ}), "
        "y AS (SELECT *, max(e) OVER (PARTITION BY person_id ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING "
        "AND 1 PRECEDING) AS prev FROM x), "
        "z AS (SELECT *, sum(CASE WHEN prev IS NULL OR s > prev + INTERVAL 30 DAY THEN 1 ELSE 0 END) OVER "
        "(PARTITION BY person_id ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS island FROM y), "
        "eras AS (SELECT person_id, min(s) AS es, max(e) AS ee FROM z GROUP BY person_id, island) "
        "SELECT DISTINCT d.person_id, d.drug_exposure_start_date, "
        "greatest(least(coalesce(eras.ee + INTERVAL 7 DAY, op.observation_period_end_date), "
        "op.observation_period_end_date), d.drug_exposure_start_date)::DATE "
        "FROM drug_exposure d JOIN observation_period op ON op.person_id = d.person_id "
        "AND d.drug_exposure_start_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date "
        "LEFT JOIN eras ON eras.person_id = d.person_id AND d.drug_exposure_start_date BETWEEN eras.es AND eras.ee "
        f"WHERE d.drug_concept_id = {HCTZ}",
    ),
    Case(
        "exit: end of observation; AT_MOST 1 of 2 with a nested negated group",
        {
            "concept_sets": {"htn": {"items": cs(HYPERTENSION)}, "acet": {"items": cs(ACET_325)}},
            "entry": {"events": [{"domain": "visit", "concept_set": None}]},
            "inclusion_rules": [
                {
                    "name": "at most one of: hypertension ever, not (acetaminophen ever)",
                    "criteria": {
                        "type": "at_most",
                        "count": 1,
                        "items": [
                            {"event": {"domain": "condition", "concept_set": "htn"}},
                            {
                                "negate": True,
                                "items": [{"event": {"domain": "drug", "concept_set": "acet"}}],
                            },
                        ],
                    },
                }
            ],
            "exit": {"type": "end_of_observation"},
        },
        "WITH e AS (SELECT v.person_id, v.visit_start_date AS s, row_number() OVER (PARTITION BY v.person_id "
        f"ORDER BY v.visit_start_date, v.visit_occurrence_id) AS k FROM visit_occurrence v WHERE "
        f"{in_op('v', 'visit_start_date')}) SELECT count(*) FROM e WHERE k = 1 AND "
        "(EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = e.person_id "
        f"AND c.condition_concept_id = {HYPERTENSION}))::INT + "
        "(NOT EXISTS (SELECT 1 FROM drug_exposure d WHERE d.person_id = e.person_id "
        f"AND d.drug_concept_id = {ACET_325}))::INT <= 1",
        rows_sql="WITH e AS (SELECT v.person_id, v.visit_start_date AS s, row_number() OVER (PARTITION BY "
        "v.person_id ORDER BY v.visit_start_date, v.visit_occurrence_id) AS k FROM visit_occurrence v WHERE "
        f"{in_op('v', 'visit_start_date')}) SELECT e.person_id, e.s, op.observation_period_end_date FROM e "
        "JOIN observation_period op ON op.person_id = e.person_id AND e.s BETWEEN op.observation_period_start_date "
        "AND op.observation_period_end_date WHERE k = 1 AND "
        "(EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = e.person_id "
        f"AND c.condition_concept_id = {HYPERTENSION}))::INT + "
        "(NOT EXISTS (SELECT 1 FROM drug_exposure d WHERE d.person_id = e.person_id "
        f"AND d.drug_concept_id = {ACET_325}))::INT <= 1",
    ),
]

# --- the synthetic population (hdhub synth through the FHIR ingest) ---------------------

T2DM, PREDIABETES_SOURCE = 201826, 40316773
CRP, HBA1C = 3020460, 3004410

POPULATION: list[Case] = [
    Case(
        "note text at one site, women",
        {
            "entry": {"events": [{"domain": "note", "text": "URGENCES"}], "occurrence": "all"},
            "demographics": {"sites": ["chu-nord"], "sex": ["female"]},
        },
        "SELECT count(DISTINCT n.person_id) FROM note n JOIN person p USING (person_id) "
        f"WHERE lower(n.note_text) LIKE '%urgences%' AND {in_op('n', 'note_date')} AND p.gender_concept_id = 8532 "
        "AND n.person_id IN (SELECT person_id FROM person_site WHERE site = 'chu-nord')",
    ),
    Case(
        "mapped source concepts",
        {
            "concept_sets": {"diabetes": {"items": cs(T2DM, mapped=True)}},
            "entry": {"events": [{"domain": "condition", "concept_set": "diabetes"}]},
        },
        "SELECT count(DISTINCT c.person_id) FROM condition_occurrence c WHERE "
        f"(condition_concept_id = {T2DM} OR condition_source_concept_id = {PREDIABETES_SOURCE}) "
        f"AND {in_op('c', 'condition_start_date')}",
    ),
    Case(
        "abnormal lab value, then a normal one within ten years; sites and unknown sex as a criterion",
        {
            "concept_sets": {"crp": {"items": cs(CRP)}},
            "entry": {"events": [{"domain": "measurement", "concept_set": "crp", "abnormal": True}]},
            "inclusion_rules": [
                {
                    "name": "normal within ten years after",
                    "criteria": {
                        "items": [
                            {
                                "event": {"domain": "measurement", "concept_set": "crp", "abnormal": False},
                                "window": {
                                    "start": {"days": 1, "direction": "after"},
                                    "end": {"days": 3650, "direction": "after"},
                                },
                            }
                        ]
                    },
                },
                {
                    "name": "seen at ch-sud or clinique-est, or of unknown sex",
                    "criteria": {
                        "type": "any",
                        "items": [
                            {"demographics": {"sites": ["ch-sud", "clinique-est"]}},
                            {"demographics": {"sex": ["unknown"]}},
                        ],
                    },
                },
            ],
        },
        "WITH e AS (SELECT m.person_id, m.measurement_date AS s, row_number() OVER (PARTITION BY m.person_id "
        f"ORDER BY m.measurement_date, m.measurement_id) AS k FROM measurement m WHERE measurement_concept_id = {CRP} "
        "AND (value_as_number < range_low OR value_as_number > range_high "
        "OR value_as_concept_id IN (4155142, 4155143, 4155144, 4135493, 4267416)) "
        f"AND {in_op('m', 'measurement_date')}) SELECT count(*) FROM e WHERE k = 1 AND EXISTS (SELECT 1 "
        f"FROM measurement n WHERE n.person_id = e.person_id AND n.measurement_concept_id = {CRP} "
        "AND n.measurement_date BETWEEN e.s + INTERVAL 1 DAY AND e.s + INTERVAL 3650 DAY AND NOT coalesce("
        "n.value_as_number < n.range_low OR n.value_as_number > n.range_high "
        "OR n.value_as_concept_id IN (4155142, 4155143, 4155144, 4135493, 4267416), false)) "
        "AND (e.person_id IN (SELECT person_id FROM person_site WHERE site IN ('ch-sud', 'clinique-est')) "
        "OR e.person_id IN (SELECT person_id FROM person WHERE gender_concept_id NOT IN (8507, 8532)))",
    ),
]
