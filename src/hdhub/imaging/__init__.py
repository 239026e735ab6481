"""The imaging archive: DICOM instances stored as received, indexed in the catalog."""
