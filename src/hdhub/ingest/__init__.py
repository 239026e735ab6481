"""Getting data into hdhub: OMOP CSV exports (FHIR, DICOM and devices later)."""
