"""The `physai data-pipeline` command group."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from physai.core.cli import domain_app, get_settings
from physai.core.errors import UserError

app = domain_app(
    "data-pipeline",
    help="ROS 2 episodic capture, bag to LeRobot conversion, and upload to storage.",
)


@app.command("inspect")
def inspect_command(
    bags: list[str] = typer.Argument(..., help="Bag files or rosbag2 folders."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    gap_factor: float = typer.Option(
        3.0, "--gap-factor", help="A step longer than this x the median step is a gap."
    ),
) -> None:
    """List each bag's topics: type, count, rate and gaps (nothing is decoded).

    Example: physai data-pipeline inspect bags/episode_000001 --json
    """
    from physai.data_pipeline.bags import find_bags, inspect_bag

    found = {str(path): inspect_bag(path, gap_factor) for path in find_bags(bags)}
    if as_json:
        typer.echo(json.dumps({k: [s.as_dict() for s in v] for k, v in found.items()}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for bag, summaries in found.items():
        table = Table("topic", "type", "count", "rate Hz", "max gap s", "gaps", title=bag)
        for s in summaries:
            table.add_row(
                s.topic,
                s.msgtype,
                str(s.count),
                "-" if s.rate_hz is None else f"{s.rate_hz:.1f}",
                "-" if s.max_gap_s is None else f"{s.max_gap_s:.3f}",
                str(s.gaps),
            )
        console.print(table)


@app.command("convert")
def convert_command(
    ctx: typer.Context,
    bags: list[str] = typer.Argument(..., help="Bag files, rosbag2 folders, or folders of them."),
    mapping_file: Path = typer.Option(..., "--mapping", help="Mapping YAML (topics to features)."),
    out: str = typer.Option(..., "--out", help="Dataset path or storage URL to publish."),
    task: str | None = typer.Option(None, "--task", help="Task text for every episode."),
    workers: int | None = typer.Option(None, "--workers", help="Parallel bags (default: cores)."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Where finished parts wait (a rerun reuses them)."
    ),
    keep_parts: bool = typer.Option(False, "--keep-parts", help="Keep parts after publishing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Convert ROS bags (MCAP, sqlite3, ROS 1) into one LeRobot v3.0 dataset.

    Each bag becomes an episode; streams are aligned to the mapping's fps. The dataset is
    published atomically; a rerun after a kill reuses the bags already converted.

    Example: physai data-pipeline convert bags/ --mapping arm.yaml --out datasets/pick/v1
    """
    from rich.progress import Progress

    from physai.data_pipeline.bags import find_bags
    from physai.data_pipeline.convert import convert_bags
    from physai.data_pipeline.mapping import load_mapping

    mapping = load_mapping(mapping_file)
    total = len(find_bags(bags))
    with Progress(transient=True, disable=as_json) as bar:
        progress = bar.add_task("converting bags", total=total)
        report = convert_bags(
            bags,
            mapping,
            out,
            task=task,
            workers=workers,
            work_dir=work_dir,
            keep_parts=keep_parts,
            overwrite=overwrite,
            settings=get_settings(ctx),
            progress=lambda _report: bar.advance(progress),
        )
    if as_json:
        typer.echo(report.model_dump_json(indent=1))
        return
    reused = sum(b.reused for b in report.bags)
    typer.echo(
        f"{report.out}: {report.episodes} episodes, {report.frames} frames from "
        f"{len(report.bags)} bags ({reused} reused from an earlier run)"
    )


@app.command("upload")
def upload_command(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(..., help="Bags, folders of bags, or LeRobot datasets."),
    dest: str = typer.Option(..., "--dest", help="Storage root URL (raw/ and datasets/ below)."),
    robot: str | None = typer.Option(
        None, "--robot", help="Robot id for bags whose episode.json names none."
    ),
    name: str | None = typer.Option(None, "--name", help="Dataset name (default: its folder)."),
    version: int | None = typer.Option(
        None, "--version", help="Dataset version N of datasets/<name>/vN (default: next free)."
    ),
    workers: int = typer.Option(4, "--workers", help="Files copied at the same time."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Upload raw bags to raw/<robot>/<date>/<episode>.mcap and datasets to datasets/<name>/vN/.

    Each file is sha256-hashed, streamed in chunks and checked; a rerun after a kill copies only
    what is missing. A dataset is published (commit marker) only when all its files are there.

    Examples:
      physai data-pipeline upload recordings/ --dest az://robot-data
      physai data-pipeline upload datasets/pick --dest az://robot-data --name pick --version 3
    """
    from physai.data_pipeline.upload import UploadReport, is_dataset, upload_bags, upload_dataset

    settings = get_settings(ctx)
    datasets = [p for p in paths if is_dataset(p)]
    bags = [p for p in paths if not is_dataset(p)]
    if (name is not None or version is not None) and len(datasets) != 1:
        raise UserError("--name and --version need exactly one dataset among the paths")
    items = []
    if bags:
        report = upload_bags(
            bags, dest, robot=robot, settings=settings, workers=workers, progress=not as_json
        )
        items.extend(report.items)
    for dataset in datasets:
        report = upload_dataset(
            dataset,
            dest,
            name=name,
            version=version,
            settings=settings,
            workers=workers,
            progress=not as_json,
        )
        items.extend(report.items)
    total = UploadReport(dest=report.dest, items=items)
    if as_json:
        typer.echo(total.model_dump_json(indent=1))
        return
    for item in total.items:
        state = "uploaded" if item.files_copied else "already there"
        typer.echo(f"{item.url}: {state} ({item.files_copied} copied, {item.bytes_copied} bytes)")


@app.command("config-schema")
def config_schema_command() -> None:
    """Print the JSON Schema of recording configs (for editors and validation).

    Example: physai data-pipeline config-schema > recording-config.schema.json
    """
    from physai.data_pipeline.config import recording_config_schema

    typer.echo(json.dumps(recording_config_schema(), indent=1))
