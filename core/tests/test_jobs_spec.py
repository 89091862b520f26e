"""JobSpec and JobDag: validation, YAML round trips, dependencies, cycles, fan-out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from physai.core.errors import UserError
from physai.core.jobs import JobDag, JobSpec, as_dag, fan_out, load_spec
from physai.core.jobs import dag as dag_module
from physai.core.jobs.dag import Producer
from physai.core.jobs.spec import canonical, placeholders, substitute
from physai.core.uris import BlobHttpsUri

TRAIN = """
name: train
command: [python, train.py, --data, "${{inputs.data}}", --out, "${{ outputs.model }}"]
image: nvcr.io/nvidia/pytorch:25.01-py3
resources: {cpu: 8, memory: 32Gi, gpu: 1, nodes: 2, processes_per_node: 4}
inputs:
  data: az://datasets/pick/v3
outputs:
  model: {uri: az://models/pick, mode: upload}
env: {EPOCHS: 10, DEBUG: true, NAME: x}
retries: 2
timeout_s: 3600
"""


def test_from_yaml_validates_and_normalizes(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(TRAIN)
    spec = JobSpec.from_yaml(path)
    assert spec.inputs["data"].uri == "az://datasets/pick/v3"
    assert spec.inputs["data"].type == "folder"
    assert spec.outputs["model"].mode == "upload"
    assert spec.env == {"EPOCHS": "10", "DEBUG": "true", "NAME": "x"}
    assert spec.resources.world_size == 8
    assert list(placeholders(spec.command[5])) == [("outputs", "model")]


def test_yaml_round_trip_is_lossless(tmp_path: Path) -> None:
    spec = JobSpec.parse_yaml(TRAIN)
    text = spec.to_yaml(tmp_path / "out.yaml")
    assert "data: az://datasets/pick/v3" in text  # the `name: URI` shorthand is kept
    again = JobSpec.from_yaml(tmp_path / "out.yaml")
    assert again == spec
    dag = JobDag(name="one", jobs=[spec])
    assert JobDag.parse_yaml(dag.to_yaml()) == dag


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"name": "Train"}, "job name 'Train' is invalid"),
        ({"name": "9lives"}, "job name '9lives' is invalid"),
        ({"name": "ends-"}, "invalid"),
        ({"command": []}, "command"),
        ({"command": ["x", "${{inputs.nope}}"]}, "no input 'nope' is declared"),
        ({"command": ["x", "${{outputs.data}}"]}, "no output 'data' is declared"),
        ({"inputs": {"data": "ftp://x/y"}}, "unsupported URI scheme 'ftp'"),
        ({"inputs": {"bad-name": "a"}}, "input name 'bad-name' is invalid"),
        ({"inputs": {"data": {"uri": "a", "mode": "upload"}}}, "mode must be"),
        ({"inputs": {"data": {"type": "folder"}}}, "has no uri"),
        ({"outputs": {"data": "b"}}, "named both input and output"),
        ({"resources": {"memory": "lots"}}, "is not a quantity"),
        ({"resources": {"gpu": -1}}, "resources.gpu"),
        ({"retries": -1}, "retries"),
        ({"env": {"X": "${{inputs.data}}"}}, "placeholders work in `command` only"),
        ({"env": {"1X": "a"}}, "not an environment variable name"),
        ({"unknown": 1}, "unknown: Extra inputs are not permitted"),
        ({"after": ["job"]}, "cannot run after itself"),
    ],
)
def test_bad_specs_are_user_errors(patch: dict[str, object], message: str) -> None:
    data: dict[str, object] = {
        "name": "job",
        "command": ["python", "-c", "pass", "${{inputs.data}}"],
        "inputs": {"data": "./in"},
    }
    data.update(patch)
    with pytest.raises(UserError, match=message.replace("$", r"\$").replace("{", r"\{")) as info:
        JobSpec.from_dict(data, source="job.yaml")
    assert str(info.value).startswith("job.yaml: ")
    assert "\n" not in info.value.message


def test_unreadable_yaml_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        JobSpec.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match=r"not valid YAML \(line 2"):
        JobSpec.from_yaml(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="expected a mapping"):
        JobSpec.from_yaml(bad)


def test_placeholder_helpers() -> None:
    arg = "--x=${{ inputs.a }}/f:${{outputs.b}}"
    assert canonical(arg) == "--x=${{inputs.a}}/f:${{outputs.b}}"
    assert substitute(arg, {("inputs", "a"): "/in", ("outputs", "b"): "/out"}) == "--x=/in/f:/out"


def _job(
    name: str,
    *,
    inputs: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
    after: list[str] | None = None,
) -> JobSpec:
    return JobSpec(
        name=name,
        command=["true"],
        inputs=inputs or {},  # type: ignore[arg-type]
        outputs=outputs or {},  # type: ignore[arg-type]
        after=after or [],
    )


def test_dag_edges_explicit_and_implicit() -> None:
    dag = JobDag(
        name="pipe",
        jobs=[
            _job("evaluate", inputs={"m": "az://models/x/"}, after=["report"]),
            _job("train", inputs={"d": "az://data/prep"}, outputs={"m": "az://models/x"}),
            _job("prep", outputs={"d": "az://data/prep"}),
            _job("report"),
        ],
    )
    assert dag.dependencies("evaluate") == ("report", "train")  # after first, then data edges
    assert dag.dependencies("train") == ("prep",)
    assert dag.topological_order() == ["prep", "report", "train", "evaluate"]
    assert dag.levels() == [["prep", "report"], ["train"], ["evaluate"]]
    assert ("train", "evaluate") in dag.edges()
    assert dag.producer("az://models/x") is not None


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ([_job("a", after=["ghost"])], "runs after unknown job 'ghost'"),
        ([_job("a"), _job("a")], "two jobs are named 'a'"),
        (
            [_job("a", outputs={"o": "az://cont/x"}), _job("b", outputs={"o": "az://cont/x"})],
            "both write",
        ),
        (
            [_job("a", after=["c"]), _job("b", after=["a"]), _job("c", after=["b"])],
            "jobs form a cycle: a -> b -> c -> a",
        ),
        (
            [
                _job("a", inputs={"i": "az://cont/b"}, outputs={"o": "az://cont/a"}),
                _job("b", inputs={"i": "az://cont/a"}, outputs={"o": "az://cont/b"}),
            ],
            "cycle",
        ),
        ([_job("a", inputs={"i": "az://cont/a"}, outputs={"o": "az://cont/a"})], "cycle: a -> a"),
    ],
)
def test_bad_dags_are_user_errors(jobs: list[JobSpec], message: str) -> None:
    with pytest.raises(UserError, match=message):
        JobDag(name="pipe", jobs=jobs)


def test_load_spec_tells_jobs_from_dags(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(TRAIN)
    assert isinstance(load_spec(tmp_path / "job.yaml"), JobSpec)
    (tmp_path / "dag.yaml").write_text("name: d\njobs:\n  - {name: a, command: [x]}\n")
    loaded = load_spec(tmp_path / "dag.yaml")
    assert isinstance(loaded, JobDag)
    (tmp_path / "cyc.yaml").write_text(
        "name: d\njobs:\n  - {name: a, command: [x], after: [b]}\n"
        "  - {name: b, command: [x], after: [a]}\n"
    )
    with pytest.raises(UserError, match=r"cyc.yaml: DAG 'd': jobs form a cycle"):
        load_spec(tmp_path / "cyc.yaml")
    assert as_dag(JobSpec.parse_yaml(TRAIN)).topological_order() == ["train"]


def test_fan_out_shards_get_index_env_and_distinct_outputs() -> None:
    spec = JobSpec.parse_yaml(TRAIN)
    shards = fan_out(spec, 12)
    assert [s.name for s in shards][:2] == ["train-00", "train-01"]
    assert shards[3].env["PHYSAI_SHARD_INDEX"] == "3"
    assert shards[3].env["PHYSAI_SHARD_COUNT"] == "12"
    assert shards[3].env["EPOCHS"] == "10"
    assert shards[3].outputs["model"].uri == "az://models/pick/shard-03"
    assert shards[3].outputs["model"].mode == "upload"
    JobDag.of("sweep", shards)  # shards never collide
    seeds = fan_out(spec, [{"SEED": "1"}, {"SEED": "2"}])
    assert [s.env["SEED"] for s in seeds] == ["1", "2"]
    with pytest.raises(UserError, match="at least one shard"):
        fan_out(spec, 0)


SAS = "sv=2022-11-02&sp=rw&sig=abc%2Fdef"
BLOB = "https://acct.blob.core.windows.net/cont"


@pytest.mark.parametrize(
    ("uri", "kind", "shard_1"),
    [
        # A SAS query stays last: appending after it would corrupt the signature.
        (f"{BLOB}/out?{SAS}", "folder", f"{BLOB}/out/shard-1?{SAS}"),
        (f"{BLOB}/out/?{SAS}", "folder", f"{BLOB}/out/shard-1?{SAS}"),
        (f"{BLOB}/out/m.pt?sv=1&sig=a/b", "file", f"{BLOB}/out/shard-1/m.pt?sv=1&sig=a/b"),
        (f"{BLOB}/out/m.pt", "file", f"{BLOB}/out/shard-1/m.pt"),
        ("az://models/pick/", "folder", "az://models/pick/shard-1"),
        ("az://models/pick/m.pt", "file", "az://models/pick/shard-1/m.pt"),
        ("memory://m.pt", "file", "memory://shard-1/m.pt"),
        ("out", "folder", "out/shard-1"),
        ("/tmp/out/", "folder", "/tmp/out/shard-1"),
        ("m.pt", "file", "shard-1/m.pt"),
        ("/m.pt", "file", "/shard-1/m.pt"),  # stays absolute
        ("file:///m.pt", "file", "file:///shard-1/m.pt"),
    ],
)
def test_fan_out_shard_urls_keep_the_sas_last(uri: str, kind: str, shard_1: str) -> None:
    spec = JobSpec(name="s", command=["x"], outputs={"o": {"uri": uri, "type": kind}})  # type: ignore[dict-item]
    out = fan_out(spec, 2)[1].outputs["o"]
    assert out.uri == shard_1
    assert out.type == kind
    parsed = out.parsed()
    if isinstance(parsed, BlobHttpsUri):
        assert parsed.sas == (uri.partition("?")[2] or None)  # the signature is intact


def test_dag_lookups_do_not_scan_or_reparse(monkeypatch: pytest.MonkeyPatch) -> None:
    base = JobSpec(name="s", command=["x"])
    jobs = [base.model_copy(update={"name": f"s-{i}"}) for i in range(10_000)]
    dag = JobDag.of("big", jobs)
    t0 = time.perf_counter()
    for job in jobs:
        assert dag.job(job.name) is job
    # A dict lookup takes ~1 us; scanning the list took ~2 s for these 10,000 lookups.
    assert time.perf_counter() - t0 < 0.5
    with pytest.raises(KeyError):
        dag.job("ghost")

    pipe = JobDag(
        name="pipe",
        jobs=[
            _job("prep", outputs={"d": "az://data/prep/"}),
            _job("train", inputs={"d": "az://data/prep", "x": "hf://o/n@0123456"}),
        ],
    )
    calls: list[str] = []
    real = dag_module.parse_uri
    monkeypatch.setattr(dag_module, "parse_uri", lambda u: calls.append(u) or real(u))
    train = pipe.job("train")
    assert pipe.producer(train.inputs["d"].uri) == Producer(job="prep", output="d")
    assert pipe.producer(train.inputs["x"].uri) is None
    assert calls == []  # the DAG's own URIs were parsed once, when it was built
    assert pipe.producer("az://data/prep") is not None and pipe.producer(None) is None
    assert pipe.producer("abfs://data/prep") == Producer(job="prep", output="d")  # new: parsed
    assert calls == ["abfs://data/prep"]
