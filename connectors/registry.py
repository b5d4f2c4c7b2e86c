"""Which reader reads which kind of source: `kind` → "module:Class", imported only when a source of it is read.

Adding a kind is one line here and one module (see connectors/README.md); no other module names the readers, so
`base.py` imports none of them and the settings know kinds only as strings.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from connectors.base import Reader
from rag_core.errors import ConfigError
from rag_core.settings import Settings, SourceConfig

READERS: dict[str, str] = {
    "confluence": "connectors.confluence:ConfluenceReader",
    "drive": "connectors.drive:DriveReader",
    "curated": "connectors.curated:CuratedReader",
}


def check_kinds(configs: Iterable[SourceConfig]) -> None:
    """A `ConfigError` with one line per source whose kind has no reader, naming the kinds there are."""
    from rag_core.settings import Settings
    from rag_core.settings_errors import example

    good = example("sources", Settings.model_fields["sources"])
    lines = [
        f"RAG_SOURCES[{i}].kind: source {config.name!r} has unknown kind {config.kind!r} "
        f"(expected {' or '.join(READERS)}); {good.replace('RAG_SOURCES=', 'e.g. RAG_SOURCES=', 1)}"
        for i, config in enumerate(configs)
        if config.kind not in READERS
    ]
    if lines:
        raise ConfigError("\n".join(lines))


def reader_class(kind: str) -> type[Reader]:
    module, name = READERS[kind].split(":")
    cls: type[Reader] = getattr(importlib.import_module(module), name)
    return cls


def make_reader(config: SourceConfig, settings: Settings) -> Reader:
    """The reader for a source's kind."""
    check_kinds([config])
    return reader_class(config.kind)(config, settings)
