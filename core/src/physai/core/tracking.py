"""Experiment tracking on MLflow: one run per `Tracker`, batched metrics, lineage tags.

    with Tracker(settings).start("reacher-ppo", run_name="seed-0", params=cfg) as tracker:
        tracker.set_lineage(datasets=[DatasetRef(uri="az://datasets/pick/v3", sha256=digest)])
        for step in range(steps):
            tracker.log_metrics({"train/loss": loss, "train/reward": reward}, step=step)
        tracker.log_artifacts("outputs/checkpoints")

The tracking URI is `settings.tracking_uri` when set, else `sqlite:///<.physai>/mlflow.db` in the
local profile and the AzureML workspace's MLflow URI in the azure profile (`tracking_uri`).

`log_metrics` only validates and appends to a buffer; a background thread writes the buffer with
`MlflowClient.log_batch` in batches of at most MLflow's per-request limit (1,000 metrics), when a
batch is full, every `flush_interval_s` seconds, on `flush()` and when the run ends. A store error
is raised (as `TrackingError`) by the next call into the tracker, never swallowed.

Lineage is written as run tags under the fixed prefix `physai.` (`Lineage.to_tags`): dataset URIs
and sha256 digests, the code version (git commit and package versions), task and parent run.
MLflow is imported inside functions only: importing this module stays cheap.
"""

from __future__ import annotations

import atexit
import functools
import importlib.metadata
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from physai.core.auth import AZURE_EXTRA_HINT
from physai.core.errors import MissingDependencyError, PhysaiError, UserError
from physai.core.logs import get_logger, redact

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from physai.core.settings import Settings

_log = get_logger(__name__)

# MLflow's limits (mlflow.utils.validation), copied so that importing this module needs no MLflow.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000

LINEAGE_PREFIX = "physai."
"""Every lineage tag starts with this prefix (`physai.dataset.0.uri`, `physai.code.git_commit`)."""

DEFAULT_EXPERIMENT = "physai"
ARTIFACTS_DIRNAME = "mlartifacts"
AZUREML_MLFLOW_URI = (
    "azureml://{location}.api.azureml.ms/mlflow/v1.0/subscriptions/{subscription}"
    "/resourceGroups/{resource_group}/providers/Microsoft.MachineLearningServices"
    "/workspaces/{workspace}"
)
# Distributions whose versions go into the code version when installed (plus every physai-*).
TRACKED_PACKAGES = (
    "torch",
    "lerobot",
    "skrl",
    "rsl-rl-lib",
    "isaaclab",
    "mujoco",
    "gymnasium",
    "onnx",
    "onnxruntime",
    "mlflow",
)
GIT_COMMIT_ENV = "PHYSAI_GIT_COMMIT"

# MLflow's rule for metric, param and tag names on POSIX systems.
_NAME_CHARS = re.compile(r"^[/\w.\- :]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]


class TrackingError(PhysaiError):
    """The tracking store rejected or failed a write (after the input itself was accepted)."""


# -- tracking URI and client ---------------------------------------------------------------------


def tracking_uri(settings: Settings | None = None) -> str:
    """The MLflow tracking URI these settings select.

    `settings.tracking_uri` if set; else the local profile's `sqlite:///<state_dir>/mlflow.db`
    (absolute; the directory is created) or, in the azure profile, the AzureML workspace's MLflow
    URI built from the azure_* settings (no network access). A missing azure setting raises
    ConfigError naming every setting that is missing.
    """
    from physai.core.settings import settings_or_default  # pydantic-settings: load on use

    settings = settings_or_default(settings)
    if settings.tracking_uri:
        return settings.tracking_uri
    if settings.profile == "azure":
        fields = {
            "location": "azure_location",
            "subscription": "azure_subscription_id",
            "resource_group": "azure_resource_group",
            "workspace": "azure_workspace_name",
        }
        found = settings.require_all(
            list(fields.values()), "the AzureML MLflow tracking server (or PHYSAI_TRACKING_URI)"
        )
        values = {key: value.strip() for key, value in zip(fields, found, strict=True)}
        values["location"] = values["location"].lower().replace(" ", "")
        return AZUREML_MLFLOW_URI.format(**values)
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{state / 'mlflow.db'}"


def mlflow_client(settings: Settings | None = None, *, uri: str | None = None) -> MlflowClient:
    """An `MlflowClient` whose tracking and registry URIs are `uri` (default: `tracking_uri`)."""
    uri = uri or tracking_uri(settings)
    if uri.startswith("azureml:"):
        import importlib.util

        try:
            found = importlib.util.find_spec("azureml.mlflow") is not None
        except ImportError:  # the `azureml` parent package itself is missing
            found = False
        if not found:
            raise MissingDependencyError(
                "azureml-mlflow (needed for the AzureML tracking URI)",
                AZURE_EXTRA_HINT,
            )
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_location_for(uri: str) -> str | None:
    """Where new experiments keep artifacts: beside the database for sqlite, else the server's.

    MLflow's own default for a sqlite store is `./mlruns` relative to the working directory; a
    sqlite URI here gets `<db dir>/mlartifacts` instead, so runs started from any directory share
    one artifact tree. Servers and AzureML choose their own location (None).
    """
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///")).expanduser()
    if str(db) in ("", ":memory:"):
        return None
    return (db.resolve().parent / ARTIFACTS_DIRNAME).as_uri()


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of the experiment `name`, created if absent (safe when two processes race)."""
    from mlflow.exceptions import MlflowException

    if not name or not name.strip():
        raise UserError("experiment name is empty: give a name such as 'reacher-ppo'")
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            location = artifact_location_for(str(client.tracking_uri))
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                # Unchained: the store's exception may carry secrets (a SAS in a URL).
                raise TrackingError(
                    f"cannot create experiment {name!r}: {redact(exc.message)}"
                ) from None
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise UserError(
            f"experiment {name!r} was deleted: restore it (mlflow experiments restore) "
            "or use another experiment name"
        )
    return str(experiment.experiment_id)


# -- names and values -----------------------------------------------------------------------------


def validate_name(name: str, kind: str = "metric") -> str:
    """Return `name` if MLflow accepts it as a metric/param/tag name, else raise UserError.

    Allowed: letters, digits, `_ - . / : ` and spaces; at most 250 characters; and the name must
    not change when read as a path (no leading or trailing `/`, no `//`, `.` or `..` segments).
    """
    if not isinstance(name, str) or not name:
        raise UserError(f"{kind} name must be a non-empty string, got {name!r}")
    problem = None
    if len(name) > MAX_KEY_LENGTH:
        problem = f"it is longer than {MAX_KEY_LENGTH} characters"
    elif not _NAME_CHARS.match(name):
        bad = sorted({c for c in name if not _NAME_CHARS.match(c)})
        problem = (
            f"it contains {''.join(bad)!r}; names may only contain letters, digits, "
            "underscores, dashes, periods, spaces, colons and slashes"
        )
    elif _path_not_unique(name):
        problem = "it would resolve to another name as a path (leading/trailing '/', '//', '..')"
    if problem:
        raise UserError(f"invalid {kind} name {name!r}: {problem}")
    return name


def _path_not_unique(name: str) -> bool:
    import posixpath

    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def _metric_value(name: str, value: Any) -> float:
    """A float from an int, a float, a numpy scalar or a 0-d tensor; UserError otherwise."""
    if isinstance(value, bool | str | bytes):
        raise UserError(f"metric {name!r} must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"metric {name!r} must be a number, got {type(value).__name__}") from None


def _tag_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _tag_value(key: str, value: object, limit: int = MAX_TAG_VALUE_LENGTH) -> str:
    text = _tag_text(value)
    if len(text) > limit:
        raise UserError(f"tag {key!r} is {len(text)} characters long; the limit is {limit}")
    return text


def validate_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as MLflow stores them; UserError for a bad name or a value over 8,000 characters.

    Names follow `validate_name`; non-string values are written as JSON (sorted keys).
    """
    return {validate_name(k, "tag"): _tag_value(k, v) for k, v in tags.items()}


def write_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    """Set already validated tags (`validate_tags`) on a run, in batches MLflow accepts."""
    from mlflow.entities import RunTag

    items = [RunTag(k, v) for k, v in tags.items()]  # type: ignore[no-untyped-call]
    for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=list(chunk))


def _chunks[T](items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _dataset_items(value: Any) -> list[Any]:
    """One dataset (a URI, a DatasetRef, a mapping) or an iterable of them, as a list."""
    if isinstance(value, str | DatasetRef | Mapping):
        value = [value]
    return [{"uri": v} if isinstance(v, str) else v for v in value or ()]


# -- lineage --------------------------------------------------------------------------------------


class DatasetRef(BaseModel):
    """A dataset a run read: its URI and, when known, the sha256 of its manifest or content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str = Field(min_length=1)
    sha256: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digest = value.strip().lower().removeprefix("sha256:")
        if not _SHA256.match(digest):
            raise ValueError("must be 64 hexadecimal characters (a sha256 digest)")
        return digest


type DatasetLike = DatasetRef | Mapping[str, Any] | str
"""One dataset: a DatasetRef, a mapping of its fields, or just its URI."""


class CodeVersion(BaseModel):
    """The code that produced a run: git commit (when known) and installed package versions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    git_commit: str | None = None
    git_dirty: bool | None = None
    packages: dict[str, str] = Field(default_factory=dict)


class Lineage(BaseModel):
    """Where a run or a model came from. Unknown keys given as a dict land in `extra`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    datasets: tuple[DatasetRef, ...] = ()
    run_id: str | None = None
    parent_run_id: str | None = None
    task: str | None = None
    code: CodeVersion | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(
        default_factory=dict, description="sha256 of each model file (relative path → digest)."
    )

    @model_validator(mode="before")
    @classmethod
    def _collect_extra(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = set(cls.model_fields)
            extra = dict(data.get("extra") or {})
            extra.update({k: v for k, v in data.items() if k not in known})
            data = {k: v for k, v in data.items() if k in known}
            if extra:
                data["extra"] = extra
        return data

    @field_validator("datasets", mode="before")
    @classmethod
    def _dataset_refs(cls, value: Any) -> Any:
        return _dataset_items(value)

    @field_validator("extra")
    @classmethod
    def _extra_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            validate_name(key, "lineage key")
        return value

    @classmethod
    def coerce(cls, value: Lineage | Mapping[str, Any] | None) -> Lineage:
        """A Lineage from a Lineage, a dict (as in lineage.json) or None; UserError if invalid."""
        if isinstance(value, Lineage):
            return value
        try:
            return cls.model_validate(dict(value or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "lineage"
            raise UserError(f"invalid lineage field {where}: {first['msg']}") from None

    def with_defaults(self, *, run_id: str | None = None, code: bool = True) -> Lineage:
        """A copy with `run_id` filled in when absent and the current code version collected."""
        update: dict[str, Any] = {}
        if run_id and not self.run_id:
            update["run_id"] = run_id
        if code and self.code is None:
            update["code"] = collect_code_version()
        return self.model_copy(update=update) if update else self

    def to_json_dict(self) -> dict[str, Any]:
        """The lineage.json document."""
        return self.model_dump(mode="json")

    def to_tags(self) -> dict[str, str]:
        """Flat `physai.*` tags (file digests stay in lineage.json: there may be thousands).

        The tags are validated (`validate_tags`): a name or a value MLflow would refuse is a
        UserError here, so they can be written as they are.
        """
        p = LINEAGE_PREFIX
        tags: dict[str, str] = {}
        if self.datasets:
            tags[f"{p}dataset.count"] = str(len(self.datasets))
        for i, ds in enumerate(self.datasets):
            tags[f"{p}dataset.{i}.uri"] = ds.uri
            if ds.sha256:
                tags[f"{p}dataset.{i}.sha256"] = ds.sha256
        for key in ("run_id", "parent_run_id", "task"):
            if (value := getattr(self, key)) is not None:
                tags[f"{p}{key}"] = value
        if self.code is not None:
            if self.code.git_commit:
                tags[f"{p}code.git_commit"] = self.code.git_commit
            if self.code.git_dirty is not None:
                tags[f"{p}code.git_dirty"] = str(self.code.git_dirty).lower()
            if self.code.packages:
                tags[f"{p}code.packages"] = " ".join(
                    f"{k}=={v}" for k, v in sorted(self.code.packages.items())
                )
        for key, value in self.extra.items():
            tags[f"{p}extra.{key}"] = _tag_text(value)
        return validate_tags(tags)

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Lineage | None:
        """Read back what `to_tags` wrote (None when there is no `physai.` tag at all)."""
        p = LINEAGE_PREFIX
        own = {k.removeprefix(p): v for k, v in tags.items() if k.startswith(p)}
        if not own:
            return None
        count = int(own.get("dataset.count", "0") or 0)
        datasets = [
            {"uri": own[f"dataset.{i}.uri"], "sha256": own.get(f"dataset.{i}.sha256")}
            for i in range(count)
            if f"dataset.{i}.uri" in own
        ]
        code = None
        if any(k.startswith("code.") for k in own):
            packages = dict(
                item.split("==", 1) for item in own.get("code.packages", "").split() if "==" in item
            )
            dirty = own.get("code.git_dirty")
            code = CodeVersion(
                git_commit=own.get("code.git_commit"),
                git_dirty=None if dirty is None else dirty == "true",
                packages=packages,
            )
        extra: dict[str, Any] = {}
        for key, value in own.items():
            if key.startswith("extra."):
                try:
                    extra[key.removeprefix("extra.")] = json.loads(value)
                except ValueError:
                    extra[key.removeprefix("extra.")] = value
        return cls.coerce(
            {
                "datasets": datasets,
                "run_id": own.get("run_id"),
                "parent_run_id": own.get("parent_run_id"),
                "task": own.get("task"),
                "code": code,
                "extra": extra,
            }
        )


def collect_code_version(path: str | Path | None = None) -> CodeVersion:
    """The git commit of `path` (default: the working directory) and relevant package versions.

    The commit comes from `git rev-parse HEAD`, else from `$PHYSAI_GIT_COMMIT` (set it in
    containers that carry no .git); it is None when neither is available.
    """
    where = Path(path or Path.cwd()).resolve()
    commit, dirty = _git_state(str(where))
    if commit is None and os.environ.get(GIT_COMMIT_ENV):
        commit = os.environ[GIT_COMMIT_ENV].strip() or None
    return CodeVersion(git_commit=commit, git_dirty=dirty, packages=dict(_package_versions()))


@functools.lru_cache(maxsize=8)
def _git_state(where: str) -> tuple[str | None, bool | None]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", where, *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--verify", "--quiet", "HEAD")
    if not commit:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


@functools.lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("physai-") or name in TRACKED_PACKAGES:
            found[name] = dist.version
    return tuple(sorted(found.items()))


# -- the tracker ----------------------------------------------------------------------------------


class _MetricWriter:
    """A background thread that writes buffered metrics with `log_batch`."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        *,
        batch_size: int,
        interval_s: float,
        max_pending: int,
    ) -> None:
        self._client = client
        self._run_id = run_id
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._max_pending = max(max_pending, batch_size)
        self._buffer: list[Metric] = []
        self._cond = threading.Condition()
        self._queued = 0
        self._done = 0
        self._flush_to = 0
        self._closing = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="physai-metrics", daemon=True)
        self._thread.start()

    def add(self, metrics: list[Metric]) -> None:
        with self._cond:
            self._check()
            # Back-pressure: a store slower than the training loop must not exhaust memory.
            while len(self._buffer) >= self._max_pending and self.error is None:
                self._cond.wait()
            self._check()
            self._buffer.extend(metrics)
            self._queued += len(metrics)
            if len(self._buffer) >= self._batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            while self._done < target and self.error is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TrackingError(
                        f"metrics not written within {timeout}s "
                        f"({target - self._done} still pending): is the tracking store reachable?"
                    )
                self._cond.wait(remaining)
            self._check()

    def close(self, timeout: float | None = None) -> None:
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join(timeout)

    def _check(self) -> None:
        if self.error is not None:
            # Unchained and redacted: the store's exception may carry secrets (a SAS in a URL).
            raise TrackingError(
                f"writing metrics to the tracking store failed: {redact(str(self.error))}"
            ) from None

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self._interval_s
                while (
                    not self._closing
                    and self._flush_to <= self._done
                    and len(self._buffer) < self._batch_size
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if not self._buffer or self.error is not None:
                    if self._closing:
                        return
                    continue
                batch = self._buffer[: self._batch_size]
                del self._buffer[: self._batch_size]
                self._cond.notify_all()  # wake a producer waiting on back-pressure
            try:
                self._client.log_batch(self._run_id, metrics=batch)
            except BaseException as exc:
                _log.error("writing %d metrics failed: %s", len(batch), redact(str(exc)))
                with self._cond:
                    self.error = exc
                    self._done += len(batch) + len(self._buffer)
                    self._buffer.clear()
                    self._cond.notify_all()
                continue
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()


class Tracker:
    """One MLflow run: params, batched metrics, tags, lineage and artifacts.

    Use it as a context manager; the run ends FINISHED, or FAILED when the block raises (KILLED
    on KeyboardInterrupt). Metrics are written asynchronously in batches (see the module doc).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        uri: str | None = None,
        client: MlflowClient | None = None,
        batch_size: int = MAX_METRICS_PER_BATCH,
        flush_interval_s: float = 2.0,
        max_pending: int = 200_000,
    ) -> None:
        if not 1 <= batch_size <= MAX_METRICS_PER_BATCH:
            raise UserError(f"batch_size must be between 1 and {MAX_METRICS_PER_BATCH}")
        if flush_interval_s <= 0:
            raise UserError("flush_interval_s must be positive")
        self._settings = settings
        self._uri = uri
        self._client = client
        self._batch_size = batch_size
        self._interval_s = flush_interval_s
        self._max_pending = max_pending
        self._run_id: str | None = None
        self._writer: _MetricWriter | None = None
        self._ended = False
        self._valid_names: set[str] = set()
        self._metric: type[Metric] | None = None  # mlflow's Metric, imported by start()

    # -- lifecycle

    @property
    def client(self) -> MlflowClient:
        """The MlflowClient this tracker writes through (created on first use)."""
        if self._client is None:
            self._client = mlflow_client(self._settings, uri=self._uri)
        return self._client

    @property
    def tracking_uri(self) -> str:
        """The tracking URI of the store this tracker writes to."""
        return str(self.client.tracking_uri)

    @property
    def run_id(self) -> str:
        """The id of the active run (UserError before `start`)."""
        if self._run_id is None:
            raise UserError("the tracker has no run yet: call start(experiment) first")
        return self._run_id

    @property
    def artifact_uri(self) -> str:
        """Where this run's artifacts live."""
        return str(self.client.get_run(self.run_id).info.artifact_uri)

    def start(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> Self:
        """Create the run in `experiment` (created if absent) with params and tags; return self."""
        from mlflow.entities import Metric

        if self._run_id is not None:
            raise UserError(f"this tracker already has run {self._run_id}: use a new Tracker")
        # Validate everything before the run exists: bad input must not leave a RUNNING run.
        run_tags = validate_tags(tags or {})
        run_params = _params(params or {})
        experiment_id = ensure_experiment(self.client, experiment)
        run = self.client.create_run(experiment_id, run_name=run_name, tags=run_tags)
        self._run_id = str(run.info.run_id)
        self._metric = Metric
        self._writer = _MetricWriter(
            self.client,
            self._run_id,
            batch_size=self._batch_size,
            interval_s=self._interval_s,
            max_pending=self._max_pending,
        )
        atexit.register(self._at_exit)
        _log.info(
            "tracking run %s in experiment %r at %s",
            self._run_id,
            experiment,
            redact(self.tracking_uri),
        )
        if run_params:
            try:
                self._write_params(run_params)
            except BaseException:  # the store refused them: end the run and its writer thread
                self._end_quietly("FAILED")
                raise
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self._end_quietly("KILLED")
        else:
            self._end_quietly("FAILED")

    def end(self, status: RunStatus = "FINISHED", *, timeout: float | None = None) -> None:
        """Flush pending metrics and end the run with `status` (idempotent).

        If the metrics cannot be written the run ends FAILED and TrackingError is raised.
        """
        if self._ended or self._run_id is None:
            return
        self._ended = True
        atexit.unregister(self._at_exit)
        assert self._writer is not None
        try:
            self._writer.close(timeout)
        except BaseException:
            try:
                self.client.set_terminated(self._run_id, status="FAILED")
            except Exception as exc:  # the store is failing: keep the first error
                _log.warning("could not end run %s: %s", self._run_id, redact(str(exc)))
            raise
        self.client.set_terminated(self._run_id, status=status)

    close = end

    def _end_quietly(self, status: RunStatus) -> None:
        try:
            self.end(status)
        except Exception as exc:  # keep the exception that ended the block
            _log.warning("ending run %s: %s", self._run_id, redact(str(exc)))

    def _at_exit(self) -> None:
        self._end_quietly("FINISHED")

    # -- logging

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Queue metrics for `step` (default 0); returns at once, the store is written later."""
        writer = self._active_writer()
        metric = self._metric
        assert metric is not None
        step_value = 0 if step is None else int(step)
        timestamp = int(time.time() * 1000)
        batch = []
        for name, value in metrics.items():
            if name not in self._valid_names:
                self._valid_names.add(validate_name(name, "metric"))
            batch.append(metric(name, _metric_value(name, value), timestamp, step_value))
        if batch:
            writer.add(batch)

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Queue one metric (see `log_metrics`)."""
        self.log_metrics({name: value}, step)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every metric queued so far is in the store (TrackingError on failure)."""
        self._active_writer().flush(timeout)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (values as strings); a value may not change once logged."""
        self._active_writer()
        self._write_params(_params(params))

    def _write_params(self, items: list[Param]) -> None:
        from mlflow.exceptions import MlflowException

        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            try:
                self.client.log_batch(self.run_id, params=list(chunk))
            except MlflowException as exc:
                # Unchained: the store's exception may carry secrets (a SAS in a value or URL).
                if exc.error_code == "INVALID_PARAMETER_VALUE":
                    raise UserError(f"cannot log params: {redact(exc.message)}") from None
                raise TrackingError(f"logging params failed: {redact(exc.message)}") from None

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (non-string values are written as JSON)."""
        self._active_writer()
        write_tags(self.client, self.run_id, validate_tags(tags))

    def set_lineage(
        self,
        lineage: Lineage | Mapping[str, Any] | None = None,
        *,
        datasets: DatasetLike | Iterable[DatasetLike] | None = None,
        task: str | None = None,
        parent_run_id: str | None = None,
        code_version: CodeVersion | None = None,
        **extra: Any,
    ) -> Lineage:
        """Write lineage as `physai.*` tags and return it.

        `datasets` (one, or several) are added to the lineage's. Fills in this run's id and,
        unless given, the code version (git commit + packages). A parent run also gets MLflow's
        `mlflow.parentRunId` tag, so the UI nests the runs.
        """
        self._active_writer()
        base = Lineage.coerce(lineage)
        update: dict[str, Any] = {}
        if datasets is not None:
            update["datasets"] = [*base.datasets, *_dataset_items(datasets)]
        if task is not None:
            update["task"] = task
        if parent_run_id is not None:
            update["parent_run_id"] = parent_run_id
        if code_version is not None:
            update["code"] = code_version
        if extra:
            update["extra"] = {**base.extra, **extra}
        merged = Lineage.coerce({**base.model_dump(), **update}) if update else base
        merged = merged.with_defaults(run_id=self.run_id)
        tags = merged.to_tags()  # validated there, once
        if merged.parent_run_id:
            tags["mlflow.parentRunId"] = merged.parent_run_id
        write_tags(self.client, self.run_id, tags)
        return merged

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Upload a directory (or a single file) to the run's artifacts under `artifact_path`."""
        self._active_writer()
        path = Path(local_dir)
        if not path.exists():
            raise UserError(f"cannot log artifacts: {path} does not exist")
        if artifact_path is not None:
            _check_artifact_path(artifact_path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    # -- helpers

    def _active_writer(self) -> _MetricWriter:
        if self._writer is None:
            raise UserError("the tracker has no run yet: call start(experiment) first")
        if self._ended:
            raise UserError(f"run {self._run_id} has ended: start a new Tracker")
        return self._writer


def _params(params: Mapping[str, Any]) -> list[Param]:
    """MLflow Params (values as strings, non-strings as JSON); UserError for a bad name or value."""
    from mlflow.entities import Param

    items = []
    for key, value in params.items():
        validate_name(key, "param")
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            raise UserError(
                f"param {key!r} is {len(text)} characters long; the limit is "
                f"{MAX_PARAM_VALUE_LENGTH}: log it as an artifact instead"
            )
        items.append(Param(key, text))  # type: ignore[no-untyped-call]
    return items


def _check_artifact_path(artifact_path: str) -> None:
    parts = artifact_path.strip("/").split("/")
    if artifact_path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UserError(
            f"artifact path {artifact_path!r} must be relative, without '.', '..' or '//'"
        )
