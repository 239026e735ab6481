"""Shared CLI plumbing: the open deployment, the acting principal, one-line errors."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import TyperException

from hdhub.errors import HdhubError
from hdhub.security.authz import Decision, authorize
from hdhub.security.principal import Principal

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error stays on one line


@dataclass
class CliState:
    home: Path | None = None
    debug: bool = False
    principal: Principal = field(default_factory=Principal.cli_operator)
    _hub: Any = None

    @property
    def hub(self) -> Any:
        """The deployment, opened on first use (checks config and secrets)."""
        if self._hub is None:
            from hdhub.hub import Hub

            self._hub = Hub.open(self.home)
        return self._hub

    def authorize(self, action: str) -> Decision:
        """Every CLI command goes through the one decision function."""
        return authorize(self.principal, action)

    def audit(self, action: str, decision: Decision | None = None, **fields: Any) -> int:
        """Append an audit event for what this command did."""
        return self.hub.audit.record(
            self.principal, action, role=decision.role if decision else None, **fields
        )

    def close(self) -> None:
        if self._hub is not None:
            self._hub.close()
            self._hub = None


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


class HdhubGroup(TyperGroup):
    """Turns any error into one line on stderr and a non-zero exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # help, usage errors and explicit exits keep their own handling
        except HdhubError as exc:
            err_console.print(f"[red]error:[/red] {exc.message}", highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            st = ctx.find_root().obj
            if isinstance(st, CliState) and st.debug:
                err_console.print(traceback.format_exc(), highlight=False, markup=False)
            err_console.print(
                f"[red]internal error:[/red] {type(exc).__name__}: {exc} (rerun with --debug for details)",
                highlight=False,
            )
            raise typer.Exit(70) from None
        finally:
            if ctx.parent is None and isinstance(ctx.obj, CliState):
                ctx.obj.close()


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        cls=HdhubGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
