"""Plausibility limits: what a value can be, not what is normal.

Limits are physiological or administrative bounds (a heart rate of 400/min, a sodium of
20 mmol/L, a birth in 1700 are errors, not patients); reference ranges ("abnormal") are
the laboratory's business. Measurement concepts are keyed by their OMOP concept_id
(stable across Athena releases), with the LOINC code for the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

# Event dates before this are data errors in a hospital EHR export.
EARLIEST_DATE = "1900-01-01"
EARLIEST_BIRTH = "1850-01-01"

# (table, column) -> (low, high); None = no bound. Dates are handled generically.
FIELD_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("person", "year_of_birth"): (1850, None),  # high bound: the current year (see checks)
    ("person", "month_of_birth"): (1, 12),
    ("person", "day_of_birth"): (1, 31),
    ("drug_exposure", "quantity"): (0.0000001, None),
    ("drug_exposure", "days_supply"): (1, 365 * 3),
    ("drug_exposure", "refills"): (0, 24),
}

# UCUM unit concept ids.
PERCENT, PER_MIN, CELSIUS, KG, CM, KG_M2 = 8554, 8541, 586323, 9529, 8582, 9531
MMHG, MG_DL, G_DL, MG_L, MMOL_L, UMOL_L, THOUSAND_PER_UL = 8876, 8840, 8713, 8751, 8753, 8749, 8848


@dataclass(frozen=True)
class PlausibleMeasurement:
    concept_id: int
    loinc: str
    name: str
    units: dict[int, tuple[float, float]]  # unit_concept_id -> (low, high)


MEASUREMENTS: tuple[PlausibleMeasurement, ...] = (
    PlausibleMeasurement(3004249, "8480-6", "Systolic blood pressure", {MMHG: (20, 300)}),
    PlausibleMeasurement(3012888, "8462-4", "Diastolic blood pressure", {MMHG: (10, 200)}),
    PlausibleMeasurement(3027018, "8867-4", "Heart rate", {PER_MIN: (10, 300)}),
    PlausibleMeasurement(3024171, "9279-1", "Respiratory rate", {PER_MIN: (2, 80)}),
    PlausibleMeasurement(3020891, "8310-5", "Body temperature", {CELSIUS: (25, 45)}),
    PlausibleMeasurement(3025315, "29463-7", "Body weight", {KG: (0.2, 650)}),
    PlausibleMeasurement(3036277, "8302-2", "Body height", {CM: (20, 275)}),
    PlausibleMeasurement(3038553, "39156-5", "Body mass index", {KG_M2: (7, 150)}),
    PlausibleMeasurement(40762499, "59408-5", "Oxygen saturation (pulse oximetry)", {PERCENT: (40, 100)}),
    PlausibleMeasurement(3004501, "2345-7", "Glucose", {MG_DL: (10, 2000), MMOL_L: (0.5, 110)}),
    PlausibleMeasurement(3004410, "4548-4", "Hemoglobin A1c", {PERCENT: (2, 25)}),
    PlausibleMeasurement(3016723, "2160-0", "Creatinine", {MG_DL: (0.05, 30), UMOL_L: (5, 2650)}),
    PlausibleMeasurement(3000963, "718-7", "Hemoglobin", {G_DL: (1, 25)}),
    PlausibleMeasurement(3000905, "6690-2", "Leukocytes", {THOUSAND_PER_UL: (0, 500)}),
    PlausibleMeasurement(3024929, "777-3", "Platelets", {THOUSAND_PER_UL: (1, 3000)}),
    PlausibleMeasurement(3023103, "2823-3", "Potassium", {MMOL_L: (1, 12)}),
    PlausibleMeasurement(3019550, "2951-2", "Sodium", {MMOL_L: (90, 200)}),
    PlausibleMeasurement(3027114, "2093-3", "Cholesterol", {MG_DL: (20, 1000), MMOL_L: (0.5, 26)}),
    PlausibleMeasurement(3020460, "1988-5", "C reactive protein", {MG_L: (0, 1000)}),
)
