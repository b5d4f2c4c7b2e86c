"""Safe access to an export, unpacked folder or zip: size caps, zip-bomb caps, no paths outside the root.

Readers see every file as a clean relative POSIX path; anything unsafe is refused with a reason, never read.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from connectors.errors import ExportUnavailable, ExtractError, Skipped
from rag_core.settings import Settings

# Small members compress far better than any real bomb ratio (a 20 KB file of spaces deflates ~1000:1), so the
# ratio cap only applies above this size; the per-file and total caps still bound everything below it.
_RATIO_GRACE_BYTES = 1024 * 1024
_UTF8_NAME_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1


@dataclass(frozen=True, slots=True)
class Limits:
    """What an export may contain before files (or the whole zip) are refused."""

    max_file_bytes: int
    max_export_bytes: int
    max_zip_ratio: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_file_bytes, settings.max_export_bytes, settings.max_zip_ratio)


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of an export."""

    path: str  # relative POSIX path inside the export, decoded to clean text
    size: int  # uncompressed bytes


def _safe_relative(name: str) -> str | None:
    """The member name as a relative POSIX path, or None when it points outside the root."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _clean_text(name: str) -> str:
    """A file name with undecodable bytes (surrogate escapes) turned into readable text."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("cp1252", errors="replace")


class Export(ABC):
    """The files of one export; `skipped` holds the entries refused while listing."""

    def __init__(self, location: Path, limits: Limits) -> None:
        self.location = location
        self.limits = limits
        self.skipped: list[Skipped] = []

    @abstractmethod
    def entries(self) -> list[Entry]: ...

    @abstractmethod
    def read_bytes(self, path: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes; raises `ExtractError` when it is over `max_bytes` (default: the per-file limit) or
        unreadable."""

    @abstractmethod
    def uri(self, path: str) -> str:
        """A link to the file on this machine, for documents with no web URL."""

    def close(self) -> None:  # noqa: B027 - only zips hold a handle
        pass

    def __enter__(self) -> Export:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_size(self, size: int, max_bytes: int | None) -> int:
        """The byte cap for this read; raises `ExtractError` when `size` is over it."""
        if max_bytes is not None:
            if size > max_bytes:
                raise ExtractError(
                    f"file is {size:,} bytes, over the max_export_bytes limit of {max_bytes:,}"
                )
            return max_bytes
        if size > self.limits.max_file_bytes:
            raise ExtractError(
                f"file is {size:,} bytes, over the max_file_bytes limit of {self.limits.max_file_bytes:,}"
            )
        return self.limits.max_file_bytes


class FolderExport(Export):
    def __init__(self, location: Path, limits: Limits) -> None:
        super().__init__(location, limits)
        self._root = location.resolve()
        self._real: dict[str, Path] = {}
        self._entries: list[Entry] | None = None

    def entries(self) -> list[Entry]:
        if self._entries is not None:
            return self._entries
        entries: list[Entry] = []

        def unreadable(exc: OSError) -> None:
            # os.walk leaves out a folder it cannot list unless told: say so, and keep what it held.
            folder = Path(exc.filename or self._root)
            why = exc.strerror or type(exc).__name__
            if folder == self._root:
                raise ExportUnavailable(f"export folder {self.location} cannot be read: {why}") from exc
            rel = _clean_text(folder.relative_to(self._root).as_posix())
            reason = f"cannot read the folder: {why}; kept its indexed documents"
            self.skipped.append(Skipped(f"{rel}/", reason, keep_prefix=""))

        for dirpath, dirnames, filenames in os.walk(self._root, onerror=unreadable, followlinks=False):
            dirnames.sort()
            here = Path(dirpath)
            for link in [d for d in dirnames if (here / d).is_symlink()]:
                # Linked folders are never followed: they may point anywhere, or loop.
                dirnames.remove(link)
                rel = _clean_text((here / link).relative_to(self._root).as_posix())
                self.skipped.append(Skipped(rel, "symbolic link to a folder; not followed"))
            for name in sorted(filenames):
                full = here / name
                rel = _clean_text(full.relative_to(self._root).as_posix())
                try:
                    real = full.resolve()
                    if not real.is_relative_to(self._root):
                        self.skipped.append(Skipped(rel, "path escapes the export root (symbolic link)"))
                        continue
                    if not real.is_file():
                        continue
                    size = real.stat().st_size
                except OSError as exc:
                    self.skipped.append(Skipped(rel, f"cannot read the file: {exc.strerror or exc}"))
                    continue
                self._real[rel] = real
                entries.append(Entry(rel, size))
        self._entries = entries
        return entries

    def read_bytes(self, path: str, max_bytes: int | None = None) -> bytes:
        real = self._real.get(path)
        if real is None:
            raise ExtractError("not a file of this export")
        try:
            cap = self._check_size(real.stat().st_size, max_bytes)
            with real.open("rb") as fh:
                data = fh.read(cap + 1)
        except OSError as exc:
            raise ExtractError(f"cannot read the file: {exc.strerror or exc}") from exc
        self._check_size(len(data), max_bytes)  # it may have grown since it was listed
        return data

    def uri(self, path: str) -> str:
        real = self._real.get(path)
        return real.as_uri() if real else (self._root / path).as_uri()


class ZipExport(Export):
    def __init__(self, location: Path, limits: Limits) -> None:
        super().__init__(location, limits)
        try:
            self._zip = zipfile.ZipFile(location)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ExportUnavailable(f"export {location} is not a readable zip file ({exc})") from exc
        self._members: dict[str, zipfile.ZipInfo] = {}
        self._entries: list[Entry] | None = None

    def entries(self) -> list[Entry]:
        if self._entries is not None:
            return self._entries
        infos = [i for i in self._zip.infolist() if not i.is_dir()]
        total = sum(i.file_size for i in infos)
        if total > self.limits.max_export_bytes:
            raise ExportUnavailable(
                f"zip {self.location.name} expands to {total:,} bytes, over the max_export_bytes limit of "
                f"{self.limits.max_export_bytes:,} (zip bomb?)"
            )
        entries: list[Entry] = []
        for info in infos:
            name = info.filename
            if not info.flag_bits & _UTF8_NAME_FLAG:
                # Zips without the UTF-8 flag are decoded as cp437 by zipfile; most such tools wrote UTF-8 anyway.
                with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                    name = name.encode("cp437").decode("utf-8")
            rel = _safe_relative(name)
            if rel is None:
                self.skipped.append(Skipped(name, "path escapes the export root"))
                continue
            if info.flag_bits & _ENCRYPTED_FLAG:
                self.skipped.append(Skipped(rel, "encrypted zip member"))
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > _RATIO_GRACE_BYTES and ratio > self.limits.max_zip_ratio:
                self.skipped.append(
                    Skipped(
                        rel,
                        f"compression ratio {ratio:,.0f}:1 is over max_zip_ratio {self.limits.max_zip_ratio:g} (zip bomb?)",
                    )
                )
                continue
            self._members[rel] = info
            entries.append(Entry(rel, info.file_size))
        entries.sort(key=lambda e: e.path)
        self._entries = entries
        return entries

    def read_bytes(self, path: str, max_bytes: int | None = None) -> bytes:
        info = self._members.get(path)
        if info is None:
            raise ExtractError("not a file of this export")
        cap = self._check_size(info.file_size, max_bytes)
        try:
            # zipfile stops at the declared size and checks the CRC, so a member cannot expand past file_size.
            with self._zip.open(info) as fh:
                return fh.read(cap + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
            # zlib.error: the central directory is intact but this member's deflate data is damaged
            raise ExtractError(f"corrupt zip member ({exc})") from exc

    def uri(self, path: str) -> str:
        return f"{self.location.resolve().as_uri()}#{path}"

    def close(self) -> None:
        self._zip.close()


def open_export(location: Path, limits: Limits) -> Export:
    """The export at `location`: a folder or a .zip; raises `ExportUnavailable` naming what is wrong."""
    if not location.exists():
        raise ExportUnavailable(f"export {location} does not exist")
    if location.is_dir():
        return FolderExport(location, limits)
    if location.suffix.lower() == ".zip" or zipfile.is_zipfile(location):
        return ZipExport(location, limits)
    raise ExportUnavailable(f"export {location} is neither a folder nor a zip file")
