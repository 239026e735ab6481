"""Two warehouses for the cohort tests, built once per session: the Eunomia sample and a
synthetic population loaded through `hdhub synth` and the FHIR ingest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hdhub.ingest.omop_csv import load_omop_csv
from hdhub.warehouse import connect
from hdhub.warehouse.ancestors import build_concept_ancestor
from tests.conftest import build_population

POPULATION_PATIENTS = 300


@pytest.fixture(scope="session")
def sample_warehouse(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Synthea27Nj with concept_ancestor derived from its 'Is a' relationships."""
    con = connect(f"duckdb:///{tmp_path_factory.mktemp('sample')}/w.duckdb")
    load_omop_csv(con, shared_data / "omop-synthea27nj")
    assert build_concept_ancestor(con) > 0
    yield con
    con.disconnect()


@pytest.fixture(scope="session")
def population_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment holding `hdhub synth` (3 sites) loaded as a data team would load it."""
    home = build_population(tmp_path_factory.mktemp("population"), POPULATION_PATIENTS, seed=7)
    con = connect(f"duckdb:///{home}/warehouse.duckdb")
    # A vocabulary update: the prediabetes source concept the data carries now 'Maps to' T2DM.
    con.con.execute(
        "INSERT INTO concept_relationship VALUES (40316773, 201826, 'Maps to', DATE '2024-01-01', "
        "DATE '2099-12-31', NULL)"
    )
    con.disconnect()
    return home


@pytest.fixture(scope="session")
def population_warehouse(population_home: Path) -> Iterator[Any]:
    con = connect(f"duckdb:///{population_home}/warehouse.duckdb")
    yield con
    con.disconnect()
