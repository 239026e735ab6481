"""Per-project pseudonyms: unlinkable across projects, stable for one project."""

from __future__ import annotations

import collections

import pytest

from hdhub.errors import ValidationError
from hdhub.privacy.pseudonyms import ProjectPseudonyms

SECRET = bytes(range(32))
PERSONS = [f"{i:040x}" for i in range(20_000)]


def test_two_projects_cannot_link_and_reprovisioning_is_stable() -> None:
    a, b = ProjectPseudonyms(SECRET, "diabete-hba1c"), ProjectPseudonyms(SECRET, "asthme-enfants")
    ids_a = [a.person_id(p) for p in PERSONS]
    ids_b = [b.person_id(p) for p in PERSONS]
    assert not set(ids_a) & set(ids_b)  # the same patients, no shared id
    again = ProjectPseudonyms(SECRET, "diabete-hba1c")
    assert [again.person_id(p) for p in PERSONS] == ids_a  # re-provisioning: the same ids
    assert len(set(ids_a)) == len(PERSONS) and all(0 < i < 2**63 for i in ids_a)
    other_deployment = ProjectPseudonyms(bytes(32), "diabete-hba1c")
    assert other_deployment.person_id(PERSONS[0]) != ids_a[0]


def test_date_shifts_are_per_person_per_project_bounded_and_never_zero() -> None:
    a, b = (
        ProjectPseudonyms(SECRET, "p-one", max_shift_days=30),
        ProjectPseudonyms(SECRET, "p-two", max_shift_days=30),
    )
    shifts = [a.date_shift(p) for p in PERSONS]
    assert all(-30 <= s <= 30 and s != 0 for s in shifts)
    counts = collections.Counter(shifts)
    assert len(counts) == 60 and min(counts.values()) > len(PERSONS) / 60 * 0.7  # every value, evenly
    assert shifts == [ProjectPseudonyms(SECRET, "p-one", 30).date_shift(p) for p in PERSONS]
    assert sum(a.date_shift(p) == b.date_shift(p) for p in PERSONS) < len(PERSONS) * 0.05


def test_bad_parameters() -> None:
    with pytest.raises(ValidationError):
        ProjectPseudonyms(SECRET, "")
    with pytest.raises(ValidationError):
        ProjectPseudonyms(SECRET, "p", max_shift_days=0)
