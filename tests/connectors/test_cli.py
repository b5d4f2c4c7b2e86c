import argparse
import io
from pathlib import Path

import pytest

from connectors.cli import report_table, sync_command
from connectors.sync import SyncReport
from rag_core.engine import Engine
from rag_core.errors import ConfigError, UserError
from rag_core.settings import SourceConfig
from tests.connectors import exports


def args(source: str | None = None, full: bool = False, verbose: bool = False) -> argparse.Namespace:
    return argparse.Namespace(source=source, full=full, verbose=verbose)


def test_sync_command_prints_the_report_table_and_skipped_files(
    make_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    drive = exports.copy_sample("drive-people", tmp_path)
    (drive / "Takeout" / "Drive" / "logo.png").write_bytes(b"\x89PNG")
    configs = [
        SourceConfig(name="people-drive", kind="drive", path=drive),
        SourceConfig(name="gone-wiki", kind="confluence", path=tmp_path / "no-such-export"),
    ]
    engine, settings = make_engine(configs)
    # The command builds its engine from settings; hand it this test's engine so the model loads once.
    monkeypatch.setattr(Engine, "from_settings", classmethod(lambda cls, s=None: engine))
    out = io.StringIO()

    code = sync_command(args(), settings, out)

    lines = out.getvalue().splitlines()
    assert code == 1  # one source failed
    assert lines[0].split() == [
        "source",
        "added",
        "updated",
        "deleted",
        "unchanged",
        "skipped",
        "seconds",
        "version",
        "error",
    ]
    assert lines[1].split()[:6] == ["people-drive", "3", "0", "0", "0", "1"]
    assert lines[2].startswith("gone-wiki") and lines[2].endswith(
        f"export {tmp_path / 'no-such-export'} does not exist"
    )
    assert lines[3] == "skipped [people-drive] 1 × unsupported file type .png"
    assert "people-drive" in capsys.readouterr().err  # the progress bar


def test_sync_command_succeeds_for_one_source(
    make_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drive = exports.copy_sample("drive-people", tmp_path)
    engine, settings = make_engine([SourceConfig(name="people-drive", kind="drive", path=drive)])
    monkeypatch.setattr(Engine, "from_settings", classmethod(lambda cls, s=None: engine))
    assert sync_command(args("people-drive"), settings, io.StringIO()) == 0


def test_unknown_source_fails_before_any_model_loads(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_load(cls, s=None):
        raise AssertionError("models loaded for a bad command line")

    monkeypatch.setattr(Engine, "from_settings", classmethod(must_not_load))
    configured = settings.model_copy(
        update={"sources": [SourceConfig(name="eng-wiki", kind="confluence", path=Path("x"))]}
    )
    with pytest.raises(UserError, match="unknown source 'nope'; known sources: eng-wiki"):
        sync_command(args("nope"), configured, io.StringIO())
    with pytest.raises(ConfigError, match="no sources are configured"):
        sync_command(args(), settings, io.StringIO())


def test_report_table_aligns_columns() -> None:
    table = report_table(
        [SyncReport("a", added=12, duration_s=1.25, index_version=3), SyncReport("long-name", error="boom")]
    )
    assert table.splitlines() == [
        "source     added  updated  deleted  unchanged  skipped  seconds  version  error",
        "a          12     0        0        0          0        1.2      3",
        "long-name  0      0        0        0          0        0.0               boom",
    ]
