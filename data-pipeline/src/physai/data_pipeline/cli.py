"""The `physai data-pipeline` command group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    shard: str | None = typer.Option(
        None, "--shard", help="Convert only shard K/N: the bags at positions K, K+N, ... (0/4)."
    ),
) -> None:
    """Convert ROS bags (MCAP, sqlite3, ROS 1) into one LeRobot v3.0 dataset.

    Each bag becomes an episode; streams are aligned to the mapping's fps. The dataset is
    published atomically; a rerun after a kill reuses the bags already converted.

    Example: physai data-pipeline convert bags/ --mapping arm.yaml --out datasets/pick/v1
    """
    from rich.progress import Progress

    from physai.core import commands
    from physai.data_pipeline.bags import find_bags
    from physai.data_pipeline.convert import convert_bags, parse_shard, select_shard
    from physai.data_pipeline.mapping import load_mapping

    if commands.STANDALONE_PROCESS:  # a one-command process: skip pyarrow's pandas import
        from physai.data_management import skip_pandas_in_pyarrow

        skip_pandas_in_pyarrow()

    chosen = parse_shard(shard) if shard is not None else None
    mapping = load_mapping(mapping_file)
    total = len(select_shard(find_bags(bags), chosen))
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
            shard=chosen,
        )
    if as_json:
        typer.echo(report.model_dump_json(indent=1))
        return
    reused = sum(b.reused for b in report.bags)
    typer.echo(
        f"{report.out}: {report.episodes} episodes, {report.frames} frames from "
        f"{len(report.bags)} bags ({reused} reused from an earlier run)"
    )


@app.command("fan-out")
def fan_out_command(
    ctx: typer.Context,
    bags_url: str = typer.Argument(..., help="Folder of bags: a local path, az:// or Blob URL."),
    mapping: str = typer.Option(..., "--mapping", help="Mapping YAML: a path or storage URL."),
    out: str = typer.Option(..., "--out", help="Dataset path or storage URL of the merge."),
    shards: int = typer.Option(..., "--shards", help="Number of shard jobs (at most the bags)."),
    backend: str | None = typer.Option(
        None, "--backend", "-b", help="local | azureml | osmo (default: settings.job_backend)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the rendered spec; run nothing."),
    image: str | None = typer.Option(
        None, "--image", help="Container image with physai installed (azureml and osmo)."
    ),
    task: str | None = typer.Option(None, "--task", help="Task text for every episode."),
    workers: int | None = typer.Option(None, "--workers", help="Parallel bags in each shard."),
    shards_url: str | None = typer.Option(
        None, "--shards-url", help="Where shard datasets go (default: OUT-shards)."
    ),
    max_workers: int | None = typer.Option(None, "--max-workers", help="Local parallel jobs."),
    run_id: str | None = typer.Option(None, "--run-id", help="Local run id (default: new)."),
    pool: str | None = typer.Option(None, "--pool", help="OSMO pool (default: osmo_pool)."),
    keep_shards: bool = typer.Option(False, "--keep-shards", help="Local: keep shard datasets."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Local: replace an existing OUT."),
) -> None:
    """Convert many bags as one job per shard, then merge the shards into one dataset.

    Shard k of N converts the bags at positions k, k+N, ... (`convert --shard k/N`); a merge
    job (`physai data-management curate`) copies the shards into OUT. Runs locally in parallel
    processes, or submits an AzureML pipeline job or an OSMO workflow.

    Examples:
      physai data-pipeline fan-out bags/ --mapping arm.yaml --out datasets/pick/v1 --shards 4
      physai data-pipeline fan-out az://raw/pick --mapping az://cfg/arm.yaml \
        --out az://datasets/pick/v1 --shards 8 -b osmo --image acr.io/physai:0.1 --dry-run
    """
    from physai.core.jobs.backends import check_backend
    from physai.data_pipeline import fanout

    settings = get_settings(ctx)
    chosen = check_backend(backend or settings.job_backend)
    if chosen != "local" and not image:
        raise UserError(f"--image is needed for {chosen}: a container image with physai installed")
    dag = fanout.conversion_dag(
        bags_url,
        mapping,
        out,
        shards,
        task=task,
        image=image,
        shards_url=shards_url,
        workers=workers,
        executable=fanout.local_executable() if chosen == "local" else ("physai",),
    )
    if dry_run:
        typer.echo(fanout.render(dag, chosen, settings), nl=False)
        return
    if chosen != "local":
        typer.echo(fanout.submit(dag, chosen, settings, pool=pool))
        return
    summary = fanout.run_local(
        dag,
        settings,
        overwrite=overwrite,
        keep_shards=keep_shards,
        max_workers=max_workers,
        run_id=run_id,
        on_result=lambda r: typer.echo(f"{r.name}: {r.status} in {r.duration_s:.1f}s"),
    )
    typer.echo(f"{out}: merged {shards} shard(s); run summary: {summary.summary_path}")


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


@app.command("edge-manifests")
def edge_manifests_command(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, "--out", help="Write acsa/ and systemd/ files below this folder instead of printing."
    ),
    systemd: bool = typer.Option(
        False, "--systemd", help="Print the recorder's systemd unit instead of the ACSA YAML."
    ),
    namespace: str = typer.Option("physai", "--namespace", help="Namespace for both objects."),
    claim: str = typer.Option("physai-recordings", "--claim", help="PersistentVolumeClaim name."),
    size: str = typer.Option("50Gi", "--size", help="Claim size, a Kubernetes quantity."),
    storage_class: str = typer.Option(
        "cloud-backed-sc", "--storage-class", help="An ACSA storage class with a cloud connection."
    ),
    subvolume: str = typer.Option("physai-recordings", "--subvolume", help="IngestSubvolume name."),
    path: str = typer.Option(
        "recordings", "--path", help="The subvolume's directory in the volume (what is uploaded)."
    ),
    edge_volume: str | None = typer.Option(
        None, "--edge-volume", help="Edge Volume (`kubectl get edgevolumes`; default: the claim)."
    ),
    storage_account: str | None = typer.Option(
        None, "--storage-account", help="Storage account (default: setting azure_storage_account)."
    ),
    container: str | None = typer.Option(
        None, "--container", help="Blob container (default: setting azure_storage_container)."
    ),
    ingest_order: str = typer.Option(
        "oldest-first", "--ingest-order", help="oldest-first or newest-first (best effort)."
    ),
    ingest_min_delay: int = typer.Option(
        60, "--ingest-min-delay", help="Seconds after a file's last close before it is uploaded."
    ),
    eviction_order: str = typer.Option(
        "unordered", "--eviction-order", help="unordered, or never (keep local copies)."
    ),
    eviction_min_delay: int = typer.Option(
        300, "--eviction-min-delay", help="Seconds after upload before the local copy goes."
    ),
    on_delete: str = typer.Option(
        "trigger-immediate-ingest", "--on-delete", help="trigger-immediate-ingest or abandon."
    ),
    recorder_config: str = typer.Option(
        "/etc/physai/recorder.yaml", "--recorder-config", help="Recording config on the robot."
    ),
    check_config: Path | None = typer.Option(
        None, "--check-config", help="Local copy of it: refused if output_dir is not uploaded."
    ),
    user: str = typer.Option("physai", "--user", help="Dedicated account the recorder runs as."),
    mount: str = typer.Option(
        "/mnt/physai-ingest", "--mount", help="Where the ACSA volume is mounted on the robot."
    ),
    env_file: str = typer.Option(
        "/etc/physai/recorder.env", "--env-file", help="Environment file (PHYSAI_*, ROS_DOMAIN_ID)."
    ),
    physai_bin: str = typer.Option(
        "/usr/local/bin/physai", "--physai-bin", help="The physai executable on the robot."
    ),
    ros_domain_id: int = typer.Option(0, "--ros-domain-id", help="ROS_DOMAIN_ID (0-232)."),
    stop_timeout: int = typer.Option(
        120, "--stop-timeout", help="Seconds the recorder gets to flush after SIGINT."
    ),
) -> None:
    """Render edge material: the ACSA claim and ingest subvolume, and the recorder's unit.

    Prints the ACSA YAML (for `kubectl apply -f -` on the Arc cluster), or the systemd unit
    with --systemd. --out DIR writes acsa/ingest.yaml, systemd/physai-recorder.service and
    systemd/physai-recorder.env, each atomically; a bad option writes nothing.

    Example: physai data-pipeline edge-manifests --container recordings | kubectl apply -f -
    """
    from physai.data_pipeline.config import load_recording_config
    from physai.data_pipeline.edge import (
        ACSA_FILE,
        UNIT_FILE,
        AcsaOptions,
        RecorderUnitOptions,
        edge_files,
        write_edge_files,
    )

    acsa = AcsaOptions(
        namespace=namespace,
        claim=claim,
        size=size,
        storage_class=storage_class,
        subvolume=subvolume,
        path=path,
        edge_volume=edge_volume,
        container=container,
        storage_account=storage_account,
        ingest_order=ingest_order,  # type: ignore[arg-type]  # checked by AcsaOptions
        ingest_min_delay_s=ingest_min_delay,
        eviction_order=eviction_order,  # type: ignore[arg-type]
        eviction_min_delay_s=eviction_min_delay,
        on_delete=on_delete,  # type: ignore[arg-type]
    )
    unit = RecorderUnitOptions(
        config=recorder_config,
        user=user,
        mount=mount,
        env_file=env_file,
        physai_bin=physai_bin,
        ros_domain_id=ros_domain_id,
        stop_timeout_s=stop_timeout,
    )
    recording = load_recording_config(check_config) if check_config is not None else None
    settings = get_settings(ctx) if storage_account is None or container is None else None
    files = edge_files(acsa, unit, settings, recording)
    if out is None:
        typer.echo(files[UNIT_FILE if systemd else ACSA_FILE], nl=False)
        return
    for written in write_edge_files(out, files):
        typer.echo(f"wrote {written}")


@app.command("sim-robot")
def sim_robot_command(
    task: str = typer.Option("pusher", "--task", help="pusher (7 joints) or reacher (2 joints)."),
    mode: str = typer.Option("mcap", "--mode", help="mcap: write bags; ros: publish over DDS."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the bags (mcap mode)."),
    episodes: int = typer.Option(1, "--episodes", help="Episodes to run."),
    seconds: float = typer.Option(4.0, "--seconds", help="Length of each episode."),
    seed: int = typer.Option(0, "--seed", help="Episode k uses seed + k."),
    width: int = typer.Option(320, "--width", help="Camera image width."),
    height: int = typer.Option(240, "--height", help="Camera image height."),
    physics_hz: int = typer.Option(500, "--physics-hz", help="Physics and joint-state rate."),
    camera_hz: float = typer.Option(30.0, "--camera-hz", help="Camera and action rate."),
    replay: Path | None = typer.Option(
        None, "--replay", help="A .npy of actions (episodes x steps x motors, or steps x motors)."
    ),
    trigger_service: str | None = typer.Option(
        None, "--trigger-service", help="ros mode: SetBool service to start/stop each episode."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Run a simulated MuJoCo arm with an offscreen camera, driven by a scripted expert.

    mcap mode writes one bag per episode plus mapping.yaml (ready for `convert`), no ROS
    needed; ros mode publishes /joint_states, /camera/image_raw and /arm/command in real time.

    Examples:
      physai data-pipeline sim-robot --out bags/ --episodes 10 --task pusher
      physai data-pipeline sim-robot --mode ros --trigger-service /physai/record
    """
    import numpy as np

    from physai.data_pipeline import sim_robot

    sim_robot.get_task(task)
    actions = None
    if replay is not None:
        try:
            loaded = np.load(replay)
        except (OSError, ValueError) as exc:
            raise UserError(f"{replay}: not a readable .npy file ({exc})") from None
        actions = [loaded] if loaded.ndim == 2 else list(loaded)
    run: dict[str, Any] = {
        "episodes": episodes,
        "seconds": seconds,
        "seed": seed,
        "width": width,
        "height": height,
        "physics_hz": physics_hz,
        "camera_hz": camera_hz,
    }
    if mode == "mcap":
        if out is None:
            raise UserError("--out is required in mcap mode")
        paths = sim_robot.write_episodes(out, task, replay=actions, **run)
        summary: object = [str(p) for p in paths]
        if not as_json:
            typer.echo(f"wrote {len(paths)} bag(s) and {out / 'mapping.yaml'}")
    elif mode == "ros":
        if actions is not None:
            raise UserError("--replay works in mcap mode only")
        summary = sim_robot.publish_episodes(task, trigger_service=trigger_service, **run)
        if not as_json:
            typer.echo(f"published {episodes} episode(s): {summary}")
    else:
        raise UserError(f"--mode must be mcap or ros, not {mode!r}")
    if as_json:
        typer.echo(json.dumps(summary))


@app.command("record")
def record_command(
    config_file: Path = typer.Option(..., "--config", help="Recording config YAML."),
    discovery_timeout: float = typer.Option(
        10.0, "--discovery-timeout", help="Seconds to wait for the types of untyped topics."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the episodes as JSON at the end."),
) -> None:
    """Record ROS 2 topics into one MCAP bag per episode until SIGINT/SIGTERM.

    Episodes start and stop on the config's trigger (service, topic or joint condition);
    every received message is written before the recorder exits.

    Example: physai data-pipeline record --config arm.yaml
      then:  ros2 service call /physai/record std_srvs/srv/SetBool "{data: true}"
    """
    from physai.data_pipeline.config import load_recording_config
    from physai.data_pipeline.recorder import Recorder

    config = load_recording_config(config_file)
    report = Recorder(config, discovery_timeout_s=discovery_timeout).run()
    rows = [
        {
            "path": str(e.path),
            "messages": e.messages,
            "seconds": round(e.seconds, 3),
            "stop_reason": e.stop_reason,
            "gaps": [g.as_dict() for g in e.gaps],
        }
        for e in report.episodes
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    else:
        for episode in report.episodes:
            typer.echo(f"{episode.path}: {sum(episode.messages.values())} messages")


@app.command("config-schema")
def config_schema_command() -> None:
    """Print the JSON Schema of recording configs (for editors and validation).

    Example: physai data-pipeline config-schema > recording-config.schema.json
    """
    from physai.data_pipeline.config import recording_config_schema

    typer.echo(json.dumps(recording_config_schema(), indent=1))
