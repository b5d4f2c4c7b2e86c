import os
import zipfile
from pathlib import Path

import pytest

from connectors.archive import Limits, open_export
from connectors.errors import ExportUnavailable, ExtractError

LIMITS = Limits(max_file_bytes=5_000_000, max_export_bytes=50_000_000, max_zip_ratio=100.0)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def test_folder_lists_relative_posix_paths_and_reads_them(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "page.md").write_text("# Hi")
    with open_export(tmp_path, LIMITS) as export:
        assert [(e.path, e.size) for e in export.entries()] == [("a/b/page.md", 4)]
        assert export.read_bytes("a/b/page.md") == b"# Hi"
        assert export.uri("a/b/page.md") == (tmp_path / "a" / "b" / "page.md").resolve().as_uri()


def test_symlinks_out_of_the_export_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("private key")
    root = tmp_path / "export"
    root.mkdir()
    (root / "ok.txt").write_text("fine")
    os.symlink(outside, root / "leak.txt")
    os.symlink(tmp_path, root / "loop")
    with open_export(root, LIMITS) as export:
        assert [e.path for e in export.entries()] == ["ok.txt"]
        reasons = {s.path: s.reason for s in export.skipped}
    assert reasons == {
        "leak.txt": "path escapes the export root (symbolic link)",
        "loop": "symbolic link to a folder; not followed",
    }


def test_zip_members_escaping_the_root_are_refused(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "x.zip",
        {
            "../evil.txt": b"x",
            "/etc/passwd.txt": b"x",
            "docs/..\\..\\win.txt": b"x",
            "C:/boot.txt": b"x",
            "ok/a.txt": b"a",
        },
    )
    with open_export(path, LIMITS) as export:
        assert [e.path for e in export.entries()] == ["ok/a.txt"]
        assert {s.reason for s in export.skipped} == {"path escapes the export root"}
        assert len(export.skipped) == 4


def test_zip_bomb_member_over_the_ratio_is_refused_but_others_are_read(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "bomb.zip", {"zeros.txt": b"0" * (4 * 1024 * 1024), "fine.txt": b"hello"})
    with open_export(path, LIMITS) as export:
        assert [e.path for e in export.entries()] == ["fine.txt"]
        (skipped,) = export.skipped
    assert skipped.path == "zeros.txt"
    assert "over max_zip_ratio 100 (zip bomb?)" in skipped.reason


def test_zip_expanding_past_the_total_cap_is_refused_as_a_whole(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "big.zip", {f"f{i}.txt": os.urandom(1000) for i in range(5)})
    with pytest.raises(ExportUnavailable, match="over the max_export_bytes limit of 4,000"):
        open_export(path, Limits(5_000_000, 4_000, 100.0)).entries()


def test_member_over_the_file_size_limit_is_refused_on_read(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"big.txt": os.urandom(2000)})
    with open_export(path, Limits(1000, 10_000, 100.0)) as export:
        export.entries()
        with pytest.raises(ExtractError, match="over the max_file_bytes limit of 1,000"):
            export.read_bytes("big.txt")


def test_corrupt_member_is_an_extract_error(tmp_path: Path) -> None:
    payload = os.urandom(600)  # incompressible: its deflated bytes sit right after the name
    path = make_zip(tmp_path / "x.zip", {"a.txt": payload, "b.txt": b"second"})
    raw = bytearray(path.read_bytes())
    start = raw.index(b"a.txt") + len(b"a.txt")
    raw[start + 100 : start + 120] = bytes(b ^ 0xFF for b in raw[start + 100 : start + 120])
    path.write_bytes(bytes(raw))
    with open_export(path, LIMITS) as export:
        export.entries()
        with pytest.raises(ExtractError, match="corrupt zip member"):
            export.read_bytes("a.txt")
        assert export.read_bytes("b.txt") == b"second"


def test_corrupt_or_missing_export_is_unavailable(tmp_path: Path) -> None:
    bad = tmp_path / "export.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ExportUnavailable, match="is not a readable zip file"):
        open_export(bad, LIMITS)
    with pytest.raises(ExportUnavailable, match="does not exist"):
        open_export(tmp_path / "gone", LIMITS)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(ExportUnavailable, match="neither a folder nor a zip"):
        open_export(other, LIMITS)


def test_utf8_names_without_the_utf8_flag_are_recovered(tmp_path: Path) -> None:
    # An old zip tool: UTF-8 bytes in the name but no UTF-8 flag, which zipfile would read as cp437 ("├£ber").
    path = make_zip(tmp_path / "legacy.zip", {"XXber.txt": b"x"})
    path.write_bytes(path.read_bytes().replace(b"XXber.txt", "Über.txt".encode()))
    with open_export(path, LIMITS) as export:
        assert [e.path for e in export.entries()] == ["Über.txt"]
        assert export.read_bytes("Über.txt") == b"x"


def test_encrypted_member_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"a.txt": b"secret"})
    raw = bytearray(path.read_bytes())
    # Set the "encrypted" bit in the local header and the central directory entry.
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = raw.index(sig)
        flag_at = at + (6 if sig == b"PK\x03\x04" else 8)
        raw[flag_at] |= 0x1
    path.write_bytes(bytes(raw))
    with open_export(path, LIMITS) as export:
        assert export.entries() == []
        assert [(s.path, s.reason) for s in export.skipped] == [("a.txt", "encrypted zip member")]
