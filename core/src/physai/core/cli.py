"""The `physai` command.

Each domain package registers its sub-app in the entry-point group `physai.cli`
(`data-pipeline = "physai.data_pipeline.cli:app"`), so `physai data-pipeline ...` appears as soon
as that package is installed. Global options (`--profile`, `--config`, `--verbose`) are read
here; commands get the resulting settings through `get_settings(ctx)`.

A `UserError` anywhere below prints `error: <one line>` on stderr and exits with code 2
(`physai.core.commands.PhysaiGroup`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from importlib.metadata import distributions, entry_points
from pathlib import Path
from typing import Any

import typer

from physai.core import commands
from physai.core.commands import CliState, PhysaiGroup, get_settings
from physai.core.contracts import Specification, find_specifications, specifications_dir
from physai.core.errors import UserError
from physai.core.logs import configure_logging, get_logger
from physai.core.settings import Settings

ENTRY_POINT_GROUP = "physai.cli"
log = get_logger(__name__)

__all__ = ["CliState", "PhysaiGroup", "app", "domain_app", "get_settings", "main"]


def domain_app(name: str, help: str) -> typer.Typer:
    """A domain's `physai <name>` sub-app, with a `specs` command listing its specifications."""
    sub = typer.Typer(name=name, help=help, cls=PhysaiGroup, no_args_is_help=True)
    package = "physai." + name.replace("-", "_")

    @sub.command("specs")
    def specs(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List this domain's specifications and their status.

        Example: physai NAME specs --json
        """
        _print_specs(find_specifications([specifications_dir(package)]), as_json)

    specs.__doc__ = (specs.__doc__ or "").replace("NAME", name)
    return sub


app = typer.Typer(
    name="physai",
    help="physai: carry a robot policy around the physical-AI loop.\n\n"
    "Examples:\n\n  physai info\n\n  physai --profile azure info --json\n\n"
    "  physai specs --domain training",
    cls=PhysaiGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    profile: str | None = typer.Option(None, "--profile", help="local (default) or azure."),
    config: Path | None = typer.Option(None, "--config", help="Settings file (physai.toml)."),
    home: Path | None = typer.Option(None, "--home", help="Local state directory."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v info, -vv debug."),
) -> None:
    configure_logging(("WARNING", "INFO", "DEBUG")[min(verbose, 2)])
    ctx.obj = CliState({"profile": profile, "home": home}, config)


@app.command()
def info(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show installed physai packages, the profile, tracking URI and storage root.

    Example: physai info --json
    """
    settings = get_settings(ctx)
    packages = installed_packages()
    report: dict[str, object] = {
        "packages": packages,
        "profile": settings.profile,
        "state_dir": str(settings.state_dir),
        "storage_root": _or_problem(lambda: settings.resolved_storage_root),
        "tracking_uri": _or_problem(lambda: _tracking_uri(settings)),
        "job_backend": settings.job_backend,
        "python": sys.version.split()[0],
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="physai", show_header=False)
    for key, value in report.items():
        if key != "packages":
            table.add_row(key, str(value))
    for name, version in packages.items():
        table.add_row(name, version)
    Console().print(table)


@app.command("specs")
def specs_command(
    domain: str | None = typer.Option(None, "--domain", help="Only this domain."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List every installed domain's specifications and their status.

    Example: physai specs --domain core --json
    """
    packages = {"core": "physai.core"} | {
        ep.name: ep.value.split(":")[0].rsplit(".", 1)[0]
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.value.startswith("physai.") and not ep.value.startswith("physai.core")
    }
    if domain is not None and domain not in packages:
        raise UserError(f"unknown domain {domain!r}: one of {', '.join(sorted(packages))}")
    chosen = [packages[domain]] if domain else list(packages.values())
    _print_specs(find_specifications(specifications_dir(p) for p in chosen), as_json)


def installed_packages() -> dict[str, str]:
    """Installed physai distributions and their versions."""
    found = {
        d.metadata["Name"]: d.version
        for d in distributions()
        if (d.metadata["Name"] or "").startswith("physai-")
    }
    return dict(sorted(found.items()))


def _tracking_uri(settings: Settings) -> str:
    from physai.core.tracking import tracking_uri

    return tracking_uri(settings)


def _or_problem(compute: Any) -> str:
    try:
        return str(compute())
    except UserError as exc:
        return f"(not configured: {exc.message})"


def _print_specs(specs: list[Specification], as_json: bool) -> None:
    rows = [
        {"id": s.front.id, "status": s.front.status, "title": s.title, "path": str(s.path)}
        for s in specs
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "status", "title")
    for row in rows:
        table.add_row(row["id"], row["status"], row["title"])
    Console().print(table)


def command_argv(ctx: typer.Context, skip: Collection[str] = ()) -> list[str]:
    """The options of the running command as an argv (defaults left out), to run the same
    command elsewhere, e.g. as a cloud job; parameters named in `skip` are left out."""
    argv: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name is None or name in skip or name not in ctx.params:
            continue
        value = ctx.params[name]
        if value is None or value == param.default or (param.multiple and not value):
            continue
        if getattr(param, "is_flag", False):
            flags = param.opts if value else getattr(param, "secondary_opts", [])
            argv += flags[:1]
        elif param.param_type_name == "argument":
            argv += [str(v) for v in value] if param.multiple else [str(value)]
        elif param.multiple:
            for item in value:
                argv += [param.opts[0], str(item)]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def _mount_domains(root: typer.Typer) -> None:
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            sub = ep.load()
        except Exception as exc:  # one broken package must not take the whole CLI down
            log.warning("physai %s is unavailable: %s", ep.name, exc)
            continue
        root.add_typer(sub, name=ep.name)


_mount_domains(app)


def main() -> None:
    """Console-script entry point."""
    commands.STANDALONE_PROCESS = True
    app()
