"""`physai training package | register | pipeline`: from a trained policy to a registered release.

    physai training package exports/ppo --name policies/ppo --version 1.0.0 --output pkg/ppo
    physai training register exports/ppo --name ppo-pendulum --package pkg/ppo --alias staging
    physai training pipeline --name ppo-pendulum --iterations 150            # all four, here
    physai --profile azure training pipeline --name ppo-pendulum --output az://runs/ppo \\
        --backend azureml --image IMAGE --dry-run                            # a pipeline job

The pipeline is train (RL) -> export -> package -> register. On the local backend the four
steps run here, in order, in this process (`run_pipeline`); the training run's id reaches the
registered lineage. On azureml or osmo it is a `JobDag` of four jobs (`pipeline_dag`) wired by
their data (checkpoints -> export -> policy -> package, policy + package -> register), which
core renders as an AzureML pipeline job or an OSMO workflow (validated offline) and submits.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from physai.core.commands import get_settings
from physai.core.errors import UserError
from physai.training import cli_options as opts

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from physai.core.jobs import JobDag
    from physai.core.registry import RegisteredModel
    from physai.core.settings import Settings
    from physai.training.export import ExportResult
    from physai.training.package import PackageResult
    from physai.training.rl import RLConfig

STEPS = ("train", "export", "package", "register")
SUMMARY_NAME = "pipeline.json"


def register_commands(app: typer.Typer) -> None:
    """Add `package`, `register` and `pipeline` to the `physai training` app."""
    app.command("package")(package_command)
    app.command("register")(register_command)
    app.command("pipeline")(pipeline_command)


# -- physai training package ------------------------------------------------------------------


def package_command(
    policy_dir: str = typer.Argument(..., help="An exported policy folder (with policy.json)."),
    name: str = typer.Option(
        ..., "--name", help="Image repository name, lower case, e.g. policies/ppo-pendulum."
    ),
    version: str = typer.Option(..., "--version", help="Image version; the tag unless --tag."),
    output: str = typer.Option(
        ..., "--output", "-o", help="Layout folder (or .tar with --tar); path or storage URL."
    ),
    tar: bool = typer.Option(False, "--tar", help="Write one oci-archive .tar file."),
    tag: str | None = typer.Option(None, "--tag", help="Image tag (default: the version)."),
    platform: str = typer.Option("linux/amd64", "--platform", help="OS/ARCH[/VARIANT] label."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Package an exported policy as an OCI model-carrier image (layout folder or .tar).

    The files are checked against policy.json first; the output appears whole or not at all.

    Example: physai training package exports/ppo --name policies/ppo --version 1.0.0 -o pkg/ppo
    Push:    oras cp --from-oci-layout pkg/ppo:1.0.0 myacr.azurecr.io/policies/ppo:1.0.0
    """
    from physai.training.package import package_policy

    result = package_policy(
        policy_dir,
        output,
        name=name,
        version=version,
        tar=tar,
        tag=tag,
        platform=platform,
        overwrite=overwrite,
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(
        f"packaged {result.name}:{result.tag} at {result.path}: manifest {result.manifest_digest}, "
        f"layer {result.layer_digest}"
    )


# -- physai training register -----------------------------------------------------------------


def register_command(
    ctx: typer.Context,
    policy_dir: str = typer.Argument(..., help="An exported policy folder (with policy.json)."),
    name: str = typer.Option(..., "--name", help="Registered model name."),
    package: str | None = typer.Option(
        None, "--package", help="Its package (layout folder or .tar): digests join the lineage."
    ),
    aliases: list[str] = typer.Option(
        [], "--alias", help="Alias to point at the new version, repeatable."
    ),
    training_run: str | None = typer.Option(
        None, "--training-run", help="runs:/ID of the training run (default: from policy.json)."
    ),
    dataset_sha256: str | None = typer.Option(
        None, "--dataset-sha256", help="sha256 of the dataset policy.json names."
    ),
    description: str | None = typer.Option(None, "--description", help="Version description."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Register an exported policy with its lineage: MLflow locally, AzureML with --profile azure.

    The files are checked against policy.json first; a bad folder, name, alias or package
    registers nothing.

    Example: physai training register exports/ppo --name ppo-pendulum --package pkg/ppo
    Alias:   ... --alias staging --alias candidate
    """
    from physai.training.register import register_policy

    registered = register_policy(
        policy_dir,
        name,
        package=package,
        settings=get_settings(ctx),
        aliases=tuple(aliases),
        training_run=training_run,
        dataset_sha256=dataset_sha256,
        description=description,
    )
    summary = _registered_dict(registered, aliases)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    shown = f" (aliases: {', '.join(aliases)})" if aliases else ""
    typer.echo(f"registered {registered.uri}{shown} from {policy_dir} in {registered.backend}")


def _registered_dict(registered: RegisteredModel, aliases: Sequence[str]) -> dict[str, Any]:
    return {
        "uri": registered.uri,
        "name": registered.name,
        "version": registered.version,
        "source": registered.source,
        "run_id": registered.run_id,
        "backend": registered.backend,
        "aliases": list(aliases),
        "lineage": registered.lineage.to_json_dict(),
    }


# -- the pipeline -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelinePlan:
    """What `physai training pipeline` does: every option, checked before anything runs."""

    name: str
    version: str
    repository: str
    root: str
    library: str = "skrl"
    task: str = "InvertedPendulum"
    iterations: int = 150
    num_envs: int = 8
    seed: int = 0
    eval_episodes: int = 8
    formats: tuple[str, ...] = ("onnx", "torchscript")
    tolerance: float = 1e-4
    tar: bool = False
    aliases: tuple[str, ...] = ()
    experiment: str = "physai-rl"

    def __post_init__(self) -> None:
        from physai.core.registry import check_model_name
        from physai.training.export import parse_formats
        from physai.training.package.carrier import check_reference
        from physai.training.register import check_alias

        check_model_name(self.name)
        for alias in self.aliases:
            check_alias(self.name, alias)
        check_reference(self.repository, self.version, self.version)
        object.__setattr__(self, "formats", tuple(parse_formats(list(self.formats))))
        self.rl_config()  # library, task and the numbers: UserError before anything runs

    def rl_config(self) -> RLConfig:
        """The training step's config (checkpoints to `url("train")`)."""
        from physai.training.rl import load_config

        return load_config(
            library=self.library,
            task=self.task,
            num_envs=self.num_envs,
            iterations=self.iterations,
            seed=self.seed,
            eval_episodes=self.eval_episodes,
            checkpoint_url=self.url("train"),
        )

    def url(self, step: str) -> str:
        """Where a step writes below the root: checkpoints, policy, package (or package.tar)."""
        from physai.core.storage import join_url

        leaf = {"train": "checkpoints", "export": "policy", "package": "package"}[step]
        if step == "package" and self.tar:
            leaf = f"{leaf}.tar"
        return join_url(self.root, leaf)


@dataclass(frozen=True)
class PipelineResult:
    """What a local pipeline run produced, step by step."""

    root: str
    run_id: str | None
    checkpoints: list[str]
    export: ExportResult
    package: PackageResult
    registered: RegisteredModel
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what `--json` prints and pipeline.json holds)."""
        return {
            "root": self.root,
            "train": {"run_id": self.run_id, "checkpoints": self.checkpoints},
            "export": self.export.to_dict(),
            "package": self.package.to_dict(),
            "register": _registered_dict(self.registered, self.aliases),
        }


def default_root(settings: Settings, name: str, version: str) -> str:
    """`<state dir>/pipelines/<name>-<version>`: the local pipeline's default output."""
    return str(settings.state_dir / "pipelines" / f"{name}-{version}")


def run_pipeline(
    plan: PipelinePlan, settings: Settings, *, on_step: Callable[[str, str], None] | None = None
) -> PipelineResult:
    """Train, export, package and register here, in order; return what each step produced.

    The root must be a local folder that does not exist yet (or is empty). `on_step(step,
    message)` is told when each step is done. pipeline.json is written at the root last.
    """
    from physai.core import storage
    from physai.core.tracking import Tracker
    from physai.core.uris import LocalPath, parse_uri
    from physai.training.export import export_policy
    from physai.training.metrics import TRAINING_FLUSH_S
    from physai.training.package import package_policy
    from physai.training.register import register_policy
    from physai.training.rl import train_rl

    if not isinstance(parse_uri(plan.root), LocalPath):
        raise UserError(
            f"the local pipeline writes to a local folder, not {plan.root}: give --output a path "
            "(storage URLs go with --backend azureml or osmo)"
        )
    if storage.exists(plan.root, settings) and storage.ls(plan.root, settings):
        raise UserError(f"{plan.root} already exists and is not empty: choose another --output")
    config = plan.rl_config()
    say = on_step or (lambda step, message: None)
    tracking = Tracker(settings, flush_interval_s=TRAINING_FLUSH_S)
    with tracking.start(plan.experiment, run_name=f"{plan.library}-{plan.task}-s{plan.seed}") as tr:
        tr.set_lineage(task=plan.task)
        trained = train_rl(config, tracker=tr, settings=settings)
        run_id = tr.run_id
    say("train", f"iteration {trained.iterations}, MLflow run {run_id}")
    exported = export_policy(
        plan.url("train"),
        plan.url("export"),
        formats=plan.formats,
        tolerance=plan.tolerance,
        name=plan.name,
        settings=settings,
    )
    say("export", f"{', '.join(exported.files)} at {exported.output}")
    packaged = package_policy(
        plan.url("export"),
        plan.url("package"),
        name=plan.repository,
        version=plan.version,
        tar=plan.tar,
    )
    say("package", f"{packaged.name}:{packaged.tag} {packaged.manifest_digest}")
    registered = register_policy(
        plan.url("export"),
        plan.name,
        package=packaged,
        settings=settings,
        aliases=plan.aliases,
        training_run=f"runs:/{run_id}",
    )
    say("register", registered.uri)
    result = PipelineResult(
        root=plan.root,
        run_id=run_id,
        checkpoints=trained.checkpoints,
        export=exported,
        package=packaged,
        registered=registered,
        aliases=plan.aliases,
    )
    summary = json.dumps(result.to_dict(), indent=2) + "\n"
    storage.write_text(storage.join_url(plan.root, SUMMARY_NAME), summary, settings)
    return result


def pipeline_dag(
    plan: PipelinePlan, settings: Settings, *, image: str | None, gpus: int = 0
) -> JobDag:
    """The pipeline as four cloud jobs wired by their data (train's job from `training_job`).

    Every job gets the settings that say where runs and models go (the azure profile and its
    workspace, or an MLflow server's tracking URI): a registry inside the job's container would
    be lost with it, so without one this is a UserError.
    """
    from physai.core.jobs import IOSpec, JobDag, JobSpec
    from physai.training.jobs import training_job

    env = _registry_env(settings)
    train = training_job(
        "rl",
        [
            *("--library", plan.library, "--task", plan.task),
            *("--iterations", str(plan.iterations), "--num-envs", str(plan.num_envs)),
            *("--seed", str(plan.seed), "--eval-episodes", str(plan.eval_episodes)),
            *("--experiment", plan.experiment, "--checkpoint-url", plan.url("train")),
        ],
        image=image,
        gpus=gpus,
        name="train",
    )
    checkpoints = IOSpec(uri=plan.url("train"), mode="download")
    policy_out = IOSpec(uri=plan.url("export"), mode="upload")
    policy_in = IOSpec(uri=plan.url("export"), mode="download")
    package_root = plan.url("package").removesuffix(".tar")
    tar_leaf = f"/{plan.repository.rsplit('/', 1)[-1]}.tar" if plan.tar else ""
    cli = ["physai", "training"]

    def job(name: str, command: list[str], **io: Any) -> JobSpec:
        return JobSpec(
            name=name,
            command=command,
            image=image,
            env=env,
            description=f"physai pipeline: {name}",
            **io,
        )

    export = job(
        "export",
        [*cli, "export", "${{inputs.checkpoints}}", "--output", "${{outputs.policy}}",
         "--format", ",".join(plan.formats), "--tolerance", str(plan.tolerance),
         "--name", plan.name, "--overwrite", "--json"],
        inputs={"checkpoints": checkpoints},
        outputs={"policy": policy_out},
    )  # fmt: skip
    package = job(
        "package",
        [*cli, "package", "${{inputs.policy}}", "--name", plan.repository,
         "--version", plan.version, "--output", "${{outputs.package}}" + tar_leaf,
         *(["--tar"] if plan.tar else []), "--overwrite", "--json"],
        inputs={"policy": policy_in},
        outputs={"package": IOSpec(uri=package_root, mode="upload")},
    )  # fmt: skip
    register = job(
        "register",
        [*cli, "register", "${{inputs.policy}}", "--name", plan.name,
         "--package", "${{inputs.package}}" + tar_leaf,
         *[a for alias in plan.aliases for a in ("--alias", alias)], "--json"],
        inputs={"policy": policy_in, "package": IOSpec(uri=package_root, mode="download")},
    )  # fmt: skip
    slug = re.sub(r"[^a-z0-9_-]+", "-", plan.name.lower()).strip("-_")[:50].rstrip("-_")
    return JobDag(
        name=f"pipeline-{slug}" if slug else "pipeline",
        jobs=[train.model_copy(update={"env": {**train.env, **env}}), export, package, register],
        description=f"physai training pipeline for model {plan.name}: {' -> '.join(STEPS)}",
    )


def _registry_env(settings: Settings) -> dict[str, str]:
    """The settings a cloud job needs to reach this registry and tracking server."""
    from urllib.parse import urlsplit

    from physai.core.auth import WORKSPACE_SETTINGS

    if settings.profile == "azure":
        env = {"PHYSAI_PROFILE": "azure"}
        for key in WORKSPACE_SETTINGS:
            if value := getattr(settings, key):
                env[f"PHYSAI_{key.upper()}"] = str(value)
        return env
    uri = settings.tracking_uri or ""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and not (parts.username or parts.password):
        return {"PHYSAI_TRACKING_URI": uri}
    raise UserError(
        "a cloud pipeline registers the policy in a shared registry: use --profile azure "
        "(the AzureML registry) or set PHYSAI_TRACKING_URI to an MLflow server (http/https)"
    )


def pipeline_command(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Registered model name."),
    version: str = typer.Option("1.0.0", "--version", help="Package version (the image tag)."),
    repository: str | None = typer.Option(
        None, "--repository", help="Package repository (default: policies/<name, lower case>)."
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Root of checkpoints/, policy/, package/ and pipeline.json (local default: "
        "<state dir>/pipelines/<name>-<version>; a storage URL for azureml and osmo).",
    ),
    library: str = typer.Option("skrl", "--library", help="PPO implementation: skrl or rsl_rl."),
    task: str = typer.Option("InvertedPendulum", "--task", help="Task name (physai task list)."),
    iterations: int = typer.Option(150, "--iterations", help="PPO iterations."),
    num_envs: int = typer.Option(8, "--num-envs", help="Parallel environments."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    eval_episodes: int = typer.Option(
        8, "--eval-episodes", help="Deterministic evaluation episodes after training (0: none)."
    ),
    formats: str = typer.Option("onnx,torchscript", "--format", "-f", help="Export formats."),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="Export parity tolerance."),
    tar: bool = typer.Option(False, "--tar", help="Package as one oci-archive .tar file."),
    aliases: list[str] = typer.Option([], "--alias", help="Alias for the new version, repeatable."),
    experiment: str = typer.Option("physai-rl", "--experiment", help="MLflow experiment."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    backend: opts.Backend = "local",
    dry_run: opts.DryRun = False,
    image: opts.Image = None,
    gpus: opts.Gpus = 0,
    pool: opts.Pool = None,
) -> None:
    """Train (RL), export, package and register a policy: here, or as a cloud pipeline.

    Locally the four steps run in order and write under --output; the registered version's
    lineage names the training run, the parity results and the package digests.

    Example: physai training pipeline --name ppo-pendulum --library skrl --iterations 150
    Cloud:   physai --profile azure training pipeline --name ppo-pendulum --output az://runs/ppo
             --backend azureml --image IMAGE --gpus 1 --dry-run
    """
    from physai.core.jobs.backends import check_backend, render_text, submit_cloud

    chosen = check_backend(backend)
    settings = get_settings(ctx)
    if chosen != "local" and output is None:
        raise UserError("a cloud pipeline needs --output (a storage URL, e.g. az://runs/ppo)")
    plan = PipelinePlan(
        name=name,
        version=version,
        repository=repository or f"policies/{name.lower()}",
        root=output or default_root(settings, name, version),
        library=library,
        task=task,
        iterations=iterations,
        num_envs=num_envs,
        seed=seed,
        eval_episodes=eval_episodes,
        formats=tuple(formats.split(",")),
        tolerance=tolerance,
        tar=tar,
        aliases=tuple(aliases),
        experiment=experiment,
    )
    if chosen != "local":
        dag = pipeline_dag(plan, settings, image=image, gpus=gpus)
        if dry_run:
            typer.echo(render_text(dag, chosen, settings), nl=False)
        else:
            typer.echo(submit_cloud(dag, chosen, settings, pool=pool))
        return
    if dry_run:
        steps = {step: plan.url(step) for step in STEPS[:3]} | {"register": plan.name}
        typer.echo(json.dumps({"backend": "local", "steps": steps, "plan": asdict(plan)}, indent=2))
        return

    def progress(step: str, message: str) -> None:
        if not as_json:
            typer.echo(f"{step}: {message}", err=True)

    result = run_pipeline(plan, settings, on_step=progress)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(
        f"{result.registered.uri} registered from {result.export.output}; package "
        f"{result.package.name}:{result.package.tag} ({result.package.manifest_digest}); "
        f"summary {plan.root}/{SUMMARY_NAME}"
    )
