"""Synthetic multi-hospital population as FHIR R4 Bulk NDJSON (``hdhub synth``)."""

from hdhub.synth.generate import SynthReport, generate

__all__ = ["SynthReport", "generate"]
