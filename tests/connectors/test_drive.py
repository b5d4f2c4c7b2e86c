import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from connectors.errors import Skipped
from connectors.registry import make_reader
from rag_core.settings import Settings, SourceConfig
from rag_core.types import Document
from tests.connectors import exports


def read(settings: Settings, path: Path) -> tuple[dict[str, Document], list[Skipped]]:
    reader = make_reader(SourceConfig(name="people-drive", kind="drive", path=path), settings)
    items = list(reader.read())
    return {i.id: i for i in items if isinstance(i, Document)}, [i for i in items if isinstance(i, Skipped)]


def test_takeout_sample_documents_breadcrumbs_and_sidecar(settings: Settings) -> None:
    docs, skipped = read(settings, exports.SAMPLES / "drive-people")
    assert skipped == []  # archive_browser.html is Takeout's own page, outside Takeout/Drive: not a document
    assert set(docs) == {
        "drive:1sAmPlEeXpEnSeSpOlIcY0000000000",
        "IT Help/VPN how-to.md",
        "People Ops/Meal allowances.csv",
    }
    policy = docs["drive:1sAmPlEeXpEnSeSpOlIcY0000000000"]
    assert policy.title == "Expenses policy"
    assert policy.breadcrumb == ["People Ops"]
    assert policy.url == "https://docs.google.com/document/d/1sAmPlEeXpEnSeSpOlIcY0000000000/edit"
    assert policy.modified == datetime(2025, 2, 11, 16, 4, 27, tzinfo=UTC)
    assert policy.author == "Jonas Berg"
    assert "| Team dinner | USD 60 per person, including tax and tip |" in policy.text
    assert policy.text.startswith("# Expenses policy\n\nThis policy says")
    vpn = docs["IT Help/VPN how-to.md"]
    assert vpn.title == "VPN how-to" and vpn.breadcrumb == ["IT Help"]
    path = exports.SAMPLES / "drive-people" / "Takeout" / "Drive" / "IT Help" / "VPN how-to.md"
    assert vpn.url == path.resolve().as_uri()
    assert vpn.text == path.read_text().strip()
    assert docs["People Ops/Meal allowances.csv"].text.startswith("| City | Breakfast (USD) |")


def test_plain_folder_with_every_supported_format(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "drive"
    (root / "Policies" / "Travel").mkdir(parents=True)
    (root / "Policies" / "Travel" / "Travel.docx").write_bytes(exports.sample_docx())
    (root / "Policies" / "Travel" / "Travel.pdf").write_bytes(exports.text_pdf(["Trains under four hours."]))
    (root / "Equipment.xlsx").write_bytes(exports.sample_xlsx())
    (root / "Goals.pptx").write_bytes(exports.sample_pptx())
    (root / "notes.txt").write_text("Plain notes.")
    (root / "page.htm").write_text("<title>Page</title><p>Hello</p>")
    docs, skipped = read(settings, root)
    assert skipped == []
    assert set(docs) == {
        "Policies/Travel/Travel.docx",
        "Policies/Travel/Travel.pdf",
        "Equipment.xlsx",
        "Goals.pptx",
        "notes.txt",
        "page.htm",
    }
    docx = docs["Policies/Travel/Travel.docx"]
    assert docx.breadcrumb == ["Policies", "Travel"] and docx.title == "Travel"
    assert docx.author == "Grace Hopper"  # from the file itself when there is no sidecar
    assert docs["Policies/Travel/Travel.pdf"].text == "Trains under four hours."


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_read(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "Takeout" / "Drive"
    root.mkdir(parents=True)
    (root / "good.md").write_text("# Good\n\nStill indexed.")
    (root / "corrupt.docx").write_bytes(b"PK\x03\x04garbage")
    (root / "locked.pdf").write_bytes(exports.encrypted_pdf(["secret"]))
    (root / "scan.pdf").write_bytes(exports.image_only_pdf())
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "binary.txt").write_bytes(b"\x00\x01\x02")
    (root / "good.md.json").write_text("{not json")  # an unreadable sidecar: the file is still indexed
    docs, skipped = read(settings, tmp_path)
    assert list(docs) == ["good.md"]
    assert docs["good.md"].title == "good"
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["Takeout/Drive/photo.jpg"] == "unsupported file type .jpg"
    assert reasons["Takeout/Drive/locked.pdf"] == "encrypted PDF (needs a password)"
    assert reasons["Takeout/Drive/scan.pdf"].startswith("no text layer")
    assert reasons["Takeout/Drive/corrupt.docx"].startswith("corrupt .docx file")
    assert reasons["Takeout/Drive/binary.txt"] == "binary data, not text"
    assert {s.doc_id for s in skipped if s.path.endswith(".pdf")} == {"locked.pdf", "scan.pdf"}


def test_takeout_zip_with_sidecars_in_drive_api_v2_shape(settings: Settings, tmp_path: Path) -> None:
    zipped = tmp_path / "takeout-20250301T000000Z-001.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Takeout/archive_browser.html", "<p>index</p>")
        zf.writestr("Takeout/Drive/My Drive/Handbook/Holidays.md", "# Holidays\n\nTwelve public holidays.")
        zf.writestr(
            "Takeout/Drive/My Drive/Handbook/Holidays.md-info.json",
            json.dumps(
                {
                    "id": "abc123",
                    "title": "Holidays.md",
                    "alternateLink": "https://drive.google.com/file/d/abc123/view",
                    "modifiedDate": "2025-01-05T10:00:00Z",
                    "lastModifyingUserName": "Sam Lee",
                }
            ),
        )
        zf.writestr("Takeout/Drive/../../escape.md", "# nope")
    docs, skipped = read(settings, zipped)
    assert [(s.path, s.reason) for s in skipped] == [
        ("Takeout/Drive/../../escape.md", "path escapes the export root")
    ]
    (doc,) = docs.values()
    assert doc.id == "drive:abc123"
    assert doc.title == "Holidays"
    assert doc.breadcrumb == ["My Drive", "Handbook"]
    assert doc.url == "https://drive.google.com/file/d/abc123/view"
    assert doc.author == "Sam Lee"
    assert doc.modified == datetime(2025, 1, 5, 10, tzinfo=UTC)


def test_oversized_file_is_skipped(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    (tmp_path / "big.txt").write_text("x" * 2000)
    (tmp_path / "small.txt").write_text("fine")
    docs, skipped = read(make_settings(tmp_path / "data", max_file_bytes=1000), tmp_path)
    assert list(docs) == ["small.txt"]
    assert skipped == [
        Skipped("big.txt", "file is 2,000 bytes, over the max_file_bytes limit of 1,000", doc_id="big.txt")
    ]
