"""The tamper-evident audit log: hash chain, signed checkpoints, FHIR and ECS renderings."""

from hdhub.audit.log import AuditLog
from hdhub.audit.verify import VerifyReport

__all__ = ["AuditLog", "VerifyReport"]
