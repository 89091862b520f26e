"""The `physai data-management` command group."""

from __future__ import annotations

from typing import Any

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


@app.command("curate")
def curate_command(
    ctx: typer.Context,
    sources: list[str] = typer.Argument(
        ..., help="Source dataset paths or URLs (several: their episodes are merged)."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Output dataset path or URL (new)."),
    episodes: str | None = typer.Option(
        None, "--episodes", help="Keep these episode ids: '0-9,12'; 'S:N' names source S."
    ),
    drop_episodes: str | None = typer.Option(
        None, "--drop-episodes", help="Delete these episode ids (same syntax)."
    ),
    tasks: list[str] = typer.Option([], "--task", help="Keep episodes with this task (repeat)."),
    outcomes: list[str] = typer.Option(
        [], "--outcome", help="Keep episodes labelled success, failure or partial (repeat)."
    ),
    where: str | None = typer.Option(
        None,
        "--where",
        help="Filter expression over episode fields, e.g. "
        '\'quality.idle_fraction < 0.3 and labels["operator"] == "ana"\'.',
    ),
    split: list[str] = typer.Option(
        [],
        "--split",
        help="NAME=FRACTION (0.8), NAME=IDS (0-9) or NAME=rest; repeat; outputs <out>/<NAME>.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random split."),
    set_task: str | None = typer.Option(None, "--set-task", help="Give every episode this task."),
    rename_task: list[str] = typer.Option(
        [], "--rename-task", help="'OLD=>NEW': rename one task (repeat)."
    ),
    reencode: bool = typer.Option(
        False, "--reencode", help="Decode and encode the video again instead of copying it."
    ),
    codec: str | None = typer.Option(
        None, "--codec", help="Codec when re-encoding: av1 or h264 (default: the source's)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be written; write nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Filter, split, merge, delete and re-task episodes into a new LeRobot v3.0 dataset.

    Video is copied packet for packet (no re-encoding, frames identical to the source); the
    sources are never modified; outputs appear whole or not at all.

    Examples:

      physai data-management curate ds --out ds-ok --outcome success

      physai data-management curate ds --out ds-split --split train=0.8 --split val=0.2

      physai data-management curate a b --out merged --drop-episodes 1:0-4

      physai data-management curate ds --out ds2 --where 'length > 100' --set-task 'pick'
    """
    from physai.core import commands
    from physai.data_management.curation import Selection

    if commands.STANDALONE_PROCESS:
        from physai.data_management.lerobot.files import skip_pandas_in_pyarrow

        skip_pandas_in_pyarrow()
    settings = get_settings(ctx)
    selection = Selection(
        episodes=episodes,
        drop_episodes=drop_episodes,
        tasks=tasks,
        outcomes=outcomes,
        where=where,
    )
    renames = _renames(rename_task)
    if dry_run:
        _curate_plan(sources, selection, split, seed, settings, as_json)
        return
    from rich.progress import Progress

    from physai.data_management.curation import curate

    with Progress(transient=True, disable=as_json) as bar:
        task_id = bar.add_task("curating", total=None)
        report = curate(
            sources,
            out,
            selection=selection,
            split=split or None,
            seed=seed,
            set_task=set_task,
            rename_tasks=renames,
            reencode=reencode,
            video_codec=codec,
            overwrite=overwrite,
            settings=settings,
            progress=lambda _record: bar.advance(task_id),
            on_plan=lambda total: bar.update(task_id, total=total),
        )
    if as_json:
        typer.echo(report.model_dump_json(indent=1))
        return
    for output in report.outputs:
        typer.echo(
            f"{output.url}: {output.episodes} episodes, {output.frames} frames "
            f"(video copied for {output.copied_episodes}, re-encoded for "
            f"{output.reencoded_episodes})"
        )
    typer.echo(
        f"kept {report.selected_episodes} of {report.source_episodes} episodes "
        f"in {report.seconds:.2f} s"
    )


def _renames(items: list[str]) -> dict[str, str]:
    from physai.core.errors import UserError

    renames: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=>")
        if not sep or not old.strip() or not new.strip():
            raise UserError(f"bad --rename-task {item!r}: write 'OLD=>NEW'")
        renames[old.strip()] = new.strip()
    return renames


def _curate_plan(
    sources: list[str],
    selection: Any,
    split: list[str],
    seed: int,
    settings: Any,
    as_json: bool,
) -> None:
    import json

    from physai.data_management.curation import load_catalog
    from physai.data_management.curation.selection import assign_split, parse_split

    parts = parse_split(split) if split else None
    catalog = load_catalog(sources, settings)
    chosen = selection.apply(catalog.records, len(catalog.sources))
    groups = assign_split(chosen, parts, seed) if parts and chosen else {"": chosen}
    plan = {
        name or "output": [
            {"source": r.source, "episode_index": r.episode_index, "length": r.info.length}
            for r in records
        ]
        for name, records in groups.items()
    }
    if as_json:
        typer.echo(json.dumps(plan, indent=1))
        return
    for name, rows in plan.items():
        ids = ", ".join(
            f"{row['source']}:{row['episode_index']}"
            if len(sources) > 1
            else str(row["episode_index"])
            for row in rows
        )
        frames = sum(row["length"] for row in rows)
        typer.echo(f"{name}: {len(rows)} episodes, {frames} frames: {ids}")


@app.command("score")
def score_command(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="Dataset path or storage URL."),
    gripper_channel: int | None = typer.Option(
        None, "--gripper-channel", help="Index of the gripper channel in the action (e.g. -1)."
    ),
    no_store: bool = typer.Option(False, "--no-store", help="Print the scores; store nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
) -> None:
    """Score every episode (idle time, jerk, path length, gripper flips, duration outliers) and
    store the scores beside the dataset, where `curate --where 'quality.…'` finds them.

    Example: physai data-management score az://datasets/pick/v3 --gripper-channel -1
    """
    import json

    from physai.data_management.labels import score_dataset
    from physai.data_management.quality import QualitySettings

    scores = score_dataset(
        dataset,
        QualitySettings(gripper_channel=gripper_channel),
        get_settings(ctx),
        store=not no_store,
    )
    if as_json:
        typer.echo(json.dumps([q.model_dump(mode="json") for q in scores], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("episode", "frames", "duration s", "idle", "path", "rms jerk", "flips", "outlier")
    for q in scores:
        table.add_row(
            str(q.episode_index),
            str(q.num_frames),
            f"{q.duration_s:.2f}",
            f"{q.idle_fraction:.0%}",
            f"{q.path_length:.3g}",
            "-" if q.rms_jerk is None else f"{q.rms_jerk:.3g}",
            "-" if q.gripper_flips is None else str(q.gripper_flips),
            "yes" if q.duration_outlier else "",
        )
    Console().print(table)
    typer.echo(f"scored {len(scores)} episodes" + ("" if no_store else " (stored)"))


@app.command("label")
def label_command(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="Dataset path or storage URL."),
    episodes: str = typer.Option(..., "--episodes", help="Episode ids: '3', '0-9,12'."),
    outcome: str | None = typer.Option(None, "--outcome", help="success, failure or partial."),
    labels: list[str] = typer.Option([], "--label", help="KEY=VALUE (repeat); VALUE as JSON."),
    note: str | None = typer.Option(None, "--note", help="Add a free-text note."),
    instruction: list[str] = typer.Option(
        [], "--instruction", help="Set the language instructions (repeat)."
    ),
    author: str | None = typer.Option(None, "--author", help="Who labels (default: $USER)."),
) -> None:
    """Label episodes: outcome, custom labels, a note, language instructions.

    Every edit is its own file under <dataset>/annotations/, so people labelling the same
    dataset at once never lose an edit.

    Example: physai data-management label ds --episodes 0-4 --outcome success --label operator=ana
    """
    import json

    from physai.core.errors import UserError
    from physai.data_management.curation.selection import parse_episode_ids
    from physai.data_management.labels import Annotations

    ranges = parse_episode_ids(episodes)
    if any(r.source is not None for r in ranges):
        raise UserError("--episodes: 'S:N' names a source; label one dataset with plain ids")
    parsed: dict[str, Any] = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"bad --label {item!r}: write KEY=VALUE")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    if outcome is None and not parsed and note is None and not instruction:
        raise UserError("nothing to label: give --outcome, --label, --note or --instruction")
    settings = get_settings(ctx)
    from physai.core.storage import resolve
    from physai.data_management.lerobot import load_metadata

    known = {e.episode_index for e in load_metadata(resolve(dataset, settings)).episodes}
    chosen = sorted({i for r in ranges for i in range(r.first, r.last + 1)})
    missing = [i for i in chosen if i not in known]
    if missing:
        raise UserError(f"--episodes: the dataset has no episode {missing[0]}")
    notes = Annotations(dataset, settings, author=author)
    for episode in chosen:
        if outcome is not None:
            notes.set_outcome(episode, outcome)  # type: ignore[arg-type]
        for key, value in parsed.items():
            notes.set_label(episode, key, value)
        if note is not None:
            notes.add_note(episode, note)
        if instruction:
            notes.set_instructions(episode, instruction)
    typer.echo(f"labelled {len(chosen)} episodes of {dataset}")
