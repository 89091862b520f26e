"""Edge material for recording robots: ACSA manifests for an ingest volume, and a systemd unit.

Robots record bags onto a volume of Azure Container Storage enabled by Azure Arc (ACSA) on an
Arc-enabled edge cluster; ACSA's cloud-ingest subvolume uploads every file written into it to a
Blob container and then frees the local copy. This module renders what sets that up:

    docs = acsa_manifests(AcsaOptions(container="recordings"))   # [PVC, IngestSubvolume] dicts
    text = acsa_yaml(AcsaOptions(container="recordings"))        # the same, as multi-document YAML
    unit = recorder_unit(RecorderUnitOptions(user="physai"))     # physai-recorder.service
    write_edge_files("out/", edge_files(AcsaOptions(), RecorderUnitOptions()))

The storage account and container come from physai settings (`azure_storage_account`,
`azure_blob_endpoint`, `azure_storage_container`) unless the options name them. Every bad value
raises a one-line `UserError` before anything is rendered or written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, get_args

import yaml

from physai.core.errors import ConfigError, UserError
from physai.core.settings import settings_or_default

if TYPE_CHECKING:
    from physai.core.settings import Settings
    from physai.data_pipeline.config import RecordingConfig

IngestOrder = Literal["oldest-first", "newest-first"]
EvictionOrder = Literal["unordered", "never"]
OnDelete = Literal["trigger-immediate-ingest", "abandon"]

INGEST_API_VERSION = "arccontainerstorage.azure.net/v1"
INGEST_KIND = "IngestSubvolume"
MAX_DELAY_S = 31_536_000  # ACSA accepts 0 .. one year for both delays
UNBACKED_CLASSES = ("unbacked-sc", "unbacked-retain-sc")
ACSA_FILE = "acsa/ingest.yaml"
UNIT_FILE = "systemd/physai-recorder.service"
ENV_FILE = "systemd/physai-recorder.env"
STATE_DIR = "/var/lib/physai-recorder"  # the unit's StateDirectory: physai home, ROS logs

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_DIR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_UNIT_PATH = re.compile(r"^/[A-Za-z0-9._@+/-]*$")  # no spaces, quotes or systemd specifiers (%)

_HEADER = """\
# ACSA cloud-ingest volume for physai robot recordings: a PersistentVolumeClaim and the
# IngestSubvolume that uploads what the recorder writes below {path}/ to Blob container
# {container!r} at {endpoint}.
# Rendered by `physai data-pipeline edge-manifests`: re-render it instead of editing it.
#
# Facts relied on (MicrosoftDocs/azure-management-docs, articles/azure-arc/container-storage/):
# - A ReadWriteMany claim of storage class cloud-backed-sc gets an Edge Volume with a cloud
#   connection; unbacked-sc ones have none (includes/create-pvc.md,
#   howto-configure-local-shared-edge-volumes.md, volumes-subvolumes.md).
# - Since extension 2.8.2 ingest subvolumes are kind IngestSubvolume, apiVersion
#   arccontainerstorage.azure.net/v1; EdgeSubvolume is the pre-2.8.2 kind
#   (previous-versions.md, release-notes.md).
# - IngestSubvolume spec: edgevolume, path (no leading slash), authentication.authType
#   (MANAGED_IDENTITY or WORKLOAD_IDENTITY), storageAccountEndpoint, containerName,
#   ingest.order/minDelaySec, eviction.order/minDelaySec, onDelete (trigger-immediate-ingest or
#   abandon) (howto-configure-cloud-ingest-subvolumes.md).
# - ingest.order oldest-first (default) or newest-first, best effort; ingest.minDelaySec counts
#   from the last close of a file (default 60); eviction.order unordered (default) or never;
#   eviction.minDelaySec after upload (default 300); both delays 0..31536000 (ingest-policies.md).
# - MANAGED_IDENTITY is the extension's identity; it needs Storage Blob Data Owner on the
#   account (includes/cloud-subvolumes-configure-extension-identity.md).
# - Names: lowercase letters, digits and dashes (includes/lowercase-note.md). The docs read the
#   Edge Volume's name from `kubectl get edgevolumes`; this file assumes {edge_volume!r}.
"""


def _check_label(kind: str, value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise UserError(
            f"{kind} {value!r} is not a DNS-1123 label: use 1-63 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit"
        )
    return value


def _check_quantity(kind: str, value: str) -> str:
    match = _QUANTITY.match(value)
    if not match or float(match["number"]) <= 0:
        raise UserError(f"{kind} {value!r} is not a positive Kubernetes quantity: write e.g. 50Gi")
    return value


def _check_delay(kind: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DELAY_S:
        raise UserError(f"{kind} must be a whole number of seconds from 0 to {MAX_DELAY_S}")
    return value


def _check_choice(kind: str, value: str, choices: Any) -> str:
    allowed = get_args(choices)
    if value not in allowed:
        raise UserError(f"{kind} {value!r} is not one of {', '.join(allowed)}")
    return value


def _check_unit_path(kind: str, value: str) -> str:
    if not _UNIT_PATH.match(value) or "//" in value or "/../" in f"{value}/":
        raise UserError(
            f"{kind} {value!r} must be an absolute path of letters, digits and . _ @ + - /"
        )
    return value


@dataclass(frozen=True)
class AcsaOptions:
    """What the ACSA manifests need beyond physai settings (defaults in parentheses)."""

    namespace: str = "physai"
    claim: str = "physai-recordings"
    size: str = "50Gi"
    storage_class: str = "cloud-backed-sc"
    subvolume: str = "physai-recordings"
    path: str = "recordings"
    edge_volume: str | None = None
    container: str | None = None
    storage_account: str | None = None
    blob_endpoint: str | None = None
    ingest_order: IngestOrder = "oldest-first"
    ingest_min_delay_s: int = 60
    eviction_order: EvictionOrder = "unordered"
    eviction_min_delay_s: int = 300
    on_delete: OnDelete = "trigger-immediate-ingest"

    def __post_init__(self) -> None:
        _check_label("namespace", self.namespace)
        _check_label("claim name", self.claim)
        _check_label("storage class", self.storage_class)
        _check_label("subvolume name", self.subvolume)
        _check_label("edge volume name", self.edge_volume_name)
        if self.storage_class in UNBACKED_CLASSES:
            raise UserError(
                f"storage class {self.storage_class} has no cloud connection: an ingest "
                "subvolume needs cloud-backed-sc"
            )
        _check_quantity("claim size", self.size)
        if not _DIR_NAME.match(self.path) or len(self.path) > 255:
            raise UserError(
                f"subvolume path {self.path!r} must be one directory name (no '/'): letters, "
                "digits, '.', '_' and '-'"
            )
        _check_delay("ingest min delay", self.ingest_min_delay_s)
        _check_delay("eviction min delay", self.eviction_min_delay_s)
        _check_choice("ingest order", self.ingest_order, IngestOrder)
        _check_choice("eviction order", self.eviction_order, EvictionOrder)
        _check_choice("on-delete action", self.on_delete, OnDelete)
        if self.container is not None:
            _check_container(self.container)
        if self.storage_account is not None:
            _check_account(self.storage_account)
        if self.blob_endpoint is not None:
            _check_endpoint(self.blob_endpoint)

    @property
    def edge_volume_name(self) -> str:
        """The Edge Volume the subvolume attaches to (default: the claim's name)."""
        return self.edge_volume or self.claim


def _check_account(value: str) -> str:
    if not _ACCOUNT.match(value):
        raise ConfigError(
            f"storage account {value!r} is not an Azure storage account name: 3-24 lowercase "
            "letters and digits"
        )
    return value


def _check_container(value: str) -> str:
    if not 3 <= len(value) <= 63 or not _CONTAINER.match(value):
        raise ConfigError(
            f"container {value!r} is not a Blob container name: 3-63 lowercase letters, digits "
            "and single dashes, starting and ending with a letter or digit"
        )
    return value


def _check_endpoint(value: str) -> str:
    if not re.match(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?/?$", value):
        raise ConfigError(
            f"Blob endpoint {value!r} must be an https URL of a storage account with no path "
            "(ACSA uploads over HTTPS; an emulator endpoint does not work at the edge)"
        )
    return value.rstrip("/") + "/"


def blob_target(options: AcsaOptions, settings: Settings | None = None) -> tuple[str, str]:
    """The (storage account endpoint, container) the subvolume uploads to.

    Options win; otherwise `azure_blob_endpoint` or `azure_storage_account`, and
    `azure_storage_container`, from settings (loaded only when an option leaves one unset).
    """
    endpoint: str | None = None
    if options.blob_endpoint:
        endpoint = _check_endpoint(options.blob_endpoint)
    elif options.storage_account:
        endpoint = f"https://{options.storage_account}.blob.core.windows.net/"
    container = options.container
    if endpoint is None or container is None:
        resolved = settings_or_default(settings)
        if endpoint is None:
            if resolved.azure_blob_endpoint:
                endpoint = _check_endpoint(resolved.azure_blob_endpoint)
            else:
                account = _check_account(resolved.require("azure_storage_account"))
                endpoint = f"https://{account}.blob.core.windows.net/"
        if container is None:
            container = _check_container(resolved.require("azure_storage_container"))
    return endpoint, container


def acsa_manifests(
    options: AcsaOptions | None = None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """The PersistentVolumeClaim and the IngestSubvolume, as Kubernetes objects (dicts)."""
    options = options or AcsaOptions()
    endpoint, container = blob_target(options, settings)
    labels = {"app.kubernetes.io/part-of": "physai", "app.kubernetes.io/component": "recorder"}
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": options.claim, "namespace": options.namespace, "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": options.size}},
            "storageClassName": options.storage_class,
        },
    }
    subvolume = {
        "apiVersion": INGEST_API_VERSION,
        "kind": INGEST_KIND,
        "metadata": {"name": options.subvolume, "namespace": options.namespace, "labels": labels},
        "spec": {
            "edgevolume": options.edge_volume_name,
            "path": options.path,
            "authentication": {"authType": "MANAGED_IDENTITY"},
            "storageAccountEndpoint": endpoint,
            "containerName": container,
            "ingest": {"order": options.ingest_order, "minDelaySec": options.ingest_min_delay_s},
            "eviction": {
                "order": options.eviction_order,
                "minDelaySec": options.eviction_min_delay_s,
            },
            "onDelete": options.on_delete,
        },
    }
    return [claim, subvolume]


def acsa_yaml(options: AcsaOptions | None = None, settings: Settings | None = None) -> str:
    """`acsa_manifests` as multi-document YAML for `kubectl apply -f`, with a header comment."""
    options = options or AcsaOptions()
    docs = acsa_manifests(options, settings)
    spec = docs[1]["spec"]
    header = _HEADER.format(
        path=options.path,
        container=spec["containerName"],
        endpoint=spec["storageAccountEndpoint"],
        edge_volume=options.edge_volume_name,
    )
    body = yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True, width=100)
    return header + body


@dataclass(frozen=True)
class RecorderUnitOptions:
    """Where things are on the robot computer that runs the recorder (defaults in parentheses).

    `mount` is where the ACSA volume is mounted on that computer; the recorder may write only
    below `<mount>/<AcsaOptions.path>`, the ingest subvolume's directory.
    """

    config: str = "/etc/physai/recorder.yaml"
    user: str = "physai"
    group: str | None = None
    mount: str = "/mnt/physai-ingest"
    env_file: str = "/etc/physai/recorder.env"
    physai_bin: str = "/usr/local/bin/physai"
    ros_domain_id: int = 0
    stop_timeout_s: int = 120
    restart_s: int = 5
    acsa: AcsaOptions = field(default_factory=AcsaOptions)

    def __post_init__(self) -> None:
        for kind, value in (("user", self.user), ("group", self.group_name)):
            if not _UNIX_NAME.match(value) or value == "root":
                raise UserError(
                    f"{kind} {value!r} must be a dedicated account, not root: 1-32 of a-z 0-9 _ -"
                    ", starting with a letter or _"
                )
        for kind, path in (
            ("recorder config", self.config),
            ("ingest mount", self.mount),
            ("environment file", self.env_file),
            ("physai executable", self.physai_bin),
        ):
            _check_unit_path(kind, path)
        if self.mount.rstrip("/") in ("", "/"):
            raise UserError("ingest mount must be a directory below /, not / itself")
        if isinstance(self.ros_domain_id, bool) or not 0 <= self.ros_domain_id <= 232:
            raise UserError(f"ROS_DOMAIN_ID {self.ros_domain_id} is out of range: use 0-232")
        if not 10 <= self.stop_timeout_s <= 3600:
            raise UserError("stop timeout must be 10-3600 seconds (the recorder flushes on SIGINT)")
        if not 1 <= self.restart_s <= 600:
            raise UserError("restart delay must be 1-600 seconds")

    @property
    def group_name(self) -> str:
        """The unit's group (default: the user's name)."""
        return self.group or self.user

    @property
    def ingest_dir(self) -> str:
        """The ingest subvolume's directory on the robot computer: where bags must go."""
        return f"{self.mount.rstrip('/')}/{self.acsa.path}"


def check_output_dir(recording: RecordingConfig, options: RecorderUnitOptions) -> None:
    """Refuse a recording config whose `output_dir` is outside the ingest subvolume."""
    out = PurePosixPath(recording.output_dir)
    inside = out.is_absolute() and ".." not in out.parts
    if not inside or not out.is_relative_to(options.ingest_dir):
        raise UserError(
            f"recording output_dir {recording.output_dir!r} is outside the ingest subvolume "
            f"{options.ingest_dir}: nothing written there is uploaded"
        )


def recorder_unit(
    options: RecorderUnitOptions | None = None, recording: RecordingConfig | None = None
) -> str:
    """The text of `physai-recorder.service`; given `recording`, its output_dir is checked."""
    options = options or RecorderUnitOptions()
    if recording is not None:
        check_output_dir(recording, options)
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        (
            "Unit",
            [
                ("Description", "physai episodic ROS 2 recorder (bags to the ACSA ingest volume)"),
                ("Wants", "network-online.target"),
                ("After", "network-online.target"),
                ("RequiresMountsFor", options.mount),
                ("AssertPathIsMountPoint", options.mount),
                ("StartLimitIntervalSec", "600"),
                ("StartLimitBurst", "5"),
            ],
        ),
        (
            "Service",
            [
                ("Type", "exec"),
                ("User", options.user),
                ("Group", options.group_name),
                (
                    "ExecStart",
                    f"{options.physai_bin} data-pipeline record --config {options.config}",
                ),
                (
                    "Environment",
                    f"PHYSAI_HOME={STATE_DIR} ROS_HOME={STATE_DIR}/ros PYTHONUNBUFFERED=1",
                ),
                ("EnvironmentFile", options.env_file),
                ("StateDirectory", STATE_DIR.removeprefix("/var/lib/")),
                ("KillMode", "mixed"),
                ("KillSignal", "SIGINT"),
                ("TimeoutStopSec", str(options.stop_timeout_s)),
                ("Restart", "on-failure"),
                ("RestartSec", str(options.restart_s)),
                ("RestartPreventExitStatus", "2"),
                ("NoNewPrivileges", "yes"),
                ("PrivateTmp", "yes"),
                ("ProtectSystem", "strict"),
                ("ProtectHome", "yes"),
                ("ReadWritePaths", options.ingest_dir),
                ("SyslogIdentifier", "physai-recorder"),
            ],
        ),
        ("Install", [("WantedBy", "multi-user.target")]),
    ]
    lines = [
        "# physai-recorder.service: runs `physai data-pipeline record` on a robot computer.",
        "# Rendered by `physai data-pipeline edge-manifests`: re-render it instead of editing it.",
        f"# The recorder may write only below {options.ingest_dir}, the ACSA ingest subvolume",
        f"# that uploads what lands there; the unit does not start unless {options.mount}",
        "# is a mount point. Stopping sends SIGINT so the recorder closes its bag, and SIGKILL",
        f"# only after {options.stop_timeout_s} s. Exit code 2 (a bad config) is not restarted.",
        f"# PHYSAI_* settings and ROS_DOMAIN_ID are read from {options.env_file}.",
    ]
    for name, entries in sections:
        lines += ["", f"[{name}]"] + [f"{key}={value}" for key, value in entries]
    return "\n".join(lines) + "\n"


def recorder_env(options: RecorderUnitOptions | None = None) -> str:
    """An environment file for the unit: ROS_DOMAIN_ID and room for PHYSAI_* settings."""
    options = options or RecorderUnitOptions()
    return (
        f"# {options.env_file}: environment of physai-recorder.service (KEY=value lines).\n"
        "# Values here override the unit's Environment= line.\n"
        f"ROS_DOMAIN_ID={options.ros_domain_id}\n"
        "# physai settings are PHYSAI_<FIELD>, for example:\n"
        "# PHYSAI_PROFILE=local\n"
        f"# PHYSAI_HOME={STATE_DIR}\n"
    )


def edge_files(
    acsa: AcsaOptions | None = None,
    unit: RecorderUnitOptions | None = None,
    settings: Settings | None = None,
    recording: RecordingConfig | None = None,
) -> dict[str, str]:
    """Every edge file, by its path below an output folder (the layout of `data-pipeline/iac/`).

    `unit.acsa` is replaced by `acsa`, so the unit writes where the subvolume uploads from.
    """
    acsa = acsa or AcsaOptions()
    unit = replace(unit or RecorderUnitOptions(), acsa=acsa)
    return {
        ACSA_FILE: acsa_yaml(acsa, settings),
        UNIT_FILE: recorder_unit(unit, recording),
        ENV_FILE: recorder_env(unit),
    }


def example_files() -> dict[str, str]:
    """The copies checked in under `data-pipeline/iac/`: defaults, example account and container.

    Re-render them with
    `physai data-pipeline edge-manifests --storage-account physaiexample --container recordings
    --out data-pipeline/iac`.
    """
    acsa = AcsaOptions(storage_account="physaiexample", container="recordings")
    return edge_files(acsa, RecorderUnitOptions())


def write_edge_files(out: str | Path, files: dict[str, str]) -> list[Path]:
    """Write `files` below `out`, each atomically (temporary sibling, then rename)."""
    from physai.core.storage import write_text

    root = Path(out)
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root} exists and is not a directory")
    written = []
    for relative, text in files.items():
        target = root / relative
        write_text(str(target), text)
        written.append(target)
    return written
