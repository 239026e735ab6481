"""Who is acting: the subject of every authorisation decision and audit event."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    kind: str  # user | token | oidc | cli | system | anonymous | device
    user_id: int | None = None
    source: str | None = None  # network address, or "cli:<host user>"
    projects: frozenset[str] = field(default=frozenset())
    # Set for a project token: it reads that project's workspace and nothing else.
    scope_project: str | None = None
    # Set for a patient's device (its own token): the device it is.
    device: str | None = None

    @classmethod
    def anonymous(cls, source: str | None = None) -> Principal:
        return cls(name="anonymous", roles=frozenset(), kind="anonymous", source=source)

    @classmethod
    def cli_operator(cls) -> Principal:
        """The person at the server's shell: they hold the secrets, so they act as admin.

        Their operating-system account is recorded in every audit event they cause.
        """
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(name=f"cli:{user}", roles=frozenset({"admin"}), kind="cli", source="local")

    @classmethod
    def system(cls, task: str) -> Principal:
        return cls(name=f"system:{task}", roles=frozenset({"admin"}), kind="system", source="local")
