"""The `physai data-management` command group."""

from __future__ import annotations

import typer

from physai.core.cli import domain_app, get_settings

app = domain_app(
    "data-management",
    help="The LeRobot dataset library, validation, quality scores, labels and zero-copy curation.",
)


@app.command("validate")
def validate(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="Dataset path or storage URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    no_decode: bool = typer.Option(False, "--no-decode", help="Skip decoding video frames."),
    report_file: str | None = typer.Option(
        None, "--report", help="Also write the JSON report to this path or URL (atomically)."
    ),
    tolerance_s: float | None = typer.Option(
        None, "--tolerance-s", help="Timestamp tolerance in seconds (default 1e-4)."
    ),
) -> None:
    """Validate a LeRobot dataset: exit 0 when valid, 1 on errors, 2 on unusable input.

    Example: physai data-management validate az://datasets/pick/v3 --json
    """
    from physai.core.storage import write_text
    from physai.data_management.validate import issue_rows, report_json, validate_dataset

    settings = get_settings(ctx)
    report = validate_dataset(
        dataset, settings=settings, decode_videos=not no_decode, tolerance_s=tolerance_s
    )
    text = report_json(report)
    if report_file:
        write_text(report_file, text + "\n", settings)
    if as_json:
        typer.echo(text)
    else:
        if report.issues:
            from rich.console import Console
            from rich.markup import escape
            from rich.table import Table

            table = Table("check", "severity", "episode", "message")
            for row in issue_rows(report.issues):
                table.add_row(*(escape(cell) for cell in row))
            Console().print(table)
        typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)
