"""The data that flows through ragbot, defined once and used everywhere."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from rag_core.permissions import EVERYONE, PUBLIC, Access

Role = Literal["user", "assistant"]


@dataclass(slots=True)
class Document:
    """One page or file from a source, its text kept as Markdown-like structure."""

    id: str  # stable across syncs, unique within the source
    source: str  # configured source name
    title: str
    text: str
    url: str = ""
    breadcrumb: list[str] = field(default_factory=list)  # path of parent pages or folders
    author: str | None = None
    modified: datetime | None = None
    size: int = 0  # bytes of the original file
    access: Access = PUBLIC  # who may read it (rag_core/permissions.py); attachments inherit their page's


@dataclass(slots=True)
class Chunk:
    """A piece of a document sized for the embedding model."""

    doc_id: str
    source: str
    title: str
    text: str  # the chunk's own text, shown as snippet and packed as context
    url: str
    heading_path: list[str]  # breadcrumb + headings above this chunk
    position: int  # 0-based index of the chunk within its document
    overlap: int = 0  # leading characters of `text` that repeat the end of the previous chunk
    readers: tuple[str, ...] = (EVERYONE,)  # its document's `Access.readers()`, filtered on in the store

    @property
    def embed_text(self) -> str:
        """What gets embedded: title and heading path first, so a chunk knows where it sits."""
        prefix = " > ".join([self.title, *[h for h in self.heading_path if h != self.title]])
        return f"{prefix}\n{self.text}" if prefix else self.text

    @property
    def point_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.source}\x00{self.doc_id}\x00{self.position}"))


@dataclass(slots=True)
class Candidate:
    """A chunk found for a question, with the scores each stage gave it."""

    chunk: Chunk
    dense_score: float | None = None  # cosine similarity
    sparse_score: float | None = None  # BM25
    fused_score: float = 0.0  # reciprocal rank fusion
    rerank_score: float | None = None  # reranker's score (ordering)
    relevance: float | None = None  # calibrated relevance in [0, 1] the threshold looks at


@dataclass(slots=True)
class Citation:
    """A numbered source shown under an answer."""

    n: int
    title: str
    url: str
    snippet: str
    score: float
    source: str = ""
    doc_id: str = ""
    heading_path: list[str] = field(default_factory=list)
    readers: list[str] = field(default_factory=lambda: [EVERYONE])  # who may read the cited document


@dataclass(slots=True)
class Turn:
    """One earlier message of a conversation thread."""

    role: Role
    text: str


@dataclass(slots=True)
class Answer:
    """What the engine returns for a question."""

    question: str
    text: str
    citations: list[Citation]
    abstained: bool = False  # no source was relevant enough: "I don't know" instead of a guess
    extractive: bool = False  # quoted passages, no LLM
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cache_hit: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    error: str | None = None  # why the LLM was not used, when it failed
    answerability: float | None = None  # the quoted-passage answer's answerability score, when computed
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(slots=True)
class Vote:
    """A 👍/👎 on an answer."""

    answer_id: str
    user: str
    value: int  # +1 or -1
    platform: str = ""
    channel: str = ""
