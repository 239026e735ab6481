"""FHIR R4 (Bulk Data NDJSON, Bundles) into the OMOP CDM 5.4 warehouse."""

from hdhub.ingest.fhir.load import FhirLoadReport, load_fhir

__all__ = ["FhirLoadReport", "load_fhir"]
