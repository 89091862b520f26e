"""Tracking on a real MLflow store: the embedded sqlite default and a real `mlflow server`."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from physai.core.errors import ConfigError, MissingDependencyError, UserError
from physai.core.settings import Settings, load_settings
from physai.core.testing.checks import assert_no_secret, fresh_mlflow_store, run_sql
from physai.core.tracking import (
    LINEAGE_PREFIX,
    MAX_METRICS_PER_BATCH,
    CodeVersion,
    DatasetRef,
    Lineage,
    Tracker,
    TrackingError,
    artifact_location_for,
    collect_code_version,
    ensure_experiment,
    mlflow_client,
    tracking_uri,
    validate_name,
)

SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4


class CountingClient:
    """A real MlflowClient behind a wrapper that records every log_batch call (a spy)."""

    def __init__(self, inner: Any, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.metric_batches: list[int] = []
        self.batch_calls = 0

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Any] = (),
        params: Sequence[Any] = (),
        tags: Sequence[Any] = (),
        **kwargs: Any,
    ) -> Any:
        self.batch_calls += 1
        if metrics:
            self.metric_batches.append(len(metrics))
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.inner.log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No PHYSAI_* or MLFLOW_TRACKING_URI from the environment; an empty working directory."""
    for var in list(os.environ):
        if var.startswith("PHYSAI_") or var == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(var)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    # Nothing may land in the working directory (MLflow's ./mlruns or ./mlflow.db defaults).
    assert sorted(p.name for p in cwd.iterdir()) == []


@pytest.fixture(scope="module")
def local_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Local profile with its state in a temporary .physai (one sqlite store per module)."""
    return Settings(home=tmp_path_factory.mktemp("state") / ".physai")


def _metric_points(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _writer_threads() -> set[int]:
    return {t.ident or 0 for t in threading.enumerate() if t.name == "physai-metrics"}


# -- tracking URI ---------------------------------------------------------------------------------


def test_tracking_uri_local_default_is_absolute_sqlite(tmp_path: Path) -> None:
    settings = load_settings(home=str(tmp_path / "state" / ".physai"))
    uri = tracking_uri(settings)
    db = tmp_path / "state" / ".physai" / "mlflow.db"
    assert uri == f"sqlite:///{db}"
    assert db.parent.is_dir()
    assert artifact_location_for(uri) == (db.parent / "mlartifacts").as_uri()
    assert artifact_location_for("http://127.0.0.1:5000") is None


def test_tracking_uri_setting_wins(tmp_path: Path) -> None:
    settings = load_settings(tracking_uri="http://127.0.0.1:5555", profile="azure")
    assert tracking_uri(settings) == "http://127.0.0.1:5555"


def test_tracking_uri_azure_profile_builds_workspace_uri() -> None:
    settings = load_settings(
        profile="azure",
        azure_subscription_id="00000000-1111-2222-3333-444444444444",
        azure_resource_group="rg-robots",
        azure_workspace_name="mlw-robots",
        azure_location="West Europe",
    )
    assert tracking_uri(settings) == (
        "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/"
        "00000000-1111-2222-3333-444444444444/resourceGroups/rg-robots/providers/"
        "Microsoft.MachineLearningServices/workspaces/mlw-robots"
    )


def test_azureml_uri_without_the_azureml_package_is_a_missing_dependency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "azureml.mlflow", raising=False)
    monkeypatch.setitem(sys.modules, "azureml", None)  # as if the parent package were absent
    uri = (
        "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/rg"
        "/providers/Microsoft.MachineLearningServices/workspaces/ws"
    )
    with pytest.raises(MissingDependencyError, match="azureml-mlflow"):
        mlflow_client(uri=uri)


def test_tracking_uri_azure_profile_names_missing_settings() -> None:
    settings = load_settings(profile="azure", azure_resource_group="rg-robots")
    with pytest.raises(ConfigError) as info:
        tracking_uri(settings)
    message = info.value.message
    for name in ("azure_location", "azure_subscription_id", "azure_workspace_name"):
        assert name in message
    assert "azure_resource_group" not in message.split("set")[0]


# -- names, values, lineage -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train/loss", "eval/success_rate", "lr", "a-b.c d:e", "x" * 250])
def test_valid_metric_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("loss%", "'%'"),
        ("reward[0]", "'[]'"),
        ("/loss", "path"),
        ("train//loss", "path"),
        ("train/../loss", "path"),
        ("loss/", "path"),
        ("", "non-empty"),
        ("x" * 251, "longer than 250"),
    ],
)
def test_invalid_metric_names_are_user_errors(name: str, why: str) -> None:
    with pytest.raises(UserError) as info:
        validate_name(name)
    assert why in info.value.message
    assert "\n" not in info.value.message


def test_lineage_tags_round_trip() -> None:
    lineage = Lineage.coerce(
        {
            "datasets": [
                {"uri": "az://datasets/pick/v3", "sha256": f"sha256:{SHA_A.upper()}"},
                "hf://lerobot/pusht@a1b2c3d",
            ],
            "task": "pick-cube",
            "parent_run_id": "abc123",
            "code": CodeVersion(git_commit="f" * 40, git_dirty=False, packages={"torch": "2.11"}),
            "seed": 7,  # unknown keys are kept in `extra`
        }
    )
    assert lineage.datasets[0].sha256 == SHA_A
    assert lineage.extra == {"seed": 7}
    tags = lineage.to_tags()
    assert all(key.startswith(LINEAGE_PREFIX) for key in tags)
    assert tags["physai.dataset.0.uri"] == "az://datasets/pick/v3"
    assert tags["physai.dataset.0.sha256"] == SHA_A
    assert tags["physai.dataset.1.uri"] == "hf://lerobot/pusht@a1b2c3d"
    assert "physai.dataset.1.sha256" not in tags
    assert tags["physai.code.packages"] == "torch==2.11"
    assert Lineage.from_tags(tags) == lineage
    assert Lineage.from_tags({"mlflow.runName": "x"}) is None


def test_lineage_rejects_bad_digest_with_a_user_error() -> None:
    with pytest.raises(UserError, match="sha256"):
        Lineage.coerce({"datasets": [{"uri": "az://datasets/x", "sha256": "not-a-digest"}]})
    with pytest.raises(UserError, match="lineage key"):
        Lineage.coerce({"extra": {"bad key%": 1}})


def test_lineage_tags_are_validated_names_and_values() -> None:
    with pytest.raises(UserError, match="8000"):
        Lineage.coerce({"extra": {"notes": "x" * 8001}}).to_tags()
    with pytest.raises(UserError, match="invalid tag name"):
        Lineage.coerce({"extra": {"k" * 245: 1}}).to_tags()  # physai.extra.kkk… > 250


def test_code_version_has_packages_and_env_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHYSAI_GIT_COMMIT", "c" * 40)
    code = collect_code_version(Path.cwd())  # an empty directory: no git repository
    assert code.git_commit == "c" * 40
    assert code.packages["physai-core"]
    assert code.packages["mlflow"]


# -- the tracker on the embedded sqlite store -----------------------------------------------------


def test_tracker_round_trip_and_batching(local_settings: Settings, tmp_path: Path) -> None:
    spy: Any = CountingClient(mlflow_client(local_settings))
    artifacts = tmp_path / "outputs"
    (artifacts / "ckpt").mkdir(parents=True)
    (artifacts / "ckpt" / "policy.pt").write_bytes(os.urandom(4096))
    (artifacts / "config.yaml").write_text("lr: 0.0003\n")
    steps = 2500  # x 2 keys = 5,000 points
    experiment = _unique("exp")

    with Tracker(local_settings, client=spy, flush_interval_s=30).start(
        experiment,
        run_name="seed-0",
        params={"lr": 3e-4, "algo": "ppo", "layers": [64, 64]},
        tags={"team": "manipulation"},
    ) as tracker:
        started = time.perf_counter()
        for step in range(steps):
            tracker.log_metrics({"train/loss": 1.0 / (step + 1), "train/reward": step * 0.5}, step)
        queued_in = time.perf_counter() - started
        lineage = tracker.set_lineage(
            datasets=[DatasetRef(uri="az://datasets/pick/v3", sha256=SHA_A)],
            task="pick-cube",
            parent_run_id="parent123",
        )
        tracker.log_artifacts(artifacts)
        tracker.log_artifacts(artifacts / "config.yaml", "configs")
        run_id = tracker.run_id

    client = mlflow_client(local_settings)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "seed-0"
    assert client.get_experiment(run.info.experiment_id).name == experiment
    loss = _metric_points(client, run_id, "train/loss")
    reward = _metric_points(client, run_id, "train/reward")
    assert loss == [(s, 1.0 / (s + 1)) for s in range(steps)]  # exact values, every step
    assert reward == [(s, s * 0.5) for s in range(steps)]

    # Far fewer store calls than points, and none over MLflow's per-request limit.
    assert sum(spy.metric_batches) == 2 * steps
    assert max(spy.metric_batches) <= MAX_METRICS_PER_BATCH
    assert len(spy.metric_batches) <= 8
    assert queued_in < 5.0

    assert run.data.params == {"lr": "0.0003", "algo": "ppo", "layers": "[64, 64]"}
    tags = run.data.tags
    assert tags["team"] == "manipulation"
    assert tags["physai.dataset.0.uri"] == "az://datasets/pick/v3"
    assert tags["physai.dataset.0.sha256"] == SHA_A
    assert tags["physai.task"] == "pick-cube"
    assert tags["physai.parent_run_id"] == "parent123"
    assert tags["mlflow.parentRunId"] == "parent123"
    assert tags["physai.run_id"] == run_id
    assert "physai-core==" in tags["physai.code.packages"]
    assert lineage.run_id == run_id

    out = Path(client.download_artifacts(run_id, "", str(tmp_path / "dl")))
    assert (out / "ckpt" / "policy.pt").read_bytes() == (
        artifacts / "ckpt" / "policy.pt"
    ).read_bytes()
    assert (out / "configs" / "config.yaml").read_text() == "lr: 0.0003\n"
    # Artifacts live beside the database, not in the working directory.
    assert run.info.artifact_uri.startswith((local_settings.state_dir / "mlartifacts").as_uri())


def test_tracker_marks_failed_run_and_keeps_its_metrics(local_settings: Settings) -> None:
    tracker = Tracker(local_settings)

    def train() -> None:
        with tracker.start(_unique("exp")):
            tracker.log_metric("train/loss", 0.5, step=1)
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        train()
    client = mlflow_client(local_settings)
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert _metric_points(client, tracker.run_id, "train/loss") == [(1, 0.5)]


def test_interval_flush_writes_without_waiting_for_close(local_settings: Settings) -> None:
    client = mlflow_client(local_settings)
    with Tracker(local_settings, flush_interval_s=0.2).start(_unique("exp")) as tracker:
        tracker.log_metrics({"eval/success": 1.0, "eval/steps": 12}, step=3)
        deadline = time.monotonic() + 20
        while not client.get_metric_history(tracker.run_id, "eval/steps"):
            assert time.monotonic() < deadline, "the background flush never wrote the metrics"
            time.sleep(0.1)
        assert client.get_run(tracker.run_id).info.status == "RUNNING"
        assert _metric_points(client, tracker.run_id, "eval/success") == [(3, 1.0)]


def test_log_metrics_does_not_wait_for_a_slow_store(local_settings: Settings) -> None:
    spy: Any = CountingClient(mlflow_client(local_settings), delay_s=0.4)
    with Tracker(local_settings, client=spy, batch_size=500).start(_unique("exp")) as tracker:
        started = time.perf_counter()
        for step in range(2000):
            tracker.log_metric("train/loss", float(step), step)
        elapsed = time.perf_counter() - started
        tracker.flush()
        assert len(spy.metric_batches) >= 4  # 4 batches x 0.4 s in the store...
    assert elapsed < 1.0  # ...while the loop never waited on it
    client = mlflow_client(local_settings)
    assert len(client.get_metric_history(tracker.run_id, "train/loss")) == 2000


def test_bad_metric_name_or_value_is_a_user_error(local_settings: Settings) -> None:
    with Tracker(local_settings).start(_unique("exp")) as tracker:
        with pytest.raises(UserError, match="invalid metric name 'loss%'"):
            tracker.log_metrics({"loss%": 1.0})
        with pytest.raises(UserError, match="must be a number"):
            tracker.log_metrics({"loss": "high"})
        with pytest.raises(UserError, match="must be a number"):
            tracker.log_metrics({"done": True})
        tracker.log_metrics({"nan": math.nan, "inf": math.inf})
    client = mlflow_client(local_settings)
    assert client.get_run(tracker.run_id).data.metrics.keys() == {"nan", "inf"}


def test_store_failure_surfaces_as_tracking_error(local_settings: Settings) -> None:
    tracker = Tracker(local_settings).start(_unique("exp"))
    mlflow_client(local_settings).delete_run(tracker.run_id)  # the store now refuses writes
    tracker.log_metric("train/loss", 1.0)
    with pytest.raises(TrackingError, match="writing metrics"):
        tracker.flush()
    with pytest.raises(TrackingError):
        tracker.log_metric("train/loss", 2.0)
    with pytest.raises(TrackingError):
        tracker.end()


def test_bad_param_at_start_leaves_no_running_run_or_thread(local_settings: Settings) -> None:
    threads = _writer_threads()
    name = _unique("exp")
    tracker = Tracker(local_settings)
    with pytest.raises(UserError, match="invalid param name 'lr%'"):
        tracker.start(name, params={"lr%": 0.1})
    with pytest.raises(UserError, match="param 'notes' is 6001 characters long"):
        tracker.start(name, params={"notes": "x" * 6001})
    client = mlflow_client(local_settings)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []
    assert _writer_threads() <= threads
    with tracker.start(name, params={"lr": 0.1}):  # nothing was started: the tracker still works
        pass
    assert client.get_run(tracker.run_id).data.params == {"lr": "0.1"}


def test_params_refused_by_the_store_at_start_end_the_run_failed(tmp_path: Path) -> None:
    settings = fresh_mlflow_store(tmp_path)
    run_sql(
        settings,
        "CREATE TRIGGER refuse BEFORE INSERT ON params BEGIN "
        "SELECT RAISE(ABORT, 'denied https://acct.blob.core.windows.net/c/x?sv=1&sig=SECRET'); "
        "END;",
    )
    threads = _writer_threads()
    name = _unique("exp")
    with pytest.raises(TrackingError, match="logging params failed") as info:
        Tracker(settings).start(name, params={"lr": 0.1})
    assert_no_secret(info.value)
    client = mlflow_client(settings)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert _writer_threads() <= threads


def test_store_errors_carry_no_secret(tmp_path: Path) -> None:
    settings = fresh_mlflow_store(tmp_path)
    tracker = Tracker(settings).start(_unique("exp"))
    run_sql(
        settings,
        "CREATE TRIGGER refuse_metrics BEFORE INSERT ON metrics BEGIN "
        "SELECT RAISE(ABORT, 'denied https://acct.blob.core.windows.net/c/x?sv=1&sig=SECRET'); "
        "END;"
        # A store failure other than a constraint (no such table), naming the secret.
        "CREATE TRIGGER refuse_experiments BEFORE INSERT ON experiments BEGIN "
        'INSERT INTO "denied?sv=1&sig=SECRET" VALUES (1); END;',
    )
    tracker.log_metric("train/loss", 1.0)
    with pytest.raises(TrackingError, match="writing metrics") as info:
        tracker.flush()
    assert_no_secret(info.value)
    with pytest.raises(TrackingError) as info:
        tracker.end()
    assert_no_secret(info.value)
    with pytest.raises(TrackingError, match="cannot create experiment") as info:
        ensure_experiment(mlflow_client(settings), _unique("exp"))
    assert_no_secret(info.value)


def test_param_values_may_not_change(local_settings: Settings) -> None:
    with Tracker(local_settings).start(_unique("exp"), params={"lr": 0.1}) as tracker:
        tracker.log_params({"lr": 0.1})  # the same value again is fine
        with pytest.raises(UserError, match="cannot log params"):
            tracker.log_params({"lr": 0.2})


def test_set_lineage_takes_a_single_dataset(local_settings: Settings) -> None:
    client = mlflow_client(local_settings)
    single: list[Any] = [
        ("az://cont/ds", DatasetRef(uri="az://cont/ds")),
        ({"uri": "az://cont/ds2", "sha256": SHA_A}, DatasetRef(uri="az://cont/ds2", sha256=SHA_A)),
        (DatasetRef(uri="az://cont/ds3"), DatasetRef(uri="az://cont/ds3")),
    ]
    with Tracker(local_settings).start(_unique("exp")) as tracker:
        for given, expected in single:
            lineage = tracker.set_lineage(datasets=given)
            assert lineage.datasets == (expected,)
            tags = client.get_run(tracker.run_id).data.tags
            assert tags["physai.dataset.count"] == "1"
            assert tags["physai.dataset.0.uri"] == expected.uri
        both = tracker.set_lineage({"datasets": "az://cont/a"}, datasets="az://cont/b")
        assert [d.uri for d in both.datasets] == ["az://cont/a", "az://cont/b"]


def test_tracker_needs_a_run_first(local_settings: Settings) -> None:
    tracker = Tracker(local_settings)
    with pytest.raises(UserError, match="start"):
        tracker.log_metric("loss", 1.0)
    with pytest.raises(UserError, match="start"):
        _ = tracker.run_id


def test_deleted_experiment_is_a_user_error(local_settings: Settings) -> None:
    client = mlflow_client(local_settings)
    name = _unique("exp")
    client.delete_experiment(ensure_experiment(client, name))
    with pytest.raises(UserError, match="was deleted"):
        Tracker(local_settings).start(name)


# -- the tracker against a real `mlflow server` ---------------------------------------------------


@pytest.mark.integration
def test_tracker_round_trip_on_mlflow_server(mlflow_server: str, tmp_path: Path) -> None:
    settings = Settings(tracking_uri=mlflow_server, home=tmp_path / ".physai")
    spy: Any = CountingClient(mlflow_client(settings))
    (tmp_path / "outputs").mkdir()
    payload = os.urandom(10_000)
    (tmp_path / "outputs" / "policy.onnx").write_bytes(payload)
    steps = 2500
    with Tracker(settings, client=spy).start(
        _unique("server-exp"), run_name="remote", params={"env": "reach"}
    ) as tracker:
        for step in range(steps):
            tracker.log_metrics({"train/loss": step / 7, "train/entropy": -step / 3}, step)
        tracker.set_lineage({"datasets": ["az://datasets/reach/v1"], "task": "reach"})
        tracker.log_artifacts(tmp_path / "outputs", "policy")
        run_id = tracker.run_id

    client = mlflow_client(settings)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert _metric_points(client, run_id, "train/loss") == [(s, s / 7) for s in range(steps)]
    assert _metric_points(client, run_id, "train/entropy") == [(s, -s / 3) for s in range(steps)]
    assert sum(spy.metric_batches) == 2 * steps
    assert len(spy.metric_batches) <= 8
    assert run.data.params == {"env": "reach"}
    assert run.data.tags["physai.dataset.0.uri"] == "az://datasets/reach/v1"
    assert run.data.tags["physai.task"] == "reach"
    out = Path(client.download_artifacts(run_id, "policy", str(tmp_path / "dl")))
    assert (out / "policy.onnx").read_bytes() == payload
