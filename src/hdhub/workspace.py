"""The workspace client: ``hdhub.workspace.connect(project, token)`` (see hdhub.workspaces.client)."""

from hdhub.workspaces.client import Workspace, WorkspaceError, connect

__all__ = ["Workspace", "WorkspaceError", "connect"]
