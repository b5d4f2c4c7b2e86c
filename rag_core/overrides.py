"""The per-answer settings an experiment arm or a caller may change (`Engine.answer(overrides=...)`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class AnswerOverrides(BaseModel):
    """Each field, when set, replaces the setting of the same name for one answer."""

    # strict: a JSON `true` is not a top_k, a string is not a number
    model_config = ConfigDict(extra="forbid", strict=True)

    top_k: int | None = None
    candidate_multiplier: int | None = None
    use_reranker: bool | None = None
    min_relevance: float | None = None
    max_context_tokens: int | None = None
    llm_model: str | None = None
    # query side, grounding, answerability (docs/answers.md)
    rewrite_follow_ups: bool | None = None
    multi_query: int | None = None
    hyde: bool | None = None
    grounding_min_overlap: float | None = None
    answerability_min: float | None = None


OVERRIDABLE = frozenset(AnswerOverrides.model_fields)


def check_overrides(overrides: Mapping[str, Any], where: str = "answer overrides") -> None:
    """A `ValueError` naming the first unknown key, or the first value of the wrong type."""
    unknown = set(overrides) - OVERRIDABLE
    if unknown:
        raise ValueError(f"unknown {where}: {sorted(unknown)}; allowed: {sorted(OVERRIDABLE)}")
    try:
        AnswerOverrides.model_validate(dict(overrides))
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0])
        raise ValueError(f"{where}: {key}={overrides[key]!r} has the wrong type") from None
