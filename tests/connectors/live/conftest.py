"""Fixtures for live sources: fake API servers started per test and stopped after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.connectors.live.fake_http import FakeApi


@pytest.fixture
def serve() -> Iterator[Callable[[FakeApi], FakeApi]]:
    """Start fake servers; every one is stopped (gates released) after the test."""
    started: list[FakeApi] = []

    def start(api: FakeApi) -> FakeApi:
        started.append(api.start())
        return api

    yield start
    for api in started:
        api.stop()
