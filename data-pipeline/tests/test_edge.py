"""Edge material: ACSA manifests (PVC + IngestSubvolume) and the recorder's systemd unit.

The PVC is checked against the Kubernetes client's own models when `kubernetes` is installed
(it is not a dependency of the workspace: that test skips without it) and structurally always.
The IngestSubvolume has no public schema: its fields are checked against what Microsoft's ACSA
documentation states (see the header of `data-pipeline/iac/acsa/ingest.yaml`). The unit is
checked with `systemd-analyze verify` where systemd is installed, and parsed with configparser.
"""

from __future__ import annotations

import configparser
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from physai.core.cli import app
from physai.core.errors import ConfigError, UserError
from physai.core.settings import load_settings
from physai.data_pipeline.config import RecordingConfig, load_recording_config
from physai.data_pipeline.edge import (
    ACSA_FILE,
    ENV_FILE,
    INGEST_API_VERSION,
    UNIT_FILE,
    AcsaOptions,
    RecorderUnitOptions,
    acsa_manifests,
    acsa_yaml,
    blob_target,
    check_output_dir,
    edge_files,
    example_files,
    recorder_env,
    recorder_unit,
    write_edge_files,
)

IAC = Path(__file__).parents[1] / "iac"
EXAMPLE_CONFIGS = sorted((Path(__file__).parents[1] / "examples" / "configs").glob("*.yaml"))
PVC_SPEC_FIELDS = {
    "accessModes",
    "dataSource",
    "dataSourceRef",
    "resources",
    "selector",
    "storageClassName",
    "volumeAttributesClassName",
    "volumeMode",
    "volumeName",
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PHYSAI_* variable and no physai.toml leak into the settings of a test."""
    import os

    for name in list(os.environ):
        if name.startswith("PHYSAI_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def example_acsa() -> AcsaOptions:
    """The ACSA options the checked-in copies are rendered with."""
    return AcsaOptions(storage_account="physaiexample", container="recordings")


def _docs(text: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert all(isinstance(d, dict) for d in docs)
    return docs


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys keep case
    parser.read_string(text)
    return parser


# -- ACSA manifests -----------------------------------------------------------------------------


def test_manifests_take_account_and_container_from_settings(clean_env: None) -> None:
    settings = load_settings(azure_storage_account="robotdata", azure_storage_container="raw")
    text = acsa_yaml(AcsaOptions(namespace="fleet", size="200Gi"), settings)
    pvc, subvolume = _docs(text)
    assert _docs(text) == acsa_manifests(AcsaOptions(namespace="fleet", size="200Gi"), settings)
    assert pvc["metadata"] == {
        "name": "physai-recordings",
        "namespace": "fleet",
        "labels": {
            "app.kubernetes.io/part-of": "physai",
            "app.kubernetes.io/component": "recorder",
        },
    }
    assert pvc["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert subvolume["spec"]["storageAccountEndpoint"] == "https://robotdata.blob.core.windows.net/"
    assert subvolume["spec"]["containerName"] == "raw"
    assert subvolume["metadata"]["namespace"] == "fleet"
    assert text.startswith("# ACSA cloud-ingest volume") and "\n---\n" in text


def test_options_win_over_settings_and_settings_load_only_when_needed(clean_env: None) -> None:
    options = AcsaOptions(storage_account="edgeacct", container="bags", claim="arm-1-bags")
    endpoint, container = blob_target(options)  # no settings, no physai.toml: nothing needed
    assert (endpoint, container) == ("https://edgeacct.blob.core.windows.net/", "bags")
    sovereign = AcsaOptions(blob_endpoint="https://edgeacct.blob.core.usgovcloudapi.net")
    settings = load_settings(azure_storage_container="raw")
    assert blob_target(sovereign, settings) == (
        "https://edgeacct.blob.core.usgovcloudapi.net/",
        "raw",
    )
    pvc, subvolume = acsa_manifests(options)
    assert subvolume["spec"]["edgevolume"] == pvc["metadata"]["name"] == "arm-1-bags"
    named = AcsaOptions(edge_volume="ev-1", container="bags", storage_account="a1b")
    assert acsa_manifests(named)[1]["spec"]["edgevolume"] == "ev-1"


def test_missing_or_unusable_settings_are_one_line_config_errors(clean_env: None) -> None:
    with pytest.raises(ConfigError, match="PHYSAI_AZURE_STORAGE_ACCOUNT"):
        acsa_manifests(AcsaOptions(container="raw"), load_settings())
    with pytest.raises(ConfigError, match="PHYSAI_AZURE_STORAGE_CONTAINER"):
        acsa_manifests(AcsaOptions(), load_settings(azure_storage_account="robotdata"))
    azurite = load_settings(
        azure_storage_account="devstoreaccount1",
        azure_storage_container="raw",
        azure_blob_endpoint="http://127.0.0.1:10000/devstoreaccount1",
    )
    with pytest.raises(ConfigError, match="https") as caught:
        acsa_manifests(AcsaOptions(), azurite)
    assert "\n" not in caught.value.message


def test_pvc_has_the_fields_kubernetes_defines() -> None:
    pvc, _ = acsa_manifests(example_acsa())
    assert (pvc["apiVersion"], pvc["kind"]) == ("v1", "PersistentVolumeClaim")
    assert set(pvc) == {"apiVersion", "kind", "metadata", "spec"}
    assert DNS_LABEL.match(pvc["metadata"]["name"]) and DNS_LABEL.match(
        pvc["metadata"]["namespace"]
    )
    assert set(pvc["spec"]) <= PVC_SPEC_FIELDS
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert set(pvc["spec"]["resources"]) == {"requests"}
    assert re.fullmatch(
        r"[0-9]+(Ki|Mi|Gi|Ti|Pi|Ei)", pvc["spec"]["resources"]["requests"]["storage"]
    )
    assert pvc["spec"]["storageClassName"] == "cloud-backed-sc"


def test_pvc_round_trips_through_the_kubernetes_client_model() -> None:
    """The client drops keys its model does not know: a round trip that loses one fails."""
    client = pytest.importorskip("kubernetes.client")
    pvc, _ = acsa_manifests(example_acsa())
    api = client.ApiClient()

    def load(data: dict[str, Any]) -> Any:
        text = json.dumps(data)
        if "content_type" in inspect.signature(api.deserialize).parameters:  # client >= 35
            return api.deserialize(text, "V1PersistentVolumeClaim", "application/json")
        return api.deserialize(SimpleNamespace(data=text), "V1PersistentVolumeClaim")

    model = load(pvc)
    assert isinstance(model, client.V1PersistentVolumeClaim)
    assert model.spec.access_modes == ["ReadWriteMany"]
    assert api.sanitize_for_serialization(model) == pvc
    broken = {**pvc, "spec": {**pvc["spec"], "storageClass": "typo"}}
    assert api.sanitize_for_serialization(load(broken)) != broken


def test_ingest_subvolume_has_the_documented_fields() -> None:
    """Fields and values as ACSA's docs state them (extension 2.8.2 and later)."""
    _, sub = acsa_manifests(example_acsa())
    assert (sub["apiVersion"], sub["kind"]) == (INGEST_API_VERSION, "IngestSubvolume")
    assert INGEST_API_VERSION == "arccontainerstorage.azure.net/v1"
    spec = sub["spec"]
    assert set(spec) == {
        "edgevolume",
        "path",
        "authentication",
        "storageAccountEndpoint",
        "containerName",
        "ingest",
        "eviction",
        "onDelete",
    }
    assert spec["authentication"] == {"authType": "MANAGED_IDENTITY"}
    assert not spec["path"].startswith("/")
    assert re.fullmatch(
        r"https://[a-z0-9]{3,24}\.blob\.core\.windows\.net/", spec["storageAccountEndpoint"]
    )
    assert spec["ingest"] == {"order": "oldest-first", "minDelaySec": 60}
    assert spec["eviction"] == {"order": "unordered", "minDelaySec": 300}
    assert spec["onDelete"] == "trigger-immediate-ingest"
    for name in (sub["metadata"]["name"], spec["edgevolume"]):
        assert DNS_LABEL.match(name)
    custom = AcsaOptions(
        storage_account="a1b",
        container="c-1",
        ingest_order="newest-first",
        ingest_min_delay_s=0,
        eviction_order="never",
        eviction_min_delay_s=31_536_000,
        on_delete="abandon",
    )
    spec = acsa_manifests(custom)[1]["spec"]
    assert spec["ingest"] == {"order": "newest-first", "minDelaySec": 0}
    assert spec["eviction"] == {"order": "never", "minDelaySec": 31_536_000}
    assert spec["onDelete"] == "abandon"


BAD_ACSA: list[tuple[dict[str, Any], str]] = [
    ({"namespace": "Physai"}, "DNS-1123"),
    ({"claim": "bags_1"}, "DNS-1123"),
    ({"claim": "-bags"}, "DNS-1123"),
    ({"subvolume": "a" * 64}, "DNS-1123"),
    ({"edge_volume": "ev."}, "DNS-1123"),
    ({"size": "50GB"}, "quantity"),
    ({"size": "0Gi"}, "quantity"),
    ({"size": "-5Gi"}, "quantity"),
    ({"size": "1.5.5Gi"}, "quantity"),
    ({"storage_class": "unbacked-sc"}, "no cloud connection"),
    ({"path": "/recordings"}, "directory name"),
    ({"path": "a/b"}, "directory name"),
    ({"path": ".."}, "directory name"),
    ({"ingest_min_delay_s": -1}, "0 to 31536000"),
    ({"eviction_min_delay_s": 31_536_001}, "0 to 31536000"),
    ({"ingest_order": "fifo"}, "oldest-first"),
    ({"eviction_order": "lru"}, "unordered"),
    ({"on_delete": "keep"}, "abandon"),
    ({"container": "Raw"}, "container"),
    ({"container": "a--b"}, "container"),
    ({"storage_account": "robot-data"}, "storage account"),
    ({"blob_endpoint": "http://127.0.0.1:10000/devstoreaccount1"}, "https"),
]


@pytest.mark.parametrize(("kwargs", "words"), BAD_ACSA, ids=lambda v: str(v)[:40])
def test_bad_acsa_options_are_one_line_user_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError, match=re.escape(words)) as caught:
        AcsaOptions(**kwargs)
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("size", ["50Gi", "1Ti", "500M", "1e9", "0.5Gi", "100"])
def test_kubernetes_quantities_are_accepted(size: str) -> None:
    assert (
        acsa_manifests(AcsaOptions(size=size, storage_account="abc", container="raw"))[0]["spec"][
            "resources"
        ]["requests"]["storage"]
        == size
    )


# -- systemd unit -------------------------------------------------------------------------------


def test_unit_runs_the_recorder_as_a_dedicated_user_and_stops_it_with_sigint() -> None:
    options = RecorderUnitOptions(
        user="robot", config="/etc/physai/arm.yaml", mount="/srv/ingest", stop_timeout_s=300
    )
    unit = _unit(recorder_unit(options))
    service = unit["Service"]
    assert service["ExecStart"] == (
        "/usr/local/bin/physai data-pipeline record --config /etc/physai/arm.yaml"
    )
    assert (service["User"], service["Group"]) == ("robot", "robot")
    assert service["KillSignal"] == "SIGINT" and service["KillMode"] == "mixed"
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"
    assert service["TimeoutStopSec"] == "300"
    assert service["EnvironmentFile"] == "/etc/physai/recorder.env"
    assert service["ReadWritePaths"] == "/srv/ingest/recordings"
    assert service["ProtectSystem"] == "strict"
    assert unit["Unit"]["AssertPathIsMountPoint"] == "/srv/ingest"
    assert unit["Unit"]["RequiresMountsFor"] == "/srv/ingest"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    env = recorder_env(RecorderUnitOptions(ros_domain_id=42))
    assert "ROS_DOMAIN_ID=42" in env.splitlines()


def test_unit_writes_where_the_subvolume_uploads_from() -> None:
    files = edge_files(
        AcsaOptions(path="bags", storage_account="abc", container="raw"),
        RecorderUnitOptions(mount="/mnt/acsa"),
    )
    assert _unit(files[UNIT_FILE])["Service"]["ReadWritePaths"] == "/mnt/acsa/bags"
    assert _docs(files[ACSA_FILE])[1]["spec"]["path"] == "bags"


def _physai_bin() -> str:
    found = Path(sys.executable).with_name("physai")
    return str(found) if found.exists() else (shutil.which("physai") or "/usr/bin/true")


def _verify(tmp_path: Path, text: str) -> str:
    path = tmp_path / "physai-recorder.service"
    path.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on lines it ignores, but names the file in what it prints about them.
    ours = [line for line in (done.stdout + done.stderr).splitlines() if path.name in line]
    return "\n".join(ours) + (f"\nexit {done.returncode}" if done.returncode else "")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = recorder_unit(RecorderUnitOptions(physai_bin=_physai_bin()))
    assert _verify(tmp_path, text) == ""
    broken = text.replace("KillSignal=SIGINT", "KillSignal=SIGFOO")
    assert "SIGFOO" in _verify(tmp_path, broken)  # the check can fail


BAD_UNIT: list[tuple[dict[str, Any], str]] = [
    ({"user": "root"}, "not root"),
    ({"user": "Robot User"}, "dedicated account"),
    ({"group": "1abc"}, "dedicated account"),
    ({"config": "recorder.yaml"}, "absolute path"),
    ({"config": "/etc/physai/my recorder.yaml"}, "absolute path"),
    ({"mount": "/"}, "not / itself"),
    ({"mount": "/mnt/../etc"}, "absolute path"),
    ({"physai_bin": "/opt/%h/physai"}, "absolute path"),
    ({"ros_domain_id": 233}, "0-232"),
    ({"stop_timeout_s": 2}, "10-3600"),
    ({"restart_s": 0}, "1-600"),
]


@pytest.mark.parametrize(("kwargs", "words"), BAD_UNIT, ids=lambda v: str(v)[:40])
def test_bad_unit_options_are_one_line_user_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError, match=re.escape(words)) as caught:
        RecorderUnitOptions(**kwargs)
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: p.stem)
def test_recording_output_dir_must_be_inside_the_ingest_subvolume(path: Path) -> None:
    config = load_recording_config(path)
    options = RecorderUnitOptions()
    with pytest.raises(UserError, match="outside the ingest subvolume"):
        recorder_unit(options, config)  # the examples write to local disks
    inside = RecordingConfig.model_validate(
        {**config.model_dump(), "output_dir": f"{options.ingest_dir}/arm-1"}
    )
    check_output_dir(inside, options)
    assert "ReadWritePaths=/mnt/physai-ingest/recordings" in recorder_unit(options, inside)
    escape = RecordingConfig.model_validate(
        {**config.model_dump(), "output_dir": f"{options.ingest_dir}/../elsewhere"}
    )
    with pytest.raises(UserError, match="outside"):
        check_output_dir(escape, options)


# -- checked-in copies and writing ------------------------------------------------------------


def test_checked_in_copies_equal_the_rendering() -> None:
    """data-pipeline/iac/ holds `example_files()`: re-render it when this fails (see README)."""
    files = example_files()
    assert set(files) == {ACSA_FILE, UNIT_FILE, ENV_FILE}
    on_disk = {
        str(p.relative_to(IAC)) for folder in ("acsa", "systemd") for p in (IAC / folder).iterdir()
    }
    assert on_disk == set(files)
    for relative, text in files.items():
        assert (IAC / relative).read_text() == text, f"iac/{relative} drifted from the renderer"
    _unit(files[UNIT_FILE])  # and they parse
    assert len(_docs(files[ACSA_FILE])) == 2


def test_write_edge_files_writes_every_file_whole(tmp_path: Path) -> None:
    written = write_edge_files(tmp_path / "out", example_files())
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == sorted(
        example_files()
    )
    for path in written:
        assert path.read_text() == example_files()[path.relative_to(tmp_path / "out").as_posix()]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        write_edge_files(tmp_path / "file", example_files())


# -- CLI (once `physai data-pipeline edge-manifests` is registered) ----------------------------


def _has_command() -> bool:
    import typer.main

    group = typer.main.get_command(app)
    sub = group.commands.get("data-pipeline")  # type: ignore[attr-defined]
    return sub is not None and "edge-manifests" in sub.commands


@pytest.mark.skipif(not _has_command(), reason="edge-manifests is not in the data-pipeline CLI yet")
def test_cli_prints_yaml_and_writes_files(tmp_path: Path, clean_env: None) -> None:
    runner = CliRunner()
    base = ["data-pipeline", "edge-manifests", "--storage-account", "physaiexample"]
    printed = runner.invoke(app, [*base, "--container", "recordings"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == example_files()[ACSA_FILE]
    out = tmp_path / "iac"
    wrote = runner.invoke(app, [*base, "--container", "recordings", "--out", str(out)])
    assert wrote.exit_code == 0, wrote.output
    assert {k: (out / k).read_text() for k in example_files()} == example_files()
    bad = runner.invoke(
        app, [*base, "--container", "recordings", "--size", "lots", "--out", str(tmp_path / "bad")]
    )
    assert bad.exit_code == 2 and "quantity" in bad.output
    assert not (tmp_path / "bad").exists()
    unit = runner.invoke(app, [*base, "--container", "recordings", "--systemd"])
    assert unit.exit_code == 0 and unit.output == example_files()[UNIT_FILE]
    outside = runner.invoke(
        app, [*base, "--container", "recordings", "--check-config", str(EXAMPLE_CONFIGS[0])]
    )
    assert outside.exit_code == 2 and "outside the ingest subvolume" in outside.output
    helped = runner.invoke(app, ["data-pipeline", "edge-manifests", "--help"])
    assert "Example: physai data-pipeline edge-manifests" in helped.output
