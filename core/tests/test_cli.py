"""The `physai` command: domain discovery, `info`, `specs`, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from physai.core.cli import app, installed_packages

DOMAINS = (
    "infrastructure",
    "data-pipeline",
    "data-management",
    "synthetic-data",
    "training",
    "evaluation",
    "fleet-deployment",
    "fleet-intelligence",
)
runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PHYSAI_PROFILE", raising=False)
    monkeypatch.delenv("PHYSAI_CONFIG", raising=False)


def test_help_lists_every_domain_found_through_entry_points() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in (*DOMAINS, "info", "specs", "jobs"):
        assert name in result.output


def test_info_reports_packages_profile_tracking_and_storage(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["packages"]) == {"physai-core", *(f"physai-{d}" for d in DOMAINS)}
    assert report["profile"] == "local"
    assert report["tracking_uri"] == f"sqlite:///{tmp_path.resolve()}/.physai/mlflow.db"
    assert report["storage_root"] == str(tmp_path.resolve() / ".physai" / "storage")


def test_info_table_and_global_options(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--home", str(tmp_path / "state"), "info"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "physai-core" in result.output and "local" in result.output
    assert str(tmp_path / "state") in result.output


def test_azure_profile_without_settings_says_what_is_missing() -> None:
    result = runner.invoke(app, ["--profile", "azure", "info", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["storage_root"].startswith("(not configured: setting 'azure_storage_container'")


def test_bad_profile_is_one_line_and_exit_2() -> None:
    result = runner.invoke(app, ["--profile", "cloud", "info"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid setting profile")


def test_specs_lists_every_domain_and_filters() -> None:
    result = runner.invoke(app, ["specs", "--json"])
    assert result.exit_code == 0, result.output
    ids = {row["id"] for row in json.loads(result.output)}
    assert "core.settings" in ids
    assert {i.split(".")[0] for i in ids} >= {"core", *DOMAINS}
    result = runner.invoke(app, ["specs", "--domain", "training", "--json"])
    assert {row["id"].split(".")[0] for row in json.loads(result.output)} == {"training"}


def test_unknown_domain_is_exit_2() -> None:
    result = runner.invoke(app, ["specs", "--domain", "nope"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown domain 'nope'")


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_domain_sub_app_lists_its_specs(domain: str) -> None:
    result = runner.invoke(app, [domain, "specs", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and all(row["id"].startswith(f"{domain}.") for row in rows)


def test_installed_packages_have_versions() -> None:
    packages = installed_packages()
    assert all(v.count(".") >= 2 for v in packages.values())


def test_console_script_runs_in_a_real_process() -> None:
    code = "from physai.core.cli import main; main()"
    ok = subprocess.run(
        [sys.executable, "-c", code, "info", "--json"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["profile"] == "local"
    bad = subprocess.run(
        [sys.executable, "-c", code, "--config", "missing.toml", "info"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: config file missing.toml does not exist"


def test_domain_app_gets_global_settings_and_reports_user_errors(tmp_path: Path) -> None:
    from physai.core.cli import domain_app, get_settings
    from physai.core.errors import UserError

    demo = domain_app("demo", help="A demo domain.")

    @demo.command("where")
    def where(ctx: typer.Context) -> None:
        typer.echo(str(get_settings(ctx).state_dir))

    @demo.command("fail")
    def fail() -> None:
        raise UserError("dataset 'x' has no meta/info.json\nsecond line")

    result = runner.invoke(demo, ["where"])
    assert result.exit_code == 0 and result.output.strip() == str(tmp_path.resolve() / ".physai")
    result = runner.invoke(demo, ["fail"])
    assert result.exit_code == 2
    assert result.stderr == "error: dataset 'x' has no meta/info.json second line\n"


def test_user_errors_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "physai.toml").write_text("profile = 'cloud'\n")
    before = sorted(tmp_path.rglob("*"))
    for args in (["info"], ["--home", str(tmp_path / "state"), "info"], ["specs", "--domain", "x"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
    assert sorted(tmp_path.rglob("*")) == before


def test_errors_cross_process_boundaries_as_themselves() -> None:
    """A worker's error is pickled back to the parent: it must arrive whole (the subclass, its
    one-line message, its exit code), whatever arguments its constructor takes."""
    import concurrent.futures
    import copy
    import multiprocessing

    from physai.core.errors import MissingDependencyError

    error = MissingDependencyError("EGL", "apt-get install libegl1")
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        back = pool.submit(copy.copy, error).result()  # pickled there and back
    assert type(back) is MissingDependencyError and back.exit_code == 2
    assert back.message == "EGL is not installed: apt-get install libegl1"
