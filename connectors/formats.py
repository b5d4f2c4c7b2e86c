"""Text extraction per file type, to Markdown-like text: .docx .pdf .html .md .txt .csv .xlsx .pptx.

Each extractor uses the maintained parser for its format and raises `ExtractError` with a one-line reason for a
file it cannot use (corrupt, encrypted, no text layer, undecodable, zip bomb inside an Office file).
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from connectors.archive import Limits
from connectors.errors import ExtractError
from connectors.html_markdown import html_to_markdown, markdown_table, parse_html

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: legacy Office, or an encrypted OOXML file
_RATIO_GRACE_BYTES = 1024 * 1024  # see connectors.archive


@dataclass(slots=True)
class Extracted:
    """A file's text and whatever metadata the format itself carries."""

    text: str
    title: str | None = None
    author: str | None = None
    modified: datetime | None = None


def supported(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in _EXTRACTORS


def extract(name: str, data: bytes, limits: Limits) -> Extracted:
    """The text of file `name`; raises `ExtractError` naming why it cannot be used."""
    suffix = PurePosixPath(name).suffix.lower()
    extractor = _EXTRACTORS.get(suffix)
    if extractor is None:
        raise ExtractError(f"unsupported file type {suffix or '(none)'}")
    if len(data) > limits.max_file_bytes:
        raise ExtractError(
            f"file is {len(data):,} bytes, over the max_file_bytes limit of {limits.max_file_bytes:,}"
        )
    if suffix in (".docx", ".xlsx", ".pptx"):
        _check_office_zip(data, suffix, limits)
    try:
        result = extractor(data)
    except ExtractError:
        raise
    except Exception as exc:  # parsers raise anything on malformed files; one bad file is skipped
        raise ExtractError(f"corrupt {suffix} file ({type(exc).__name__}: {exc})") from exc
    if not result.text.strip():
        raise ExtractError("no text in the file")
    return result


def decode_text(data: bytes) -> str:
    """Bytes of a text file as str: BOM, then UTF-8, then a detected legacy encoding; binary data is refused."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ExtractError(f"invalid {encoding} text ({exc.reason} at byte {exc.start})") from exc
    if b"\x00" in data:  # no text encoding without a BOM uses NUL bytes; binary formats do
        raise ExtractError("binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.chaos > 0.3:
        raise ExtractError("text is not UTF-8 and its encoding could not be detected")
    return str(best)


# --- plain formats -----------------------------------------------------------------------------------------------


def _markdown(data: bytes) -> Extracted:
    text = decode_text(data).replace("\r\n", "\n")
    title = None
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":  # YAML front matter: metadata, not content
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() in ("---", "...")), None)
        if end is not None:
            for line in lines[1:end]:
                key, _, value = line.partition(":")
                if key.strip() == "title" and value.strip():
                    title = value.strip().strip("\"'")
            text = "\n".join(lines[end + 1 :])
    if title is None:
        title = next((line[2:].strip() for line in text.split("\n") if line.startswith("# ")), None)
    return Extracted(text.strip(), title=title or None)


def _plain_text(data: bytes) -> Extracted:
    return Extracted(decode_text(data).replace("\r\n", "\n").strip())


def _html(data: bytes) -> Extracted:
    soup = parse_html(data)
    title_el = soup.find("title")
    title = " ".join(title_el.get_text().split()) if title_el else None
    return Extracted(html_to_markdown(soup.body or soup), title=title or None)


def _csv(data: bytes) -> Extracted:
    text = decode_text(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise ExtractError(f"malformed CSV ({exc})") from exc
    return Extracted(markdown_table(rows))


# --- Office and PDF ------------------------------------------------------------------------------------------------


def _check_office_zip(data: bytes, suffix: str, limits: Limits) -> None:
    """Office files are zips: refuse encrypted ones, corrupt ones and bombs before a parser inflates them."""
    if data.startswith(_OLE_MAGIC):
        raise ExtractError(f"password-protected (encrypted) or legacy-format {suffix} file")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ExtractError(f"corrupt {suffix} file (not a valid zip package: {exc})") from exc
    total = sum(i.file_size for i in infos)
    if total > limits.max_export_bytes:
        raise ExtractError(f"{suffix} file expands to {total:,} bytes, over max_export_bytes (zip bomb?)")
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_GRACE_BYTES and ratio > limits.max_zip_ratio:
            raise ExtractError(
                f"{suffix} part {info.filename} has compression ratio {ratio:,.0f}:1 (zip bomb?)"
            )


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _docx(data: bytes) -> Extracted:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ExtractError(f"corrupt .docx file ({exc})") from exc
    blocks: list[str] = []
    list_run: list[str] = []

    def flush_list() -> None:
        if list_run:
            blocks.append("\n".join(list_run))
            list_run.clear()

    try:
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                flush_list()
                blocks.append(markdown_table([[cell.text for cell in row.cells] for row in item.rows]))
                continue
            text = " ".join(item.text.split())
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            num_pr = item._p.pPr.numPr if item._p.pPr is not None else None
            if style.startswith("Heading ") and style[8:].isdigit():
                flush_list()
                blocks.append(f"{'#' * min(int(style[8:]), 6)} {text}")
            elif style == "Title":
                flush_list()
                blocks.append(f"# {text}")
            elif num_pr is not None or style.startswith("List"):
                ilvl = getattr(num_pr, "ilvl", None)  # python-docx's stubs do not declare it
                level = ilvl.val if ilvl is not None else 0
                marker = "1." if "Number" in style else "-"
                list_run.append(f"{'  ' * level}{marker} {text}")
            else:
                flush_list()
                blocks.append(text)
    except (KeyError, ValueError, AttributeError) as exc:
        raise ExtractError(f"corrupt .docx file ({exc})") from exc
    flush_list()
    props = document.core_properties
    return Extracted(
        "\n\n".join(b for b in blocks if b),
        title=props.title or None,
        author=props.author or None,
        modified=_aware(props.modified),
    )


def _pdf(data: bytes) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                unlocked = reader.decrypt("")  # many PDFs are "encrypted" with an empty user password
            except (DependencyError, NotImplementedError) as exc:
                raise ExtractError(f"encrypted PDF that cannot be opened here ({exc})") from exc
            if not unlocked:
                raise ExtractError("encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
    except FileNotDecryptedError as exc:
        raise ExtractError("encrypted PDF (needs a password)") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise ExtractError(f"corrupt PDF ({type(exc).__name__}: {exc})") from exc
    text = "\n\n".join(_reflow(p) for p in pages if p.strip())
    if not text:
        raise ExtractError(f"no text layer in {len(pages)} page(s): a scanned-image PDF? (no OCR)")
    title = author = None
    modified = None
    if meta is not None:
        title, author = meta.title or None, meta.author or None
        try:
            modified = _aware(meta.modification_date)
        except (ValueError, TypeError):
            modified = None
    return Extracted(text, title=title, author=author, modified=modified)


def _reflow(page: str) -> str:
    """A page's text with one-word-per-line runs (some PDF writers place each word alone) joined back into
    sentences; blank lines stay paragraph breaks. A word ending in "-" joins the next one as written ("sign-on"):
    each word sits on its own line by the writer's choice, not because a line wrapped."""
    lines = [line.strip() for line in page.splitlines()]
    filled = [line for line in lines if line]
    single = sum(1 for line in filled if len(line.split()) == 1)
    if len(filled) < 4 or single < 0.6 * len(filled):
        return page.strip()  # ordinary lines of several words: keep the writer's layout
    paragraphs: list[str] = []
    words: list[str] = []
    for line in [*lines, ""]:
        if not line:
            if words:
                paragraphs.append(" ".join(words))
                words = []
        elif words and words[-1].endswith("-") and line[:1].islower():
            words[-1] += line
        else:
            words.append(line)
    return "\n\n".join(paragraphs)


def _xlsx(data: bytes) -> Extracted:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise ExtractError(f"corrupt .xlsx file ({exc})") from exc
    try:
        blocks: list[str] = []
        for sheet in workbook.worksheets:
            rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            rows = [r for r in rows if any(c.strip() for c in r)]
            if not rows:
                continue
            width = max(max((i + 1 for i, c in enumerate(r) if c.strip()), default=0) for r in rows)
            blocks.append(f"## {sheet.title}\n\n{markdown_table([r[:width] for r in rows])}")
        props = workbook.properties
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ExtractError(f"corrupt .xlsx file ({exc})") from exc
    finally:
        workbook.close()
    return Extracted(
        "\n\n".join(blocks),
        title=props.title or None,
        author=props.creator or None,
        modified=_aware(props.modified),
    )


def _pptx(data: bytes) -> Extracted:
    from pptx import Presentation
    from pptx.enum.shapes import MSO_SHAPE_TYPE
    from pptx.exc import PackageNotFoundError

    try:
        deck = Presentation(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ExtractError(f"corrupt .pptx file ({exc})") from exc

    def shape_blocks(shapes: Iterable[Any], title_id: int | None) -> list[str]:
        out: list[str] = []
        for shape in shapes:
            if title_id is not None and shape.shape_id == title_id:  # shapes are new proxies on each access
                continue
            if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
                out.extend(shape_blocks(shape.shapes, None))
            elif getattr(shape, "has_table", False) and shape.has_table:
                out.append(markdown_table([[c.text for c in row.cells] for row in shape.table.rows]))
            elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                lines = [
                    f"{'  ' * p.level}- {' '.join(p.text.split())}"
                    for p in shape.text_frame.paragraphs
                    if p.text.strip()
                ]
                if lines:
                    out.append("\n".join(lines))
        return out

    try:
        blocks: list[str] = []
        for n, slide in enumerate(deck.slides, 1):
            title_shape = slide.shapes.title
            title = (
                " ".join(title_shape.text.split())
                if title_shape is not None and title_shape.has_text_frame
                else ""
            )
            blocks.append(f"## {title}" if title else f"## Slide {n}")
            blocks.extend(
                shape_blocks(slide.shapes, title_shape.shape_id if title_shape is not None else None)
            )
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    blocks.append(f"Notes: {' '.join(notes.text.split())}")
        props = deck.core_properties
    except (KeyError, ValueError, AttributeError) as exc:
        raise ExtractError(f"corrupt .pptx file ({exc})") from exc
    return Extracted(
        "\n\n".join(blocks),
        title=props.title or None,
        author=props.author or None,
        modified=_aware(props.modified),
    )


_EXTRACTORS: dict[str, Callable[[bytes], Extracted]] = {
    ".md": _markdown,
    ".markdown": _markdown,
    ".txt": _plain_text,
    ".html": _html,
    ".htm": _html,
    ".csv": _csv,
    ".docx": _docx,
    ".pdf": _pdf,
    ".xlsx": _xlsx,
    ".pptx": _pptx,
}
