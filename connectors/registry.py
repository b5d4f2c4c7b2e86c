"""Which reader reads which kind of source: `kind` → "module:Class", imported only when a source of it is read.

Adding a kind is one line here and one module (see connectors/README.md); no other module names the readers, so
`base.py` imports none of them and the settings know kinds only as strings.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from connectors.base import Reader
from connectors.live import LiveConnector
from rag_core.errors import ConfigError
from rag_core.settings import Settings, SourceConfig

READERS: dict[str, str] = {
    "confluence": "connectors.confluence:ConfluenceReader",
    "drive": "connectors.drive:DriveReader",
    "curated": "connectors.curated:CuratedReader",
}


# Live sources: read through their APIs by a `LiveConnector` (connectors/live.py), polled since a checkpoint.
CONNECTORS: dict[str, str] = {
    "confluence_api": "connectors.confluence_api.connector:ConfluenceApiConnector",
    "drive_api": "connectors.drive_api.connector:DriveApiConnector",
    "slack_threads": "connectors.slack_threads.connector:SlackThreadsConnector",
}
# What a live kind cannot do without, per kind (checked with the kinds; the token is checked when it is read).
_LIVE_REQUIRED: dict[str, tuple[str, ...]] = {
    "confluence_api": ("url", "spaces"),
    "drive_api": (),
    "slack_threads": ("channels",),
}


def is_live(kind: str) -> bool:
    return kind in CONNECTORS


def check_kinds(configs: Iterable[SourceConfig]) -> None:
    """A `ConfigError` with one line per source whose kind is unknown (naming the kinds there are) or that lacks
    what its kind needs (a path for exports; the API fields and a token for live sources)."""
    from rag_core.settings import Settings
    from rag_core.settings_errors import example

    good = example("sources", Settings.model_fields["sources"])
    kinds = [*READERS, *CONNECTORS]
    lines: list[str] = []
    for i, config in enumerate(configs):
        where = f"RAG_SOURCES[{i}]"
        if config.kind not in kinds:
            lines.append(
                f"{where}.kind: source {config.name!r} has unknown kind {config.kind!r} "
                f"(expected {', '.join(kinds[:-1])} or {kinds[-1]}); {good.replace('RAG_SOURCES=', 'e.g. RAG_SOURCES=', 1)}"
            )
        elif config.kind in READERS and config.path is None:
            lines.append(f"{where}.path: is required; {good.replace('RAG_SOURCES=', 'e.g. RAG_SOURCES=', 1)}")
        elif config.kind in CONNECTORS:
            for name in _LIVE_REQUIRED[config.kind]:
                if not getattr(config, name):
                    lines.append(
                        f"{where}.{name}: source {config.name!r} of kind {config.kind!r} needs {name}"
                    )
            if not (config.token_env or config.token_file):
                lines.append(
                    f"{where}.token_env: source {config.name!r} of kind {config.kind!r} needs token_env (the name "
                    "of an environment variable holding its credential) or token_file (a secret file)"
                )
    if lines:
        raise ConfigError("\n".join(lines))


def reader_class(kind: str) -> type[Reader]:
    module, name = READERS[kind].split(":")
    cls: type[Reader] = getattr(importlib.import_module(module), name)
    return cls


def make_connector(config: SourceConfig, settings: Settings) -> LiveConnector:
    """The live connector for a source's kind."""
    check_kinds([config])
    module, name = CONNECTORS[config.kind].split(":")
    cls: type[LiveConnector] = getattr(importlib.import_module(module), name)
    return cls(config, settings)


def make_reader(config: SourceConfig, settings: Settings) -> Reader:
    """The reader for a source's kind."""
    check_kinds([config])
    return reader_class(config.kind)(config, settings)
