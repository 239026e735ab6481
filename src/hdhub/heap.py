"""Garbage-collector settings for the long-running servers (API, DICOM SCP)."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Keep the objects alive after start-up out of the cyclic collector's full passes.

    A full collection walks every tracked object: about 130,000 once the API is imported,
    some 75 ms here, which showed as the p99 of QIDO-RS searches. Frozen (``gc.freeze``),
    those objects are skipped and a full pass walks only what requests create."""
    gc.collect()
    gc.freeze()
