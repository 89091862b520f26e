"""physai-training imports on its own (its CLI group is tested in core); the OCI model carrier
(`physai.training.package`) and the inference image (training/docker/).

The layout checks below are written from the OCI image-spec's rules (image-layout.md,
manifest.md, config.md, descriptor.md): no pip package ships the spec's JSON schemas. Where
Debian's golang-github-opencontainers-image-spec-dev is installed, its official schemas are
used too, and skopeo and umoci, when installed, must read what we wrote."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import types
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import physai.training
from physai.core.errors import UserError
from physai.training.package import (
    DEFAULT_PLATFORM,
    LABEL_PREFIX,
    POLICY_ROOT,
    PackageResult,
    package_policy,
)
from physai.training.policy_card import (
    CARD_NAME,
    PolicyCard,
    PolicyFile,
    PolicySource,
    TensorSpec,
    sha256_file,
)


def test_package_has_a_version() -> None:
    assert physai.training.__version__.count(".") >= 2


# -- fixtures and an independent reader of OCI layouts --------------------------------------

NAME, VERSION = "policies/ppo-pendulum", "1.0.0"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MARKER = ".physai-published.json"
SCHEMAS = Path("/usr/share/gocode/src/github.com/opencontainers/image-spec/schema")
REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "training" / "docker"


def make_policy(root: Path) -> Path:
    """A policy folder with two small files (one in a subfolder) and a valid card."""
    folder = root / "export"
    (folder / "ts").mkdir(parents=True)
    (folder / "policy.onnx").write_bytes(bytes(range(256)) * 40)
    (folder / "ts" / "policy.pt").write_bytes(b"torchscript archive " * 50)
    card = PolicyCard(
        name="ppo-pendulum",
        policy="mlp_actor",
        inputs=[TensorSpec(name="obs", shape=[-1, 3])],
        outputs=[TensorSpec(name="actions", shape=[-1, 1])],
        source=PolicySource(kind="skrl", checkpoint="runs/ppo/ckpt.pt", run="runs:/abc"),
        files={
            "onnx": PolicyFile(path="policy.onnx", sha256=sha256_file(folder / "policy.onnx")),
            "torchscript": PolicyFile(
                path="ts/policy.pt", sha256=sha256_file(folder / "ts" / "policy.pt")
            ),
        },
    )
    (folder / CARD_NAME).write_text(card.to_json())
    return folder


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return make_policy(tmp_path)


def dir_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def tar_files(path: Path) -> dict[str, bytes]:
    files = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            assert not member.name.startswith("/") and ".." not in member.name.split("/")
            if member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                files[member.name] = handle.read()
            else:
                assert member.isdir(), member.name
    return files


@dataclass
class Layout:
    index: dict[str, Any]
    manifest: dict[str, Any]
    config: dict[str, Any]
    layer: bytes  # the uncompressed layer tar
    manifest_bytes: bytes


def check_layout(files: dict[str, bytes]) -> Layout:
    """Every rule of an image layout with one tagged image manifest, from the image-spec."""
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    others = {n for n in files if not n.startswith("blobs/")} - {"oci-layout", "index.json"}
    assert others <= {MARKER}, others
    blobs: dict[str, bytes] = {}
    for name, data in files.items():
        if name.startswith("blobs/"):
            _, algorithm, encoded = name.split("/")
            assert algorithm == "sha256" and re.fullmatch(r"[0-9a-f]{64}", encoded), name
            assert hashlib.sha256(data).hexdigest() == encoded, f"{name} is not its sha256"
            blobs[f"sha256:{encoded}"] = data
    used: set[str] = set()

    def fetch(descriptor: dict[str, Any], *media_types: str) -> bytes:
        assert descriptor["mediaType"] in media_types
        data = blobs[descriptor["digest"]]
        assert len(data) == descriptor["size"] and isinstance(descriptor["size"], int)
        used.add(descriptor["digest"])
        return data

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == INDEX
    (entry,) = index["manifests"]
    manifest_bytes = fetch(entry, MANIFEST)
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST
    config = json.loads(fetch(manifest["config"], CONFIG))
    (layer_descriptor,) = manifest["layers"]
    layer = fetch(layer_descriptor, LAYER_GZIP, LAYER_TAR)
    if layer_descriptor["mediaType"] == LAYER_GZIP:
        layer = gzip.decompress(layer)
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()],
    }
    assert used == set(blobs), "a blob no descriptor references"
    platform = {k: config[k] for k in ("architecture", "os", "variant") if k in config}
    assert entry["platform"] == platform and config["os"] and config["architecture"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"]
    return Layout(index, manifest, config, layer, manifest_bytes)


def layer_members(layer: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        out = []
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            out.append((member, handle.read() if handle else None))
        return out


# -- the layout ------------------------------------------------------------------------------


def test_package_policy_writes_an_oci_image_layout(policy: Path, tmp_path: Path) -> None:
    result = package_policy(policy, tmp_path / "carrier", name=NAME, version=VERSION)
    assert isinstance(result, PackageResult) and not result.tar
    files = dir_files(tmp_path / "carrier")
    layout = check_layout(files)
    entry = layout.index["manifests"][0]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": VERSION}
    assert entry["digest"] == result.manifest_digest and entry["size"] == result.manifest_size
    assert layout.manifest["config"]["digest"] == result.config_digest
    assert layout.manifest["layers"][0]["digest"] == result.layer_digest
    assert layout.manifest["layers"][0]["mediaType"] == LAYER_GZIP == result.layer_media_type
    assert layout.config["rootfs"]["diff_ids"] == [result.layer_diff_id]
    assert f"{layout.config['os']}/{layout.config['architecture']}" == DEFAULT_PLATFORM
    assert "manifest.json" not in files  # docker load would read it

    card = PolicyCard.read(policy)
    labels = layout.config["config"]["Labels"]
    assert labels == layout.manifest["annotations"] == dict(result.labels)
    assert labels["org.opencontainers.image.title"] == NAME
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
    assert layout.config["created"] == result.created == "1970-01-01T00:00:00Z"
    assert labels[f"{LABEL_PREFIX}.path"] == POLICY_ROOT == "/policy"
    assert labels[f"{LABEL_PREFIX}.source.run"] == "runs:/abc"
    for fmt, file in card.files.items():
        assert labels[f"{LABEL_PREFIX}.sha256.{fmt}"] == file.sha256
        assert labels[f"{LABEL_PREFIX}.file.{fmt}"] == f"/policy/{file.path}"
    assert result.to_dict()["files"] == list(result.files)
    json.dumps(result.to_dict())


def test_the_layer_holds_exactly_the_policy_files(policy: Path, tmp_path: Path) -> None:
    (policy / "notes.txt").write_text("not listed by the card: not packaged")
    result = package_policy(policy, tmp_path / "carrier", name=NAME, version=VERSION)
    layout = check_layout(dir_files(tmp_path / "carrier"))
    members = layer_members(layout.layer)
    names = [m.name for m, _ in members]
    assert names == [
        "policy",
        "policy/policy.json",
        "policy/policy.onnx",
        "policy/ts",
        "policy/ts/policy.pt",
    ]
    assert result.files == ("/policy/policy.json", "/policy/policy.onnx", "/policy/ts/policy.pt")
    assert layout.layer[:8] == b"policy/\0"  # a directory's header name ends with '/'
    for member, data in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 0
        assert member.mode == (0o755 if member.isdir() else 0o644)
        if data is not None:
            assert data == (policy / member.name.removeprefix("policy/")).read_bytes()


def test_same_inputs_give_the_same_digests(
    policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = package_policy(policy, tmp_path / "a", name=NAME, version=VERSION)
    second = package_policy(policy, tmp_path / "b", name=NAME, version=VERSION)
    assert first.manifest_digest == second.manifest_digest
    assert dir_files(tmp_path / "a").keys() == dir_files(tmp_path / "b").keys()
    for name, data in dir_files(tmp_path / "a").items():
        if name != MARKER:
            assert dir_files(tmp_path / "b")[name] == data, name

    other = package_policy(policy, tmp_path / "e", name=NAME, version="1.0.1")
    assert other.layer_digest == first.layer_digest
    assert other.manifest_digest != first.manifest_digest

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    dated = package_policy(policy, tmp_path / "c", name=NAME, version=VERSION)
    assert dated.created == "2026-01-01T00:00:00Z"
    assert dated.manifest_digest != first.manifest_digest
    layout = check_layout(dir_files(tmp_path / "c"))
    assert {m.mtime for m, _ in layer_members(layout.layer)} == {1767225600}
    explicit = package_policy(
        policy,
        tmp_path / "d",
        name=NAME,
        version=VERSION,
        created=datetime(2026, 1, 1, 1, 0, tzinfo=UTC),
    )
    assert explicit.created == "2026-01-01T01:00:00Z"


def test_the_tar_form_holds_the_same_layout(policy: Path, tmp_path: Path) -> None:
    folder = package_policy(policy, tmp_path / "carrier", name=NAME, version=VERSION)
    archived = package_policy(
        policy, tmp_path / "carrier.tar", name=NAME, version=VERSION, tar=True
    )
    assert archived.tar and archived.manifest_digest == folder.manifest_digest
    inside = tar_files(tmp_path / "carrier.tar")
    check_layout(inside)
    expected = {k: v for k, v in dir_files(tmp_path / "carrier").items() if k != MARKER}
    assert inside == expected
    with tarfile.open(tmp_path / "carrier.tar") as archive:
        assert archive.getnames()[:2] == ["blobs", "blobs/sha256"]
        assert {m.mtime for m in archive.getmembers()} == {0}
    again = package_policy(policy, tmp_path / "again.tar", name=NAME, version=VERSION, tar=True)
    assert again.manifest_digest == archived.manifest_digest
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "carrier.tar").read_bytes()


def test_uncompressed_layer_and_other_platform(policy: Path, tmp_path: Path) -> None:
    result = package_policy(
        policy,
        tmp_path / "carrier",
        name=NAME,
        version="1.0.0+build.7",
        tag="1.0.0-build.7",
        compress=False,
        platform="linux/arm64/v8",
        labels={"org.opencontainers.image.source": "https://example.invalid/physai"},
    )
    layout = check_layout(dir_files(tmp_path / "carrier"))
    assert result.layer_media_type == LAYER_TAR and result.layer_digest == result.layer_diff_id
    assert (layout.config["architecture"], layout.config["variant"]) == ("arm64", "v8")
    ref = layout.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    assert ref == "1.0.0-build.7"
    assert layout.config["config"]["Labels"]["org.opencontainers.image.version"] == "1.0.0+build.7"
    assert "org.opencontainers.image.source" in layout.manifest["annotations"]


def test_a_storage_url_output(policy: Path) -> None:
    from physai.core.storage import exists_published, read_bytes, walk_files

    url = "memory://carriers/test-package/ppo"
    result = package_policy(policy, url, name=NAME, version=VERSION)
    assert exists_published(url)
    files = {n: read_bytes(f"{url}/{n}") for n in walk_files(url)}
    assert check_layout(files).manifest_bytes and result.path == url
    package_policy(policy, url + ".tar", name=NAME, version=VERSION, tar=True)
    assert len(read_bytes(url + ".tar")) % 10240 == 0


def test_the_checker_catches_a_broken_layout(policy: Path, tmp_path: Path) -> None:
    package_policy(policy, tmp_path / "carrier", name=NAME, version=VERSION)
    files = dir_files(tmp_path / "carrier")
    blob = next(n for n in files if n.startswith("blobs/"))
    with pytest.raises(AssertionError):
        check_layout(files | {blob: files[blob] + b" "})
    with pytest.raises(AssertionError):
        check_layout(files | {"blobs/sha256/" + "0" * 64: b""})


# -- refusals: one clear line, nothing written ----------------------------------------------


def assert_nothing_written(parent: Path, before: set[str]) -> None:
    assert {p.name for p in parent.iterdir()} == before  # no output, no hidden leftovers


@pytest.mark.parametrize("tar", [False, True])
def test_a_tampered_policy_file_is_refused(policy: Path, tmp_path: Path, tar: bool) -> None:
    (policy / "ts" / "policy.pt").write_bytes(b"tampered")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match=r"torchscript file .*policy\.pt does not match the sha256"):
        package_policy(policy, out / "carrier", name=NAME, version=VERSION, tar=tar)
    assert_nothing_written(out, set())


@pytest.mark.parametrize("tar", [False, True])
def test_a_file_changed_after_verification_is_refused(
    policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tar: bool
) -> None:
    (policy / "policy.onnx").write_bytes(b"x" * (256 * 40))  # same size, other bytes
    monkeypatch.setattr(PolicyCard, "verify_files", lambda self, folder: None)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match="changed while it was being packaged"):
        package_policy(policy, out / "carrier", name=NAME, version=VERSION, tar=tar)
    assert_nothing_written(out, set())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Policies/PPO"}, "not a valid repository name"),
        ({"version": "1.0.0+build"}, "not a valid image tag"),
        ({"tag": "-x"}, "not a valid image tag"),
        ({"version": " "}, "version is empty"),
        ({"platform": "amd64"}, "OS/ARCH"),
        ({"created": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"labels": {"org.opencontainers.image.title": "x"}}, "set by packaging itself"),
    ],
)
def test_bad_arguments_are_refused(
    policy: Path, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"name": NAME, "version": VERSION} | kwargs
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match=message):
        package_policy(policy, out / "carrier", **args)
    assert_nothing_written(out, set())


def test_bad_policy_folders_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match="does not exist: export the policy first"):
        package_policy(tmp_path / "nothing", out / "c", name=NAME, version=VERSION)
    policy = make_policy(tmp_path)
    card = PolicyCard.read(policy)
    (tmp_path / "outside.onnx").write_bytes(b"outside")
    escaping = card.model_copy(
        update={
            "files": {
                "onnx": PolicyFile(
                    path="../outside.onnx", sha256=sha256_file(tmp_path / "outside.onnx")
                )
            }
        }
    )
    (policy / CARD_NAME).write_text(escaping.to_json())
    with pytest.raises(UserError, match="not a file below the card's folder"):
        package_policy(policy, out / "c", name=NAME, version=VERSION)
    assert_nothing_written(out, set())


def test_an_existing_output_is_kept_unless_overwritten(policy: Path, tmp_path: Path) -> None:
    first = package_policy(policy, tmp_path / "carrier", name=NAME, version=VERSION)
    (tmp_path / "carrier.tar").write_bytes(b"old")
    for tar, target in ((False, "carrier"), (True, "carrier.tar")):
        with pytest.raises(UserError, match="exists: choose another output or overwrite it"):
            package_policy(policy, tmp_path / target, name=NAME, version="2.0.0", tar=tar)
    assert (tmp_path / "carrier.tar").read_bytes() == b"old"
    assert (
        check_layout(dir_files(tmp_path / "carrier")).manifest["annotations"][
            "org.opencontainers.image.version"
        ]
        == VERSION
    )
    second = package_policy(
        policy, tmp_path / "carrier", name=NAME, version="2.0.0", overwrite=True
    )
    assert second.manifest_digest != first.manifest_digest
    assert check_layout(dir_files(tmp_path / "carrier")).index["manifests"][0]["digest"] == (
        second.manifest_digest
    )
    package_policy(
        policy, tmp_path / "carrier.tar", name=NAME, version=VERSION, tar=True, overwrite=True
    )
    check_layout(tar_files(tmp_path / "carrier.tar"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carrier", "carrier.tar", "export"]


# -- official schemas and real OCI tools, where installed -------------------------------------


def schema_validator(name: str) -> Any:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    def retrieve(uri: str) -> Resource[Any]:
        # the spec's schemas $ref each other by file name, under several base ids
        return DRAFT4.create_resource(json.loads((SCHEMAS / uri.rsplit("/", 1)[-1]).read_text()))

    schema = json.loads((SCHEMAS / name).read_text())
    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    return jsonschema.Draft4Validator(schema, registry=registry)


@pytest.mark.skipif(not SCHEMAS.is_dir(), reason="the image-spec schemas are not installed")
def test_documents_match_the_official_image_spec_schemas(policy: Path, tmp_path: Path) -> None:
    package_policy(policy, tmp_path / "carrier", name=NAME, version=VERSION)
    files = dir_files(tmp_path / "carrier")
    layout = check_layout(files)
    documents = {
        "image-layout-schema.json": json.loads(files["oci-layout"]),
        "image-index-schema.json": layout.index,
        "image-manifest-schema.json": layout.manifest,
        "config-schema.json": layout.config,
        "content-descriptor.json": layout.manifest["layers"][0],
    }
    for schema, document in documents.items():
        errors = [e.message for e in schema_validator(schema).iter_errors(document)]
        assert errors == [], schema
    broken = layout.manifest | {"layers": [], "schemaVersion": 1}
    assert len(list(schema_validator("image-manifest-schema.json").iter_errors(broken))) == 2


def run_tool(*args: str | Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_reads_both_forms(policy: Path, tmp_path: Path) -> None:
    result = package_policy(policy, tmp_path / "carrier", name=NAME, version=VERSION)
    package_policy(policy, tmp_path / "carrier.tar", name=NAME, version=VERSION, tar=True)
    for ref in (
        f"oci:{tmp_path}/carrier:{VERSION}",
        f"oci-archive:{tmp_path}/carrier.tar:{VERSION}",
    ):
        raw = run_tool("skopeo", "inspect", "--raw", ref).encode()
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == result.manifest_digest
        info = json.loads(run_tool("skopeo", "inspect", ref))
        assert info["Labels"]["org.opencontainers.image.title"] == NAME
    run_tool(
        "skopeo", "copy", "--quiet", f"oci:{tmp_path}/carrier:{VERSION}", f"dir:{tmp_path}/copy"
    )


@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed")
def test_umoci_unpacks_the_policy(policy: Path, tmp_path: Path) -> None:
    package_policy(policy, tmp_path / "carrier", name=NAME, version=VERSION)
    bundle = tmp_path / "bundle"
    run_tool("umoci", "unpack", "--rootless", "--image", f"{tmp_path}/carrier:{VERSION}", bundle)
    unpacked = dir_files(bundle / "rootfs")
    assert unpacked == {f"policy/{k}": v for k, v in dir_files(policy).items()}


# -- the inference image -----------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending
    return [(w.upper(), rest.strip()) for w, _, rest in (ln.partition(" ") for ln in lines)]


def test_the_inference_dockerfile_has_what_it_needs() -> None:
    text = (DOCKER / "inference.Dockerfile").read_text()
    steps = dockerfile_instructions(text)
    stages = [args for op, args in steps if op == "FROM"]
    assert stages == [
        "${MODEL_IMAGE} AS model",
        "${BASE_IMAGE} AS base",
        "base AS with-model",
        "base AS runtime",  # the last stage: the default target, without a policy
    ]
    args = dict(a.partition("=")[::2] for op, a in steps if op == "ARG")
    assert args["BASE_IMAGE"].startswith("python:3.12-slim")
    assert args["MODEL_IMAGE"] == "scratch" and args["INSTALL"] == "runtime"
    assert args["ORT_PACKAGE"].startswith("onnxruntime==")
    (install,) = [a for op, a in steps if op == "RUN" and "pip install" in a]
    for needed in ("/src/core", "/src/training", '"$ORT_PACKAGE"', "--no-deps", "numpy=="):
        assert needed in install
    lock = (REPO / "uv.lock").read_text()
    for package, version in re.findall(
        r"([a-z][a-z0-9_-]*)(?:\[[^\]]*\])?==([0-9][^\s\"';]*)", text
    ):
        locked = re.search(rf'\nname = "{package.removesuffix("-gpu")}"\nversion = "([^"]+)"', lock)
        assert locked and locked.group(1) == version, f"{package}=={version} is not uv.lock's"

    # the model carrier's files land where the runtime looks, in the with-model stage only
    bake = ("COPY", f"--from=model {POLICY_ROOT} {POLICY_ROOT}")
    assert steps.count(bake) == 1
    assert steps.index(("FROM", "base AS with-model")) < steps.index(bake)
    assert steps.index(bake) < steps.index(("FROM", "base AS runtime"))
    env = " ".join(a for op, a in steps if op == "ENV")
    assert f"PHYSAI_POLICY={POLICY_ROOT}" in env
    user = [a for op, a in steps if op == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    entrypoint = [json.loads(a) for op, a in steps if op == "ENTRYPOINT"]
    assert entrypoint == [["python", "/opt/physai/entrypoint.py"]]
    assert ("COPY", "training/docker/entrypoint.py /opt/physai/entrypoint.py") in steps

    # every COPY source exists and the build's .dockerignore lets it through
    allowed = [
        ln[1:]
        for ln in (DOCKER / "inference.Dockerfile.dockerignore").read_text().splitlines()
        if ln.startswith("!")
    ]
    for op, arguments in steps:
        if op == "COPY" and not arguments.startswith("--from"):
            for source in arguments.split()[:-1]:
                assert (REPO / source).exists(), source
                assert any(source == a or source.startswith(a + "/") for a in allowed), source
    script = (DOCKER / "entrypoint.py").read_text()
    assert "from physai.training.runtime import load_policy" in script


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_passes_the_inference_dockerfile() -> None:
    run_tool("hadolint", DOCKER / "inference.Dockerfile")


def load_entrypoint() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("physai_entrypoint", DOCKER / "entrypoint.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_entrypoint_loads_the_policy_then_runs_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The script's contract, with a stand-in for the runtime (tested in its own file)."""
    calls: list[object] = []

    def fake_load_policy(path: str, *, format: str | None, device: str) -> object:
        calls.append((path, format, device))
        if path == "/missing":
            raise UserError("/missing/policy.json does not exist: export the policy first")
        return "Policy('ppo-pendulum')"

    runtime = types.ModuleType("physai.training.runtime")
    runtime.load_policy = fake_load_policy  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "physai.training.runtime", runtime)
    entry = load_entrypoint()
    monkeypatch.setattr(entry.os, "execvp", lambda file, argv: calls.append(("exec", argv)))
    monkeypatch.delenv("PHYSAI_POLICY", raising=False)
    monkeypatch.setenv("PHYSAI_DEVICE", "cpu")
    monkeypatch.setenv("PHYSAI_FORMAT", "onnx")

    assert entry.main([]) == 0
    assert calls == [("/policy", "onnx", "cpu")]
    assert json.loads(capsys.readouterr().out)["policy"] == "/policy"
    assert entry.main(["python", "-m", "server"]) == 0
    assert calls[-1:] == [("exec", ["python", "-m", "server"])]
    monkeypatch.setenv("PHYSAI_POLICY", "/missing")
    assert entry.main(["python"]) == 2
    assert calls[-1:] == [("/missing", "onnx", "cpu")]
    assert capsys.readouterr().err.strip().startswith("physai inference: /missing")


def test_the_runtime_loads_a_packaged_policy(tmp_path: Path) -> None:
    """End to end where the runtime exists: an ONNX policy, packaged, unpacked, loaded."""
    runtime = pytest.importorskip("physai.training.runtime")
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = tmp_path / "export"
    folder.mkdir()
    weights = numpy_helper.from_array(np.full((3, 1), 0.5, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "w"], ["actions"])],
        "policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", 1])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "policy.onnx")
    card = PolicyCard(
        name="tiny",
        policy="mlp_actor",
        inputs=[TensorSpec(name="obs", shape=[-1, 3])],
        outputs=[TensorSpec(name="actions", shape=[-1, 1])],
        source=PolicySource(kind="skrl", checkpoint="ckpt.pt"),
        files={
            "onnx": PolicyFile(
                path="policy.onnx", sha256=sha256_file(folder / "policy.onnx"), opset=17
            )
        },
    )
    (folder / CARD_NAME).write_text(card.to_json())
    package_policy(folder, tmp_path / "carrier.tar", name="policies/tiny", version="1", tar=True)
    layout = check_layout(tar_files(tmp_path / "carrier.tar"))
    rootfs = tmp_path / "rootfs"
    with tarfile.open(fileobj=io.BytesIO(layout.layer)) as archive:
        archive.extractall(rootfs, filter="data")
    policy = runtime.load_policy(rootfs / "policy")
    actions = policy(np.ones((1, 3), np.float32))
    np.testing.assert_allclose(np.asarray(actions), [[1.5]])
