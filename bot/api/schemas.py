"""Request and response bodies of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from rag_core.types import Answer, Citation

MAX_QUESTION_CHARS = 4000
MAX_HISTORY_TURNS = 50


def _unicode(value: str | None) -> str | None:
    """Text with a lone surrogate (no UTF-8 form) is refused like a question's (pydantic misses it in unions)."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class TurnIn(BaseModel):
    role: Literal["user", "assistant"]
    text: str = Field(max_length=MAX_QUESTION_CHARS)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["How do I reset my VPN?"])
    history: list[TurnIn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)  # oldest first

    _question = field_validator("question")(_not_blank)


class CitationOut(BaseModel):
    n: int
    title: str
    url: str
    snippet: str
    score: float
    source: str

    @classmethod
    def of(cls, c: Citation) -> CitationOut:
        return cls(n=c.n, title=c.title, url=c.url, snippet=c.snippet, score=float(c.score), source=c.source)


class AnswerOut(BaseModel):
    id: str  # for POST /v1/answers/{id}/feedback
    question: str
    text: str
    citations: list[CitationOut]
    abstained: bool  # no source was relevant enough; `citations` are the closest ones
    extractive: bool  # quoted passages, no LLM
    cache_hit: bool
    timings_ms: dict[str, float]

    @classmethod
    def of(cls, a: Answer) -> AnswerOut:
        return cls(
            id=a.id,
            question=a.question,
            text=a.text,
            citations=[CitationOut.of(c) for c in a.citations],
            abstained=a.abstained,
            extractive=a.extractive,
            cache_hit=a.cache_hit,
            timings_ms=dict(a.timings_ms),
        )


class SourcesOut(BaseModel):
    citations: list[CitationOut]


class FeedbackRequest(BaseModel):
    value: Literal[1, -1]  # 👍 = 1, 👎 = -1


class FeedbackOut(BaseModel):
    answer_id: str
    value: int | None  # None after a retraction
    changed: bool


class ResyncRequest(BaseModel):
    source: str | None = Field(None, max_length=200)  # one source; default all
    full: bool = False  # re-read and re-embed every document


class ResyncOut(BaseModel):
    report: str
    progress: list[str]


class Problem(BaseModel):
    """One field a request got wrong (a 422 for a body or query that does not validate)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    # A sentence, or for a request that does not validate (422) the list of fields that were wrong.
    detail: str | list[Problem]
    citations: list[CitationOut] = Field(default_factory=list)  # sources found before a failure


# --- OpenAI-compatible --------------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One of OpenAI's content parts; only text parts are read (their text validated like a question)."""

    type: str = Field(max_length=100)
    text: str | None = None
    model_config = {"extra": "allow"}  # image_url and the like: accepted, not read

    _text = field_validator("text")(_unicode)


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None  # text, or OpenAI's content parts (text parts used)

    @field_validator("content")
    @classmethod
    def _content(cls, value: str | list[ContentPart] | None) -> str | list[ContentPart] | None:
        return _unicode(value) if isinstance(value, str) else value

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(p.text or "" for p in self.content if p.type == "text")


class ChatCompletionRequest(BaseModel):
    model: str = Field(max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    user: str | None = Field(None, max_length=200)
    # Other OpenAI fields (temperature, max_tokens, ...) are accepted and ignored: the bot's settings decide.
    model_config = {"extra": "allow"}


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "ragbot"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]
