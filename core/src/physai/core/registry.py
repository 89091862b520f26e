"""Model registry: register a model directory with its lineage, alias it, resolve and download it.

    registered = register_model("outputs/policy", "reacher-ppo", {"datasets": [...]})
    set_alias("reacher-ppo", "production", registered.version)
    path = download_model("models:/reacher-ppo@production", "deploy/policy")

Two backends, picked by the settings profile:

- local (and any `tracking_uri`): the MLflow model registry. The directory is logged as artifacts
  of a run (a new run in the `physai-models` experiment unless `run_id` is given) with a
  `lineage.json` beside the files, and a new version of the registered model points at them.
  Lineage is also written as `physai.*` tags on the model version (and on the run physai created).
- azure: the AzureML model registry through azure-ai-ml (`build_azureml_model`,
  `register_azureml_model`). Aliases are kept as `physai.alias.<alias>` tags (AzureML itself only
  knows the `latest` label).

`models:/NAME/VERSION`, `models:/NAME@ALIAS` resolve on both; `runs:/RUN_ID/PATH` on MLflow and
`azureml:NAME:VERSION` on AzureML. `download_model` verifies each file against the sha256 digests
in lineage.json and publishes the directory only once it is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from physai.core.auth import AZURE_EXTRA_HINT
from physai.core.errors import (
    MissingDependencyError,
    NotFoundError,
    StorageError,
    UriError,
    UserError,
)
from physai.core.logs import get_logger, redact
from physai.core.tracking import (
    Lineage,
    TrackingError,
    ensure_experiment,
    mlflow_client,
    validate_tags,
    write_tags,
)

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Model as AzureModel
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from physai.core.settings import Settings
    from physai.core.uris import ModelsUri

_log = get_logger(__name__)

LINEAGE_FILE = "lineage.json"
MODEL_ARTIFACT_PATH = "model"
REGISTRY_EXPERIMENT = "physai-models"
ALIAS_TAG_PREFIX = "physai.alias."

Backend = Literal["mlflow", "azureml"]


@dataclass(frozen=True)
class RegisteredModel:
    """A model version that `register_model` created."""

    name: str
    version: int
    source: str
    run_id: str | None
    lineage: Lineage
    backend: Backend = "mlflow"

    @property
    def uri(self) -> str:
        """`models:/NAME/VERSION`."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class ResolvedModel:
    """What a `models:/`, `runs:/` or `azureml:` URI points at."""

    uri: str
    source: str
    name: str | None = None
    version: int | None = None
    run_id: str | None = None
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    lineage: Lineage | None = None
    backend: Backend = "mlflow"


def registry_backend(settings: Settings) -> Backend:
    """`azureml` in the azure profile, else `mlflow`."""
    return "azureml" if settings.profile == "azure" else "mlflow"


# -- register -------------------------------------------------------------------------------------


def register_model(
    model_dir: str | Path,
    name: str,
    lineage: Lineage | Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    experiment: str = REGISTRY_EXPERIMENT,
) -> RegisteredModel:
    """Register the files of `model_dir` as a new version of model `name`, with lineage.

    lineage.json (datasets and their digests, run id, code version, file digests and any other
    key given) is stored beside the files and as `physai.*` tags. The model is created if new.
    """
    from physai.core.settings import settings_or_default

    settings = settings_or_default(settings)
    if registry_backend(settings) == "azureml":
        return register_azureml_model(
            model_dir,
            name,
            lineage,
            settings=settings,
            run_id=run_id,
            tags=tags,
            description=description,
        )
    from mlflow.exceptions import MlflowException

    source_dir = _check_model_dir(model_dir)
    check_model_name(name)
    user_tags = validate_tags(tags or {})
    base = Lineage.coerce(lineage)
    if (source_dir / LINEAGE_FILE).exists():
        _log.warning("%s/%s is replaced by the lineage physai records", source_dir, LINEAGE_FILE)
    client = mlflow_client(settings)
    owns_run = run_id is None
    if run_id is None:
        experiment_id = ensure_experiment(client, experiment)
        run = client.create_run(
            experiment_id, run_name=f"register-{name}", tags={"physai.kind": "model-registration"}
        )
        run_id = str(run.info.run_id)
    else:
        _get_run(client, run_id)
    status = "FAILED"
    try:
        record = base.with_defaults(run_id=run_id).model_copy(
            update={"files": hash_files(source_dir)}
        )
        lineage_tags = record.to_tags()
        artifact_path = _free_artifact_path(client, run_id, MODEL_ARTIFACT_PATH)
        client.log_artifacts(run_id, str(source_dir), artifact_path)
        with tempfile.TemporaryDirectory(prefix="physai-lineage-") as tmp:
            lineage_file = Path(tmp) / LINEAGE_FILE
            _write_lineage(lineage_file, record)
            client.log_artifact(run_id, str(lineage_file), artifact_path)
        if owns_run:
            write_tags(client, run_id, lineage_tags)
        _ensure_registered_model(client, name)
        try:
            version = client.create_model_version(
                name,
                source=f"runs:/{run_id}/{artifact_path}",
                run_id=run_id,
                tags={**lineage_tags, **user_tags},
                description=description,
            )
        except MlflowException as exc:
            # Unchained: the store's exception may carry secrets (a SAS in a URL).
            raise TrackingError(
                f"creating a version of model {name!r} failed: {redact(exc.message)}"
            ) from None
        status = "FINISHED"
    finally:
        if owns_run:
            _end_run(client, run_id, status)
    registered = RegisteredModel(
        name=name,
        version=int(version.version),
        source=str(version.source),
        run_id=run_id,
        lineage=record,
    )
    _log.info("registered %s from %s (run %s)", registered.uri, source_dir, run_id)
    return registered


def set_alias(name: str, alias: str, version: int, *, settings: Settings | None = None) -> None:
    """Point `models:/NAME@ALIAS` at `version` (moving the alias if another version had it)."""
    from physai.core.settings import settings_or_default
    from physai.core.uris import parse_uri

    parse_uri(f"models:/{name}@{alias}")
    parse_uri(f"models:/{name}/{version}")
    settings = settings_or_default(settings)
    if registry_backend(settings) == "azureml":
        _azureml_set_alias(azureml_ml_client(settings), name, alias, int(version))
        return
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    _get_version(client, name, version=int(version))
    try:
        client.set_registered_model_alias(name, alias, str(int(version)))
    except MlflowException as exc:
        # Unchained: the store's exception may carry secrets (a SAS in a URL).
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            raise UserError(f"cannot set alias {alias!r}: {redact(exc.message)}") from None
        raise TrackingError(
            f"setting alias {alias!r} on {name!r} failed: {redact(exc.message)}"
        ) from None


# -- resolve and download -------------------------------------------------------------------------


def resolve_model(uri: str, *, settings: Settings | None = None) -> ResolvedModel:
    """Resolve `models:/NAME/VERSION`, `models:/NAME@ALIAS`, `runs:/ID/PATH` or `azureml:N:V`.

    Raises NotFoundError (one line) for an unknown model, version, alias, run or artifact path.
    """
    from physai.core.settings import settings_or_default
    from physai.core.uris import AzureMLUri, ModelsUri, RunsUri, parse_uri

    parsed = parse_uri(uri)
    settings = settings_or_default(settings)
    backend = registry_backend(settings)
    if isinstance(parsed, ModelsUri):
        if backend == "azureml":
            return _azureml_resolve(azureml_ml_client(settings), parsed.name, parsed, str(parsed))
        return _mlflow_resolve_model(mlflow_client(settings), parsed)
    if isinstance(parsed, RunsUri):
        # In the azure profile this goes through the workspace's MLflow endpoint.
        return _mlflow_resolve_run(mlflow_client(settings), parsed.run_id, parsed.path)
    if isinstance(parsed, AzureMLUri):
        if backend != "azureml":
            raise UserError(f"{uri} is an AzureML asset: use the azure profile (--profile azure)")
        return _azureml_resolve(azureml_ml_client(settings), parsed.name, parsed, str(parsed))
    raise UriError(
        f"{uri!r} is not a model URI: use models:/NAME/VERSION, models:/NAME@ALIAS or "
        "runs:/RUN_ID/PATH"
    )


def download_model(uri: str, dest: str | Path, *, settings: Settings | None = None) -> Path:
    """Download the model `uri` names into directory `dest` (absent or empty); return `dest`.

    `dest` gets the model files and lineage.json (written from the run's tags when the artifacts
    carry none). Files are checked against the digests in lineage.json; nothing is left at
    `dest` if the download or the check fails.
    """
    from physai.core.settings import settings_or_default

    settings = settings_or_default(settings)
    resolved = resolve_model(uri, settings=settings)
    target = Path(dest).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} already exists and is not an empty directory: choose another")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        if resolved.backend == "azureml":
            assert resolved.name is not None and resolved.version is not None
            root = _azureml_download(azureml_ml_client(settings), resolved, staging / "download")
        else:
            root = _mlflow_download(settings, resolved, staging / "download")
        if root.is_file():
            (staging / "files").mkdir()
            root = Path(shutil.move(root, staging / "files" / root.name))
            root = root.parent
        lineage_path = root / LINEAGE_FILE
        if lineage_path.is_file():
            _verify_files(root, _read_lineage(lineage_path), uri)
        else:
            fallback = resolved.lineage or Lineage(run_id=resolved.run_id)
            _write_lineage(lineage_path, fallback)
        if target.exists():
            target.rmdir()
        os.replace(root, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log.info("downloaded %s to %s", uri, target)
    return target


# -- MLflow backend -------------------------------------------------------------------------------


def _mlflow_resolve_model(client: MlflowClient, parsed: ModelsUri) -> ResolvedModel:
    version = _get_version(client, parsed.name, version=parsed.version, alias=parsed.alias)
    tags = {str(k): str(v) for k, v in (version.tags or {}).items()}
    number = int(version.version)
    return ResolvedModel(
        uri=str(parsed),
        source=str(client.get_model_version_download_uri(parsed.name, str(number))),
        name=parsed.name,
        version=number,
        run_id=version.run_id or None,
        aliases=tuple(version.aliases or ()),
        tags=tags,
        lineage=Lineage.from_tags(tags),
    )


def _mlflow_resolve_run(client: MlflowClient, run_id: str, path: str) -> ResolvedModel:
    run = _get_run(client, run_id)
    if path:
        parent = path.rsplit("/", 1)[0] if "/" in path else None
        listed = {str(f.path) for f in client.list_artifacts(run_id, parent)}
        if path not in listed:
            raise NotFoundError(
                f"run {run_id} has no artifact {path!r} (it has: "
                f"{', '.join(sorted(listed)) or 'none'})"
            )
    tags = {str(k): str(v) for k, v in run.data.tags.items()}
    lineage = (Lineage.from_tags(tags) or Lineage()).with_defaults(run_id=run_id, code=False)
    uri = f"runs:/{run_id}/{path}".rstrip("/")
    return ResolvedModel(uri=uri, source=uri, run_id=run_id, tags=tags, lineage=lineage)


def _mlflow_download(settings: Settings, resolved: ResolvedModel, where: Path) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from physai.core.tracking import tracking_uri

    where.mkdir(parents=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=resolved.source, dst_path=str(where), tracking_uri=tracking_uri(settings)
        )
    except Exception as exc:  # artifact stores (AzureML's included) raise their own errors
        text = exc.message if isinstance(exc, MlflowException) else _error_text(exc)
        # Unchained: the exception may carry the artifact URL with its SAS.
        raise StorageError(f"downloading {resolved.uri} failed: {redact(text)}") from None
    return Path(local)


def _get_run(client: MlflowClient, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if _not_found(exc):
            raise NotFoundError(
                f"run {run_id!r} does not exist in {redact(str(client.tracking_uri))}"
            ) from None
        raise


def _get_version(
    client: MlflowClient, name: str, *, version: int | None = None, alias: str | None = None
) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        assert alias is not None
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if not _not_found(exc) and exc.error_code != "INVALID_PARAMETER_VALUE":
            raise
    # Say exactly what is missing: the model, the version or the alias.
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            raise NotFoundError(
                f"no registered model named {name!r} in {redact(str(client.tracking_uri))}"
            ) from None
        raise
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    if version is not None:
        raise NotFoundError(
            f"model {name!r} has no version {version} (versions: "
            f"{', '.join(map(str, versions)) or 'none'})"
        )
    if alias == "latest" and versions:
        return client.get_model_version(name, str(versions[-1]))
    aliases = sorted((getattr(model, "aliases", None) or {}).keys())
    raise NotFoundError(
        f"model {name!r} has no alias {alias!r} (aliases: {', '.join(aliases) or 'none'})"
    )


def _not_found(exc: Any) -> bool:
    return getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return
    except MlflowException as exc:
        if not _not_found(exc):
            raise
    try:
        client.create_registered_model(name, tags={"physai.registered_by": "physai"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another process created it: fine
            raise


def _free_artifact_path(client: MlflowClient, run_id: str, base: str) -> str:
    taken = {str(f.path) for f in client.list_artifacts(run_id)}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _end_run(client: MlflowClient, run_id: str, status: str) -> None:
    """End the run physai created; a failure is logged, never raised over the real outcome."""
    try:
        client.set_terminated(run_id, status=status)
    except Exception as exc:
        _log.warning("could not end run %s as %s: %s", run_id, status, redact(str(exc)))


# -- AzureML backend ------------------------------------------------------------------------------


def azureml_ml_client(settings: Settings) -> MLClient:
    """An azure-ai-ml `MLClient` for the model registry of the workspace in `settings`."""
    from physai.core.auth import ml_client

    return ml_client(settings, "the AzureML model registry")


def build_azureml_model(
    model_dir: str | Path,
    name: str,
    lineage: Lineage | Mapping[str, Any] | None,
    *,
    staging_dir: str | Path,
    version: int | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    run_id: str | None = None,
) -> AzureModel:
    """The AzureML `Model` entity for `model_dir`, validated offline.

    The files are staged (hard links where possible) under `staging_dir` with lineage.json beside
    them, since AzureML uploads a directory as it is. Tags are the lineage's `physai.*` tags plus
    `tags`. `version=None` lets AzureML assign the next version.
    """
    entity, _ = _build_azureml_model(
        model_dir,
        name,
        lineage,
        staging_dir=staging_dir,
        version=version,
        tags=tags,
        description=description,
        run_id=run_id,
    )
    return entity


def _build_azureml_model(
    model_dir: str | Path,
    name: str,
    lineage: Lineage | Mapping[str, Any] | None,
    *,
    staging_dir: str | Path,
    version: int | None,
    tags: Mapping[str, Any] | None,
    description: str | None,
    run_id: str | None,
) -> tuple[AzureModel, Lineage]:
    """`build_azureml_model`, also returning the lineage recorded in lineage.json."""
    from physai.core.uris import parse_uri

    source_dir = _check_model_dir(model_dir)
    check_model_name(name)
    if version is not None:
        parse_uri(f"azureml:{name}:{int(version)}")
    user_tags = validate_tags(tags or {})
    try:
        from azure.ai.ml.entities import Model
    except ImportError:
        raise MissingDependencyError("azure-ai-ml", AZURE_EXTRA_HINT) from None
    record = (
        Lineage.coerce(lineage)
        .with_defaults(run_id=run_id)
        .model_copy(update={"files": hash_files(source_dir)})
    )
    staged = Path(staging_dir) / source_dir.name
    if staged.exists():
        raise UserError(f"staging directory {staged} already exists")
    shutil.copytree(source_dir, staged, copy_function=_link_or_copy)
    (staged / LINEAGE_FILE).unlink(missing_ok=True)  # a hard link: never write through it
    _write_lineage(staged / LINEAGE_FILE, record)
    entity = Model(
        path=str(staged),
        name=name,
        version=None if version is None else str(int(version)),
        type="custom_model",
        tags={**record.to_tags(), **user_tags},
        description=description or f"{name}: registered by physai from {source_dir.name}",
    )
    try:
        entity._to_dict()  # the SDK's marshmallow schema: what create_or_update will send
    except Exception as exc:
        raise UserError(f"AzureML model {name!r} is invalid: {exc}") from None
    return entity, record


def register_azureml_model(
    model_dir: str | Path,
    name: str,
    lineage: Lineage | Mapping[str, Any] | None = None,
    *,
    settings: Settings,
    run_id: str | None = None,
    version: int | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> RegisteredModel:
    """Register `model_dir` in the AzureML workspace's model registry (uploads the files)."""
    ml_client = azureml_ml_client(settings)
    with tempfile.TemporaryDirectory(prefix="physai-azureml-model-") as tmp:
        entity, record = _build_azureml_model(
            model_dir,
            name,
            lineage,
            staging_dir=tmp,
            version=version,
            tags=tags,
            description=description,
            run_id=run_id,
        )
        created = _azureml_save(ml_client, entity)
    return RegisteredModel(
        name=name,
        version=int(str(created.version)),
        source=str(created.path),
        run_id=run_id,
        lineage=record,
        backend="azureml",
    )


def pick_aliased_version(models: Iterable[AzureModel], alias: str) -> AzureModel | None:
    """The highest version among `models` tagged `physai.alias.<alias>`, or None."""
    key = f"{ALIAS_TAG_PREFIX}{alias}"
    tagged = [m for m in models if (m.tags or {}).get(key) == "true"]
    return max(tagged, key=lambda m: _version_number(m.version), default=None)


def _azureml_set_alias(ml_client: MLClient, name: str, alias: str, version: int) -> None:
    key = f"{ALIAS_TAG_PREFIX}{alias}"
    target = _azureml_get(ml_client, name, version=str(version))
    for model in ml_client.models.list(name=name):
        if (model.tags or {}).get(key) == "true" and str(model.version) != str(version):
            model.tags.pop(key, None)
            _azureml_save(ml_client, model)
    target.tags = {**(target.tags or {}), key: "true"}
    _azureml_save(ml_client, target)


def _azureml_get(
    ml_client: MLClient, name: str, *, version: str | None = None, label: str | None = None
) -> AzureModel:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        model: AzureModel = ml_client.models.get(name, version=version, label=label)
    except ResourceNotFoundError:
        what = f"version {version}" if version else f"label {label!r}"
        raise NotFoundError(f"AzureML model {name!r} has no {what} (or does not exist)") from None
    return model


def _azureml_resolve(ml_client: MLClient, name: str, parsed: Any, uri: str) -> ResolvedModel:
    alias = getattr(parsed, "alias", None)
    if alias is None:
        model = _azureml_get(ml_client, name, version=str(parsed.version))
    elif alias == "latest":
        model = _azureml_get(ml_client, name, label="latest")
    else:
        found = pick_aliased_version(ml_client.models.list(name=name), alias)
        if found is None:
            raise NotFoundError(f"AzureML model {name!r} has no alias {alias!r}")
        model = found
    tags = {str(k): str(v) for k, v in (model.tags or {}).items()}
    lineage = Lineage.from_tags(tags)
    return ResolvedModel(
        uri=uri,
        source=str(model.path),
        name=name,
        version=_version_number(model.version),
        run_id=lineage.run_id if lineage else None,
        aliases=tuple(
            sorted(k.removeprefix(ALIAS_TAG_PREFIX) for k in tags if k.startswith(ALIAS_TAG_PREFIX))
        ),
        tags=tags,
        lineage=lineage,
        backend="azureml",
    )


def _azureml_save(ml_client: MLClient, model: AzureModel) -> AzureModel:
    """`models.create_or_update`, its errors redacted and unchained (uploads go over SAS URLs)."""
    try:
        saved: AzureModel = ml_client.models.create_or_update(model)
        return saved
    except Exception as exc:
        raise StorageError(
            f"saving AzureML model {model.name!r} failed: {_error_text(exc)}"
        ) from None


def _azureml_download(ml_client: MLClient, resolved: ResolvedModel, where: Path) -> Path:
    assert resolved.name is not None
    try:
        ml_client.models.download(resolved.name, str(resolved.version), download_path=str(where))
    except Exception as exc:
        # Unchained: the SDK's errors may carry the blob URL with its SAS.
        raise StorageError(f"downloading {resolved.uri} failed: {_error_text(exc)}") from None
    # azure-ai-ml writes <where>/<name>/<last segment of the asset path>/... for a folder.
    root = where / resolved.name
    nested = root / resolved.source.rstrip("/").rsplit("/", 1)[-1]
    return nested if nested.is_dir() else root


def _version_number(version: Any) -> int:
    try:
        return int(str(version))
    except ValueError:
        raise UserError(f"model version {version!r} is not a number") from None


# -- shared helpers -------------------------------------------------------------------------------


def hash_files(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory` (POSIX relative paths), lineage.json excluded.

    Hashed by `physai.core.storage.compute_manifest`, so physai's storage bookkeeping files
    (publish marker, partial copies) are left out; a manifest.json is a model file here.
    """
    from physai.core.storage import MANIFEST_NAME, compute_manifest, resolve
    from physai.core.storage.manifest import hash_file

    manifest = compute_manifest(str(directory))
    if (directory / MANIFEST_NAME).is_file():  # the storage manifest never lists itself
        manifest[MANIFEST_NAME] = hash_file(resolve(str(directory / MANIFEST_NAME)))
    return {rel: entry.sha256 for rel, entry in sorted(manifest.items()) if rel != LINEAGE_FILE}


def _verify_files(root: Path, lineage: Lineage, uri: str) -> None:
    """Check each file lineage.json lists against its sha256 (StorageError on a mismatch)."""
    from physai.core.storage import resolve
    from physai.core.storage.manifest import hash_file

    location = resolve(str(root))
    for rel, digest in lineage.files.items():
        try:
            child = location.child(rel)
        except UriError:
            raise StorageError(
                f"{uri}: lineage.json lists {rel!r}, not a path in the model"
            ) from None
        if not Path(child.path).is_file():
            raise StorageError(f"{uri}: file {rel} listed in lineage.json is missing")
        if hash_file(child).sha256 != digest:
            raise StorageError(f"{uri}: file {rel} does not match its sha256 in lineage.json")


def _write_lineage(path: Path, lineage: Lineage) -> None:
    path.write_text(
        json.dumps(lineage.to_json_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _read_lineage(path: Path) -> Lineage:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StorageError(f"{path} is not valid JSON: {exc}") from None
    return Lineage.coerce(data)


def _check_model_dir(model_dir: str | Path) -> Path:
    path = Path(model_dir).expanduser()
    if not path.exists():
        raise UserError(f"model directory {path} does not exist")
    if not path.is_dir():
        raise UserError(f"{path} is a file: register the directory that holds the model files")
    if not any(p.is_file() and p.name != LINEAGE_FILE for p in path.rglob("*")):
        raise UserError(f"model directory {path} holds no files")
    return path.resolve()


def check_model_name(name: str) -> None:
    """UserError unless `name` is a registered-model name (letters, digits, `.`, `_`, `-`)."""
    from physai.core.uris import parse_uri

    try:
        parse_uri(f"models:/{name}/1")
    except UriError:
        raise UserError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        ) from None


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _error_text(exc: BaseException) -> str:
    """`Type: message` of an exception from an SDK, redacted."""
    return redact(f"{type(exc).__name__}: {exc}")
