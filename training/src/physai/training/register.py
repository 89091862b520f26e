"""Register an exported policy folder in the model registry, with its lineage.

    from physai.training.register import register_policy
    registered = register_policy("exports/ppo", "ppo-pendulum", package=packaged,
                                 training_run="runs:/3f2a...", aliases=("staging",))
    registered.uri                                   # 'models:/ppo-pendulum/1'

The folder is checked first (policy.json valid, every file it lists present with its sha256);
then exactly the card and those files are registered through `physai.core.registry.register_model`:
the MLflow model registry in the local profile, the AzureML model registry in the azure profile.
In MLflow the ONNX file is also logged as an MLflow `onnx` flavor model (with a signature from
the card) under `onnx/` of the same run, named by the version's `physai.mlflow.onnx` tag, so
`mlflow.pyfunc.load_model` serves it; the registered version itself stays the physai policy
folder that `load_policy` and `download_model` read. AzureML registers it as a custom model.

Lineage (`policy_lineage`) goes into the version's `physai.*` tags and its lineage.json:
the dataset (URI, and sha256 when given or when it is a physai-published local folder), the
training run (`runs:/...`), the task, the parity result of every format, the package's digests
when a package is given, and the sha256 of policy.json (core adds every file's sha256).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from physai.core.errors import PhysaiError, UriError, UserError
from physai.core.logs import get_logger
from physai.core.tracking import DatasetRef, Lineage
from physai.training.package import LABEL_PREFIX, PackageResult
from physai.training.policy_card import CARD_NAME, PolicyCard, sha256_file

if TYPE_CHECKING:
    from azure.ai.ml.entities import Model as AzureModel

    from physai.core.registry import RegisteredModel
    from physai.core.settings import Settings

_log = get_logger(__name__)

ONNX_FLAVOR_PATH = "onnx"
ONNX_FLAVOR_TAG = "physai.mlflow.onnx"
PackageLike = PackageResult | str | os.PathLike[str]
Reader = Callable[[str], bytes]
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


def register_policy(
    policy_dir: str | os.PathLike[str],
    name: str,
    *,
    package: PackageLike | None = None,
    settings: Settings | None = None,
    aliases: Sequence[str] = (),
    training_run: str | None = None,
    dataset_sha256: str | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    onnx_flavor: bool = True,
) -> RegisteredModel:
    """Register the exported policy in `policy_dir` as a new version of model `name`.

    `package` (a PackageResult, or the path of a package folder or .tar) must hold this very
    policy; its digests join the lineage. `training_run` (`runs:/ID` or an id) defaults to the
    card's `source.run`, or the run of a `runs:/` checkpoint. Each alias is pointed at the new
    version. UserError (one line, nothing registered) for a bad name, alias, folder or package.
    """
    from physai.core.registry import (
        check_model_name,
        register_model,
        registry_backend,
        set_alias,
    )
    from physai.core.settings import settings_or_default

    settings = settings_or_default(settings)
    check_model_name(name)
    for alias in aliases:
        check_alias(name, alias)
    prepared = _prepared(policy_dir, package, training_run, dataset_sha256, settings)
    with prepared as (staged, card, lineage):
        flavor = None
        if onnx_flavor and "onnx" in card.files and registry_backend(settings) == "mlflow":
            flavor = save_onnx_flavor(staged, card, staged.parent / ONNX_FLAVOR_PATH)
        registered = register_model(
            staged,
            name,
            lineage,
            settings=settings,
            tags=tags,
            description=description or _describe(card),
        )
        if flavor is not None:
            _log_flavor(registered, flavor, settings)
    for alias in aliases:
        set_alias(name, alias, registered.version, settings=settings)
    return registered


def build_azureml_policy_model(
    policy_dir: str | os.PathLike[str],
    name: str,
    *,
    staging_dir: str | os.PathLike[str],
    package: PackageLike | None = None,
    training_run: str | None = None,
    dataset_sha256: str | None = None,
    version: int | None = None,
    settings: Settings | None = None,
) -> AzureModel:
    """The AzureML `Model` entity `register_policy` sends in the azure profile, validated offline.

    The policy's files and lineage.json are staged under `staging_dir` (core's
    `build_azureml_model`); nothing is uploaded.
    """
    from physai.core.registry import build_azureml_model, check_model_name
    from physai.core.settings import settings_or_default

    settings = settings_or_default(settings)
    check_model_name(name)
    prepared = _prepared(policy_dir, package, training_run, dataset_sha256, settings)
    with prepared as (staged, card, lineage):
        return build_azureml_model(
            staged,
            name,
            lineage,
            staging_dir=Path(staging_dir),
            version=version,
            description=_describe(card),
        )


@contextlib.contextmanager
def _prepared(
    policy_dir: str | os.PathLike[str],
    package: PackageLike | None,
    training_run: str | None,
    dataset_sha256: str | None,
    settings: Settings,
) -> Iterator[tuple[Path, PolicyCard, Lineage]]:
    """The checked policy staged in a temporary folder, its card and its lineage."""
    folder, card = read_policy(policy_dir)
    packaged = _package(package, card)
    with tempfile.TemporaryDirectory(prefix="physai-register-") as tmp:
        staged = _stage(folder, card, Path(tmp) / "policy")
        lineage = policy_lineage(
            staged,
            card,
            package=packaged,
            training_run=training_run,
            dataset_sha256=dataset_sha256,
            settings=settings,
        )
        yield staged, card, lineage


def _describe(card: PolicyCard) -> str:
    return f"physai policy {card.name} ({card.policy})"


# -- checks ----------------------------------------------------------------------------------


def check_alias(name: str, alias: str) -> None:
    """UserError unless `alias` can name a version of `name` (`latest` and `v<N>` are reserved)."""
    from physai.core.uris import parse_uri

    try:
        parse_uri(f"models:/{name}@{alias}")
    except UriError:
        raise UserError(f"invalid alias {alias!r}: use letters, digits, '_' and '-'") from None
    if _RESERVED_ALIAS.match(alias):
        raise UserError(f"alias {alias!r} is reserved (latest, v<N>): choose another")


def read_policy(policy_dir: str | os.PathLike[str]) -> tuple[Path, PolicyCard]:
    """The folder and its card, every listed file checked against its sha256 (else UserError)."""
    folder = Path(policy_dir).expanduser()
    if folder.is_file() and folder.name == CARD_NAME:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"policy folder {folder} does not exist: export the policy first")
    card = PolicyCard.read(folder)
    if not card.files:
        raise UserError(f"{folder / CARD_NAME} lists no policy file: export the policy again")
    card.verify_files(folder)
    return folder.resolve(), card


# -- lineage ---------------------------------------------------------------------------------


def policy_lineage(
    policy_dir: str | os.PathLike[str],
    card: PolicyCard,
    *,
    package: PackageResult | None = None,
    training_run: str | None = None,
    dataset_sha256: str | None = None,
    settings: Settings | None = None,
) -> Lineage:
    """The lineage of the policy in `policy_dir` (core's Lineage; file digests are core's job).

    `extra` holds flat keys, so each one is its own `physai.extra.<key>` tag a registry search
    can match: `policy.*`, `source.*`, `training_run`, `parity.<format>.*`, `package.*`.
    """
    run_id = _training_run_id(training_run, card)
    extra: dict[str, Any] = {
        "policy.name": card.name,
        "policy.kind": card.policy,
        "policy.format": card.format,
        "policy.sha256": sha256_file(Path(policy_dir) / CARD_NAME),
        "source.kind": card.source.kind,
        "source.checkpoint": card.source.checkpoint,
    }
    if run_id:
        extra["training_run"] = f"runs:/{run_id}"
    for fmt, parity in card.parity.items():
        extra[f"parity.{fmt}.max_abs_error"] = parity.max_abs_error
        extra[f"parity.{fmt}.tolerance"] = parity.tolerance
        extra[f"parity.{fmt}.samples"] = parity.samples
        extra[f"parity.{fmt}.observations"] = parity.observations
    if package is not None:
        extra.update(
            {
                "package.ref": f"{package.name}:{package.tag}",
                "package.manifest_digest": package.manifest_digest,
                "package.config_digest": package.config_digest,
                "package.layer_digest": package.layer_digest,
                "package.media_type": package.layer_media_type,
            }
        )
    datasets = []
    if card.source.dataset:
        digest = dataset_sha256 or _published_digest(card.source.dataset, settings)
        datasets.append(DatasetRef(uri=card.source.dataset, sha256=digest))
    elif dataset_sha256:
        raise UserError("a dataset sha256 was given but policy.json names no dataset")
    return Lineage.coerce(
        {"datasets": datasets, "run_id": run_id, "task": card.source.task, "extra": extra}
    )


def _training_run_id(training_run: str | None, card: PolicyCard) -> str | None:
    """The run id of `training_run` (`runs:/ID` or an id), else of the card's `source.run` or
    `runs:/` checkpoint, else None."""
    from physai.core.uris import RunsUri, parse_uri

    if training_run:
        text = training_run if training_run.startswith("runs:/") else f"runs:/{training_run}"
        try:
            parsed = parse_uri(text)
        except UriError:
            parsed = None
        if not isinstance(parsed, RunsUri):
            raise UserError(f"training run {training_run!r} is not runs:/RUN_ID or a run id")
        return parsed.run_id
    for candidate in (card.source.run, card.source.checkpoint):
        if candidate and candidate.startswith("runs:/"):
            try:
                parsed = parse_uri(candidate)
            except UriError:
                continue
            if isinstance(parsed, RunsUri):
                return parsed.run_id
    return None


def _published_digest(dataset: str, settings: Settings | None) -> str | None:
    """The manifest sha256 of a physai-published local dataset folder, else None."""
    from physai.core.storage import published_info
    from physai.core.uris import LocalPath, parse_uri

    try:
        if not isinstance(parse_uri(dataset), LocalPath):
            return None  # no network call at registration time
        info = published_info(dataset, settings)
    except PhysaiError:
        return None
    digest = (info or {}).get("manifest_sha256")
    return str(digest) if digest else None


# -- packages --------------------------------------------------------------------------------


def read_package(path: str | os.PathLike[str]) -> PackageResult:
    """The PackageResult of a package `physai training package` wrote (layout folder or .tar).

    Reads index.json, the manifest and the config (each checked against its digest); the layer
    is not read. UserError when `path` is not a single-image OCI layout.
    """
    where = Path(path).expanduser()
    if not where.exists():
        raise UserError(f"package {where} does not exist: package the policy first")
    read = _tar_reader(where) if where.is_file() else _folder_reader(where)
    try:
        index = json.loads(read("index.json"))
        (descriptor,) = index["manifests"]
        manifest_bytes = _blob(read, descriptor["digest"])
        manifest = json.loads(manifest_bytes)
        config = json.loads(_blob(read, manifest["config"]["digest"]))
        (layer,) = manifest["layers"]
        labels = {str(k): str(v) for k, v in (manifest.get("annotations") or {}).items()}
        platform = descriptor.get("platform") or {}
        files = sorted(v for k, v in labels.items() if k.startswith(f"{LABEL_PREFIX}.file."))
        return PackageResult(
            path=str(where),
            tar=where.is_file(),
            name=labels["org.opencontainers.image.title"],
            version=labels["org.opencontainers.image.version"],
            tag=descriptor["annotations"]["org.opencontainers.image.ref.name"],
            platform="/".join(
                str(platform[k]) for k in ("os", "architecture", "variant") if platform.get(k)
            ),
            created=str(config.get("created", "")),
            manifest_digest=descriptor["digest"],
            manifest_size=int(descriptor["size"]),
            config_digest=manifest["config"]["digest"],
            layer_digest=layer["digest"],
            layer_diff_id=config["rootfs"]["diff_ids"][0],
            layer_size=int(layer["size"]),
            layer_media_type=layer["mediaType"],
            files=(f"/policy/{CARD_NAME}", *files),
            labels=labels,
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise UserError(
            f"{where} is not a physai policy package ({type(exc).__name__}: {exc}): package "
            "the policy with `physai training package`"
        ) from None


def _folder_reader(folder: Path) -> Reader:
    def read(name: str) -> bytes:
        return (folder / name).read_bytes()

    return _missing_as_key_error(read)


def _tar_reader(file: Path) -> Reader:
    if not tarfile.is_tarfile(file):
        raise UserError(f"{file} is neither a package folder nor an OCI archive (.tar)")

    def read(name: str) -> bytes:
        with tarfile.open(file) as archive:
            member = archive.extractfile(name)
            if member is None:
                raise KeyError(name)
            return member.read()

    return _missing_as_key_error(read)


def _missing_as_key_error(read: Reader) -> Reader:
    def wrapped(name: str) -> bytes:
        try:
            data = read(name)
        except (FileNotFoundError, IsADirectoryError, KeyError):
            raise KeyError(f"no {name}") from None
        return data

    return wrapped


def _blob(read: Reader, digest: str) -> bytes:
    algorithm, _, hex_digest = digest.partition(":")
    data = read(f"blobs/{algorithm}/{hex_digest}")
    if algorithm != "sha256" or hashlib.sha256(data).hexdigest() != hex_digest:
        raise ValueError(f"blob {digest} does not match its digest")
    return data


def _package(package: PackageLike | None, card: PolicyCard) -> PackageResult | None:
    """The package as a PackageResult, checked to hold the policy `card` describes."""
    if package is None:
        return None
    result = package if isinstance(package, PackageResult) else read_package(package)
    packed = {
        k.removeprefix(f"{LABEL_PREFIX}.sha256."): v
        for k, v in result.labels.items()
        if k.startswith(f"{LABEL_PREFIX}.sha256.")
    }
    expected: dict[str, str] = {fmt: entry.sha256 for fmt, entry in card.files.items()}
    if packed != expected:
        differ = sorted(f for f in set(packed) | set(expected) if packed.get(f) != expected.get(f))
        raise UserError(
            f"package {result.path} holds another policy ({', '.join(differ)} differ from "
            f"{CARD_NAME}): package this policy again"
        )
    return result


# -- staging and the MLflow ONNX flavor ------------------------------------------------------


def _stage(folder: Path, card: PolicyCard, dest: Path) -> Path:
    """Hard-link (or copy) policy.json and the files it lists into `dest`, checked again."""
    for relative in (CARD_NAME, *(entry.path for entry in card.files.values())):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            try:
                os.link(folder / relative, target)
            except OSError:  # another filesystem
                shutil.copy2(folder / relative, target)
    card.verify_files(dest)  # what is registered is what was checked
    return dest


def save_onnx_flavor(policy_dir: Path, card: PolicyCard, dest: Path) -> Path:
    """Save the policy's ONNX file as an MLflow `onnx` flavor model at `dest` (a signature from
    the card's inputs and outputs, onnx and onnxruntime as its requirements)."""
    import mlflow.onnx
    import numpy as np
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def schema(specs: Sequence[Any]) -> Schema:
        return Schema([TensorSpec(np.dtype(s.dtype), tuple(s.shape), s.name) for s in specs])

    model = onnx.load(str(policy_dir / card.files["onnx"].path))
    mlflow.onnx.save_model(
        model,
        str(dest),
        signature=ModelSignature(inputs=schema(card.inputs), outputs=schema(card.outputs)),
        pip_requirements=mlflow.onnx.get_default_pip_requirements(),
        save_as_external_data=False,
        metadata={"physai.policy": card.name, "physai.policy.kind": card.policy},
    )
    return dest


def _log_flavor(registered: RegisteredModel, flavor: Path, settings: Settings) -> None:
    """Log the flavor model into the registration run and tag the version with its URI; on
    failure the new version is deleted again (nothing half-registered)."""
    from physai.core.tracking import mlflow_client

    client = mlflow_client(settings)
    uri = f"runs:/{registered.run_id}/{ONNX_FLAVOR_PATH}"
    try:
        client.log_artifacts(str(registered.run_id), str(flavor), ONNX_FLAVOR_PATH)
        client.set_model_version_tag(registered.name, str(registered.version), ONNX_FLAVOR_TAG, uri)
    except Exception:
        client.delete_model_version(registered.name, str(registered.version))
        raise
