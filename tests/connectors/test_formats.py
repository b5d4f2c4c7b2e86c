import io
import zipfile

import pytest

from connectors.archive import Limits
from connectors.errors import ExtractError
from connectors.formats import decode_text, extract
from tests.connectors import exports

LIMITS = Limits(max_file_bytes=5_000_000, max_export_bytes=50_000_000, max_zip_ratio=100.0)


def test_markdown_front_matter_is_metadata_and_title_comes_from_it() -> None:
    data = b'---\ntitle: "Team handbook"\nlayout: page\n---\n# Welcome\n\nRead this first.\n'
    result = extract("handbook.md", data, LIMITS)
    assert result.title == "Team handbook"
    assert result.text == "# Welcome\n\nRead this first."


def test_markdown_title_falls_back_to_first_heading() -> None:
    assert extract("x.md", b"Intro line\n\n# Real title\n\nBody", LIMITS).title == "Real title"


def test_csv_with_semicolons_becomes_a_pipe_table() -> None:
    result = extract("rates.csv", "City;Dinner\nBerlin;35\nZürich;60\n".encode(), LIMITS)
    assert result.text == "| City | Dinner |\n| --- | --- |\n| Berlin | 35 |\n| Zürich | 60 |"


def test_html_file_title_and_structure() -> None:
    data = b"<html><head><title>VPN</title><style>x{}</style></head><body><h2>Setup</h2><ul><li>Install</li></ul></body></html>"
    result = extract("vpn.html", data, LIMITS)
    assert result.title == "VPN"
    assert result.text == "## Setup\n\n- Install"


def test_docx_headings_lists_table_and_core_properties() -> None:
    result = extract("travel.docx", exports.sample_docx(), LIMITS)
    assert result.text.split("\n\n") == [
        "# Travel policy",
        "Book trains for trips under four hours.",
        "## Hotels",
        "- Up to USD 180 per night in large cities.\n- Up to USD 120 per night elsewhere.",
        "| Class | Allowed |\n| --- | --- |\n| Economy | Always |",
    ]
    assert result.author == "Grace Hopper"
    assert result.title == "Travel policy"
    assert result.modified is not None and result.modified.tzinfo is not None


def test_xlsx_every_sheet_is_a_headed_table() -> None:
    result = extract("equipment.xlsx", exports.sample_xlsx(), LIMITS)
    assert (
        "## Laptops\n\n| Role | Laptop | Refresh (years) |\n| --- | --- | --- |\n| Engineer | 16-inch | 3 |"
        in result.text
    )
    assert "## Phones\n\n| Role | Phone |" in result.text


def test_pptx_slides_bullets_tables_and_notes() -> None:
    text = extract("goals.pptx", exports.sample_pptx(), LIMITS).text
    assert text.split("\n\n") == [
        "## Quarterly goals",
        "- Ship the new search\n  - Hybrid retrieval first",
        "Notes: Mention the latency budget.",
        "## Owners",
        "| Goal | Owner |\n| --- | --- |\n| Search | Lin |",
    ]


def test_pdf_text_layer() -> None:
    result = extract(
        "travel.pdf", exports.text_pdf(["Travel policy", "Book trains for short trips."]), LIMITS
    )
    assert result.text == "Travel policy\nBook trains for short trips."


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("locked.pdf", exports.encrypted_pdf(["secret plans"]), "encrypted PDF (needs a password)"),
        ("scan.pdf", exports.image_only_pdf(), "no text layer in 1 page(s): a scanned-image PDF? (no OCR)"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", "corrupt PDF"),
        ("broken.docx", b"PK\x03\x04 this is not really a zip", "corrupt .docx file"),
        (
            "locked.docx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600,
            "password-protected (encrypted)",
        ),
        ("broken.xlsx", b"not a zip at all", "corrupt .xlsx file"),
        ("broken.pptx", b"not a zip at all", "corrupt .pptx file"),
        ("data.txt", b"\x00\x01\x02\xff\xfe\x00binary", "binary data, not text"),
        ("empty.md", b"   \n\n", "no text in the file"),
        ("photo.png", b"\x89PNG", "unsupported file type .png"),
    ],
)
def test_bad_files_raise_a_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ExtractError) as info:
        extract(name, data, LIMITS)
    assert str(info.value).startswith(reason)


def test_docx_missing_its_document_part_is_corrupt() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
    with pytest.raises(ExtractError, match=r"^corrupt \.docx file"):
        extract("hollow.docx", buf.getvalue(), LIMITS)


def test_office_file_that_is_a_zip_bomb_is_refused_before_parsing() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"\x00" * (8 * 1024 * 1024))
    with pytest.raises(ExtractError, match=r"compression ratio .*zip bomb"):
        extract("bomb.docx", buf.getvalue(), LIMITS)


def test_file_over_the_size_limit_is_refused() -> None:
    with pytest.raises(ExtractError, match="over the max_file_bytes limit of 10"):
        extract("big.txt", b"x" * 11, Limits(10, 100, 100.0))


def test_decode_text_handles_boms_and_legacy_encodings() -> None:
    assert decode_text("ünïcode".encode("utf-8-sig")) == "ünïcode"
    assert decode_text("VPN über Café".encode("utf-16")) == "VPN über Café"
    legacy = "Le café coûte trois euros à la cafétéria, près de la sortie où l'on dîne. " * 3
    assert decode_text(legacy.encode("cp1252")) == legacy
