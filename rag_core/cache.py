"""Answer cache keyed by everything that changes an answer, the index version included."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rag_core.kv import KeyValue
from rag_core.questions import normalise_question
from rag_core.types import Answer, Citation, Turn

log = logging.getLogger(__name__)


def cache_key(
    question: str,
    allowed_sources: Sequence[str] | None,
    history: Sequence[Turn],
    answer_settings: dict[str, Any],
    index_version: str,
    audience: str = "",
) -> str:
    material = json.dumps(
        {
            "audience": audience,  # `Audience.key()`: an answer is never served to another set of principals
            "q": normalise_question(question),
            "sources": sorted(allowed_sources) if allowed_sources is not None else None,
            "history": [(t.role, t.text) for t in history],
            "settings": answer_settings,
            "index": index_version,
        },
        sort_keys=True,
        default=str,
    )
    return "ragbot:answer:" + hashlib.sha256(material.encode()).hexdigest()


class AnswerCache:
    def __init__(self, kv: KeyValue, ttl_s: int) -> None:
        self.kv = kv
        self.ttl_s = ttl_s

    def get(self, key: str) -> Answer | None:
        raw = self.kv.get(key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            data["citations"] = [Citation(**c) for c in data["citations"]]
            return Answer(**data)
        except (ValueError, TypeError, KeyError):
            return None  # an entry from an older layout is a miss, not an error

    def put(self, key: str, answer: Answer) -> None:
        self.kv.set(key, json.dumps(asdict(answer)), self.ttl_s)
