"""Context packing: best sources first, adjacent chunks of a document merged, within token and dollar budgets."""

from __future__ import annotations

from dataclasses import dataclass, field

from rag_core.settings import Settings
from rag_core.tokens import get_encoding
from rag_core.types import Candidate, Chunk, Citation


@dataclass(slots=True)
class ContextBlock:
    n: int
    chunks: list[Chunk]
    text: str  # header line + merged chunk texts, as the LLM sees it
    score: float
    citation: Citation = field(init=False)

    def __post_init__(self) -> None:
        first = self.chunks[0]
        snippet = _merged_text(self.chunks)
        self.citation = Citation(
            n=self.n,
            title=first.title,
            url=first.url,
            snippet=snippet[:300],
            score=round(self.score, 4),
            source=first.source,
            doc_id=first.doc_id,
            heading_path=first.heading_path,
            readers=list(first.readers),
        )


@dataclass(slots=True)
class PackedContext:
    blocks: list[ContextBlock]
    tokens: int
    budget: int


def _merged_text(chunks: list[Chunk]) -> str:
    parts = [chunks[0].text]
    for prev, chunk in zip(chunks, chunks[1:], strict=False):
        parts.append(chunk.text[chunk.overlap :] if chunk.position == prev.position + 1 else chunk.text)
    return "\n\n".join(parts)


def header(n: int, chunk: Chunk) -> str:
    path = " > ".join(h for h in chunk.heading_path if h != chunk.title)
    return " — ".join(p for p in (f"[{n}] {chunk.title}", path, chunk.url) if p)


def token_budget(settings: Settings, overhead_tokens: int, spent_usd: float = 0.0) -> int:
    """Context tokens allowed by both the token budget and the per-question dollar budget (less `spent_usd`
    already spent on the question's earlier LLM calls)."""
    budget = settings.max_context_tokens
    price = settings.model_prices.get(settings.llm_model)
    if price and price.input > 0:
        output_cost = settings.llm_max_output_tokens * price.output / 1e6
        affordable = (
            settings.max_cost_per_question_usd - spent_usd - output_cost
        ) * 1e6 / price.input - overhead_tokens
        budget = min(budget, int(affordable))
    return max(budget, 0)


def _group(candidates: list[Candidate]) -> list[tuple[float, list[Chunk]]]:
    """Candidates grouped into runs of adjacent chunks of one document, ordered by each run's best score."""
    by_doc: dict[tuple[str, str], list[Candidate]] = {}
    for cand in candidates:
        by_doc.setdefault((cand.chunk.source, cand.chunk.doc_id), []).append(cand)
    runs: list[tuple[float, int, list[Chunk]]] = []
    order = {id(c): i for i, c in enumerate(candidates)}
    for cands in by_doc.values():
        cands.sort(key=lambda c: c.chunk.position)
        run = [cands[0]]
        for cand in cands[1:]:
            if cand.chunk.position == run[-1].chunk.position + 1:
                run.append(cand)
            else:
                runs.append(_run(run, order))
                run = [cand]
        runs.append(_run(run, order))
    runs.sort(key=lambda r: r[1])
    return [(score, chunks) for score, _, chunks in runs]


def _run(run: list[Candidate], order: dict[int, int]) -> tuple[float, int, list[Chunk]]:
    best = min(run, key=lambda c: order[id(c)])
    score = best.relevance if best.relevance is not None else best.fused_score
    return score, order[id(best)], [c.chunk for c in run]


def pack_context(candidates: list[Candidate], budget: int, encoding: str) -> PackedContext:
    """Blocks in rank order while they fit `budget` tokens; the first block is cut to fit rather than dropped."""
    enc = get_encoding(encoding)
    blocks: list[ContextBlock] = []
    used = 0
    for score, chunks in _group(candidates):
        n = len(blocks) + 1
        text = f"{header(n, chunks[0])}\n{_merged_text(chunks)}"
        tokens = len(enc.encode(text, disallowed_special=()))
        if used + tokens + 1 > budget:
            if blocks or budget - used < 32:
                continue  # a later, shorter block may still fit
            room = budget - used - 1
            ids = enc.encode(text, disallowed_special=())
            keep = room
            while tokens > room:  # a cut can re-encode to more tokens: shorten until it fits
                text = enc.decode(ids[:keep])
                tokens = len(enc.encode(text, disallowed_special=()))
                keep -= 1
        blocks.append(ContextBlock(n, chunks, text, score))
        used += tokens + 1
    return PackedContext(blocks, used, budget)
