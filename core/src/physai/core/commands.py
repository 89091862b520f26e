"""What every `physai` command group shares: one-line errors and the settings of the run.

Kept apart from `physai.core.cli` (which discovers and mounts the domain groups) so that a
group can import it without importing the whole command tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from physai.core.errors import PhysaiError
from physai.core.settings import Settings, load_settings

# True in a `physai` console-script process (it exits after one command); False when the app
# is invoked in-process (tests, notebooks). Commands may then trade process-wide state for speed.
STANDALONE_PROCESS = False


class PhysaiGroup(TyperGroup):
    """A command group that prints a PhysaiError as `error: <one line>` and exits with its code.

    User errors exit with 2, failures after accepted input (a job failed, storage went away)
    with 1; other exceptions are bugs and keep their traceback.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PhysaiError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None


@dataclass
class CliState:
    """What the root callback parsed; settings are built on first use."""

    overrides: dict[str, Any] = field(default_factory=dict)
    config: Path | None = None
    _settings: Settings | None = None

    def settings(self) -> Settings:
        """The settings of this run (global options applied), loaded once."""
        if self._settings is None:
            self._settings = load_settings(self.config, **self.overrides)
        return self._settings


def get_settings(ctx: typer.Context) -> Settings:
    """The settings for the running command (global options applied); usable in any sub-app."""
    state = ctx.find_object(CliState)
    return state.settings() if state else load_settings()
