"""Tables beyond the OMOP CDM 5.4 specification, from OHDSI working-group extensions.

``image_occurrence``: the Medical Imaging CDM extension of the OHDSI Medical Imaging
Working Group (Park et al., J Digit Imaging 2024): one row per imaging series, linked to
the procedure that produced it. Written here from the published field list.

``person_site``: hdhub's own: which sites (the ``--site`` of each FHIR load) sent data
about a person. OMOP has no notion of a source site per person; cohorts select and break
down persons by it. A person merged from two hospitals (shared INS) has two rows.
"""

from __future__ import annotations

from hdhub.warehouse.spec import CdmColumn, CdmTable

EXTENSION_TABLES: dict[str, CdmTable] = {
    "image_occurrence": CdmTable(
        "image_occurrence",
        "CDM",
        "One imaging series (OHDSI Medical Imaging CDM extension), linked to its procedure.",
        (
            CdmColumn("image_occurrence_id", "integer", required=True, primary_key=True),
            CdmColumn("person_id", "integer", required=True, fk_table="person", fk_column="person_id"),
            CdmColumn(
                "procedure_occurrence_id",
                "integer",
                required=True,
                fk_table="procedure_occurrence",
                fk_column="procedure_occurrence_id",
            ),
            CdmColumn(
                "visit_occurrence_id",
                "integer",
                required=False,
                fk_table="visit_occurrence",
                fk_column="visit_occurrence_id",
            ),
            CdmColumn(
                "anatomic_site_concept_id",
                "integer",
                required=False,
                fk_table="concept",
                fk_column="concept_id",
            ),
            CdmColumn("wadors_uri", "varchar(max)", required=False),
            CdmColumn("local_path", "varchar(max)", required=False),
            CdmColumn("image_occurrence_date", "date", required=True),
            CdmColumn("image_study_uid", "varchar(250)", required=True),
            CdmColumn("image_series_uid", "varchar(250)", required=True),
            CdmColumn(
                "modality_concept_id", "integer", required=True, fk_table="concept", fk_column="concept_id"
            ),
        ),
    ),
    "person_site": CdmTable(
        "person_site",
        "CDM",
        "A site that sent data about the person (hdhub extension; one row per person and site).",
        (
            CdmColumn("person_id", "integer", required=True, fk_table="person", fk_column="person_id"),
            CdmColumn("site", "varchar(40)", required=True),
        ),
    ),
}
