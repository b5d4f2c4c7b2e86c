"""The query side of an answer: what is searched (standalone question, alternative phrasings, HyDE passage) and
how those searches become one candidate list."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

from rag_core.llm_calls import ShortCalls, Spend
from rag_core.multi_query import (
    ALTERNATIVE_TOKENS,
    HYDE_TOKENS,
    alternatives_messages,
    fuse_candidates,
    hyde_messages,
    parse_alternatives,
)
from rag_core.permissions import Audience
from rag_core.retrieval import HybridRetriever
from rag_core.rewrite import (
    REWRITE_TOKENS,
    is_follow_up,
    rewrite_messages,
    searched_follow_up,
)
from rag_core.settings import Settings
from rag_core.types import Candidate, Turn


@dataclass(slots=True)
class QueryPlan:
    search: str  # the question searched and reranked against (a follow-up's standalone form)
    alternatives: list[str] = field(default_factory=list)  # extra phrasings, each searched too
    hyde: str | None = None  # hypothetical answer passage, searched as the dense query

    @property
    def queries(self) -> list[str]:
        """The texts its searches embed as queries (a HyDE passage is embedded as a passage, by its search)."""
        return [self.search, *self.alternatives]


Request = tuple[str, list[dict[str, str]], int]  # an LLM call the plan needs: stage, messages, output cap


def _planning(
    question: str, history: Sequence[Turn], settings: Settings
) -> Generator[Request, str | None, QueryPlan]:
    """The query side, once for both drivers below: each LLM call it needs is yielded and its reply sent back
    (None without an LLM or when the call fails, which falls back to what the stage does without one)."""
    search = question
    if is_follow_up(history):
        reply = None
        if settings.rewrite_follow_ups:
            reply = yield ("rewrite", rewrite_messages(question, history), REWRITE_TOKENS)
        search = searched_follow_up(reply, question, history)
    plan = QueryPlan(search)
    if settings.multi_query > 0:
        n = settings.multi_query
        reply = yield ("multi_query", alternatives_messages(search, n), ALTERNATIVE_TOKENS * n)
        plan.alternatives = parse_alternatives(reply, search, n)
    if settings.hyde:
        plan.hyde = yield ("hyde", hyde_messages(search), HYDE_TOKENS)
    return plan


def plan_queries(
    question: str, history: Sequence[Turn], settings: Settings, calls: ShortCalls | None, spend: Spend
) -> QueryPlan:
    """Without an LLM: the (history-prefixed) question alone. With one: its rewrite, phrasings and HyDE, as set."""
    model = settings.query_llm_model or settings.llm_model
    steps, reply = _planning(question, history, settings), None
    while True:
        try:
            stage, messages, max_tokens = steps.send(reply)
        except StopIteration as done:
            plan: QueryPlan = done.value
            return plan
        reply = calls.ask(stage, messages, model, max_tokens, spend) if calls else None


async def aplan_queries(
    question: str, history: Sequence[Turn], settings: Settings, calls: ShortCalls | None, spend: Spend
) -> QueryPlan:
    """`plan_queries` for an event loop: each LLM call is awaited, one after the other (the budget sees each)."""
    model = settings.query_llm_model or settings.llm_model
    steps, reply = _planning(question, history, settings), None
    while True:
        try:
            stage, messages, max_tokens = steps.send(reply)
        except StopIteration as done:
            plan: QueryPlan = done.value
            return plan
        reply = await calls.aask(stage, messages, model, max_tokens, spend) if calls else None


def retrieve_plan(
    retriever: HybridRetriever,
    plan: QueryPlan,
    limit: int,
    generation: int,
    allowed_sources: Sequence[str] | None,
    audience: Audience | None = None,
    searched: list[Candidate] | None = None,
) -> list[Candidate]:
    """One hybrid search per query of the plan, fused by reciprocal rank fusion (a single search as is).
    `searched`: the ranking of `plan.search`, when it was already searched (while the phrasings were written)."""
    if plan.alternatives:  # embedded together, then each search finds its vector in the embedder's memory
        retriever.embedder.encode_queries(plan.queries[1 if searched is not None else 0 :])
    if searched is None:
        searched = retriever.retrieve(plan.search, limit, generation, allowed_sources, audience=audience)
    rankings = [searched]
    for query in plan.alternatives:
        rankings.append(retriever.retrieve(query, limit, generation, allowed_sources, audience=audience))
    if plan.hyde:
        rankings.append(
            retriever.retrieve(
                plan.search, limit, generation, allowed_sources, dense_text=plan.hyde, audience=audience
            )
        )
    if len(rankings) == 1:
        return rankings[0]
    return fuse_candidates(rankings, retriever.rrf_k, limit)
