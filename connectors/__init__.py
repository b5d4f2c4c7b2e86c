"""Readers for Confluence and Google Drive exports, the incremental sync into the index, and its schedule."""

from __future__ import annotations

from pathlib import Path

from rag_core.settings import SourceConfig


def sample_sources(root: Path) -> list[SourceConfig]:
    """The bundled sample knowledge base as sources; `root` is the repository root or its `samples/` folder."""
    root = root.resolve()
    samples = root / "samples" if (root / "samples").is_dir() else root
    return [
        SourceConfig(name="eng-wiki", kind="confluence", path=samples / "confluence-eng", public=True),
        SourceConfig(name="people-drive", kind="drive", path=samples / "drive-people", public=True),
    ]
