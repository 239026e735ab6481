"""Per-project pseudonyms and date shifts for extractions into project workspaces.

Each project gets its own key, derived from the deployment's pseudonym secret with HKDF
(info = the project's slug): two projects cannot link their extracts, and provisioning the
same project again gives the same pseudonyms and the same shifts. A person is named by the
warehouse's keyed hash of the patient (``person_source_value``), stable across reloads.

- ``person_id``: 63 bits of HMAC-SHA-256 — a positive BIGINT (the OMOP DDL's 32-bit integer
  would make collisions likely beyond some 10,000 persons; at 63 bits a project of a million
  persons has about one chance in ten million of one, which provisioning checks).
- ``event_salt``: a project secret for the ids of events (visits, conditions, notes …),
  remapped in the warehouse engine itself as the first 63 bits of SHA-256(salt:id) — too
  many rows for HMAC in Python, and the salt never leaves the server;
- ``date_shift``: a whole number of days in [-max_days, +max_days], never 0, the same for all
  of a person's dates in the project, so intervals within a patient's record are kept.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hdhub.errors import ValidationError

DEFAULT_MAX_SHIFT_DAYS = 365


class ProjectPseudonyms:
    def __init__(self, secret: bytes, project: str, max_shift_days: int = DEFAULT_MAX_SHIFT_DAYS) -> None:
        if not project:
            raise ValidationError("a project is needed to derive its pseudonyms")
        if not 1 <= max_shift_days <= 3_650:
            raise ValidationError("max_shift_days: 1 to 3650")
        self.project = project
        self.max_shift_days = max_shift_days
        self._key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"hdhub-project-pseudonyms", info=project.encode()
        ).derive(secret)

    def _mac(self, purpose: str, person_key: str) -> bytes:
        return hmac.new(self._key, f"{purpose}|{person_key}".encode(), hashlib.sha256).digest()

    def person_id(self, person_key: str) -> int:
        """The person's id in this project's extract (1 … 2**63 - 1)."""
        return int.from_bytes(self._mac("person", person_key)[:8], "big") >> 1 or 1

    def event_salt(self) -> str:
        """A 64-hex-digit project secret keying the remapping of event ids."""
        return self._mac("event-ids", "").hex()

    def uid_key(self) -> bytes:
        """The project's key for remapping DICOM UIDs (hdhub.privacy.dicom_deid)."""
        return self._mac("dicom-uids", "")

    def date_shift(self, person_key: str) -> int:
        """Days added to every date of this person in this project's extract (never 0)."""
        span = 2 * self.max_shift_days
        k = int.from_bytes(self._mac("date-shift", person_key)[:8], "big") % span
        return k - self.max_shift_days if k < self.max_shift_days else k - self.max_shift_days + 1
