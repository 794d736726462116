"""deploy/ holds exactly what `conveyor deploy render` writes with the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import _register, cli
from conveyor.deploy import TARGETS, render
from tests.deploy.conftest import plan_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("target", TARGETS)
def test_deploy_directory_equals_a_fresh_render(target: str) -> None:
    files = render(target, plan_for())  # type: ignore[arg-type]
    for relative, text in files.items():
        path = DEPLOY / relative
        assert path.is_file(), (
            f"deploy/{relative} is missing: run `conveyor deploy render {target}`"
        )
        assert path.read_text() == text, f"deploy/{relative} drifted: render it again"
    # Nothing left over from an earlier render either.
    for folder in {Path(r).parent for r in files if Path(r).parent != Path(".")}:
        on_disk = {p.relative_to(DEPLOY).as_posix() for p in (DEPLOY / folder).iterdir()}
        assert on_disk == {r for r in files if Path(r).parent == folder}


def test_the_command_writes_the_files_under_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _register()
    result = CliRunner().invoke(
        cli,
        ["deploy", "render", "kubernetes", "--profiles", "processing", "--out", "out"],
    )
    assert result.exit_code == 0, result.output
    workers = (tmp_path / "out" / "kubernetes" / "workers.yaml").read_text()
    assert "conveyor-worker-processing" in workers
    assert "conveyor-worker-batch" not in workers


def test_an_unknown_target_or_profile_is_refused(tmp_path: Path) -> None:
    _register()
    result = CliRunner().invoke(cli, ["deploy", "render", "nomad", "--out", str(tmp_path)])
    assert result.exit_code != 0
    result = CliRunner().invoke(
        cli, ["deploy", "render", "compose", "--profiles", "nope", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert not list(tmp_path.iterdir())
