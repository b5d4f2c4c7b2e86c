"""The engine: question → hybrid retrieval → rerank → threshold → context packing → generation, with a cache."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from rag_core.answerability import (
    TOP_SOFT,
    Evidence,
    answerability,
    cosines,
    needs_sentence_sims,
    needs_token_vectors,
    quoted_sentences,
    score_range,
    sentence_similarities,
    static_sources,
    unknown_weights,
)
from rag_core.boost import DocSignals, apply_feedback
from rag_core.cache import AnswerCache, cache_key
from rag_core.cancellation import AnswerCancelled
from rag_core.chunking import Chunker
from rag_core.embedding import Embedder
from rag_core.errors import UserError
from rag_core.generation import (
    Generated,
    GenerationCancelled,
    LLMGenerator,
    cited_numbers,
    extractive_answer,
    strip_unknown_citations,
)
from rag_core.grounding import HoldSentinel, check_citations, is_no_answer, without_sentinel
from rag_core.indexing import IndexWriter
from rag_core.kv import KeyValue, make_kv
from rag_core.llm_calls import ShortCalls, Spend, price_usd
from rag_core.overrides import check_overrides
from rag_core.packing import ContextBlock, PackedContext, pack_context, token_budget
from rag_core.permissions import Audience
from rag_core.query_plan import QueryPlan, aplan_queries, plan_queries, retrieve_plan
from rag_core.rerank import NoReranker, Reranker, load_reranker
from rag_core.retrieval import HybridRetriever
from rag_core.rewrite import is_follow_up
from rag_core.settings import Settings, get_settings
from rag_core.soft_match import (
    KeptWords,
    TokenVectors,
    evidence_static_words,
    evidence_words,
    source_words,
)
from rag_core.sparse import Bm25Encoder
from rag_core.store import VectorStore, open_store
from rag_core.threshold import above_threshold, min_relevance
from rag_core.tokens import bound_history, count_tokens, get_encoding
from rag_core.types import Answer, Candidate, Citation, Turn

log = logging.getLogger(__name__)

ABSTAIN_TEXT = "I don't have enough information in the indexed sources to answer that."
T = TypeVar("T")


@dataclass
class _Prepared:
    """An answer up to generation: the cache missed; once ranked, candidates are ranked and thresholded."""

    question: str
    settings: Settings
    history: Sequence[Turn]
    key: str
    spend: Spend
    started: float
    candidates: list[Candidate]
    kept: list[Candidate]
    timings: dict[str, float] = field(default_factory=dict)
    allowed_sources: Sequence[str] | None = None
    overrides: Mapping[str, Any] | None = None
    audience: Audience | None = None
    packed: PackedContext | None = None  # packed for the LLM in the same pool task as the ranking


class Engine:
    """Answers questions from the index: retrieve → rerank → threshold → pack → generate, with an answer cache.

    One per process, shared by every thread (the cross-encoder serialises itself). Built from settings with
    `Engine.from_settings()`, or from parts in tests. `index_writer()` is the only way documents get in.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: VectorStore,
        embedder: Embedder,
        reranker: Reranker,
        kv: KeyValue,
        generator: LLMGenerator | None = None,
    ) -> None:
        if unknown := unknown_weights(settings.answerability_weights):
            raise UserError(
                f"RAG_ANSWERABILITY_WEIGHTS names features that do not exist: {', '.join(unknown)} "
                "(docs/answers.md lists them)"
            )
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.sparse = Bm25Encoder(settings)
        self.chunker = Chunker(
            embedder.count_tokens,
            embedder.token_offsets,
            min(settings.chunk_tokens, embedder.max_tokens),
            settings.chunk_overlap_tokens,
        )
        self.retriever = HybridRetriever(store, embedder, self.sparse, settings.rrf_k)
        self.reranker = reranker
        self.generator = generator
        self.calls = (
            ShortCalls(generator.client, kv, settings, generator.async_client)
            if generator is not None
            else None
        )
        self.kv = kv
        self.doc_signals: DocSignals | None = None  # votes and hidden documents from the feedback store
        self.cache = AnswerCache(kv, settings.cache_ttl_s)
        self._local_lookup = bool(getattr(kv, "in_process", False) and getattr(store, "in_process", False))
        self.score_answerability = False  # score quoted answers even with the check off (eval, calibrate)
        # the content words of recently quoted sentences and top sources (the check reads them answer after answer)
        self._words = KeptWords(self.settings.token_cache_mb * 1024 * 1024 // 4)  # a quarter: see Embedder
        self._writer = IndexWriter(
            store, embedder, self.chunker, self.sparse, optimize_after_points=settings.optimize_after_points
        )
        self._cpu_pool: ThreadPoolExecutor | None = (
            None  # answers' CPU stages (answer_async), made on first use
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Engine:
        """Load the models and open the store the settings name."""
        settings = settings or get_settings()
        store = open_store(settings)  # first: an unreachable Qdrant fails before models load
        embedder = Embedder(settings)
        get_encoding(settings.tokenizer_encoding)  # load the BPE file now, not during the first answer
        return cls(
            settings,
            store=store,
            embedder=embedder,
            reranker=load_reranker(settings),
            kv=make_kv(settings.redis_url, settings.cache_max_entries),
            generator=LLMGenerator(settings) if settings.llm_configured else None,
        )

    # -- public API -------------------------------------------------------------------------------------------

    @property
    def index_version(self) -> int:
        return int(self.store.read_meta().get("generation", 0))

    def _cache_version(self) -> str:
        """What cached answers are valid for: the generation, and the permission changes made since (indexing.py)."""
        meta = self.store.read_meta()
        return f"{int(meta.get('generation', 0))}.{int(meta.get('acl_epoch', 0))}"

    def index_writer(self) -> IndexWriter:
        return self._writer

    def ready(self) -> dict[str, bool]:
        status = {"store": self.store.ping(), "models": self.embedder is not None}
        if self.settings.redis_url:
            status["redis"] = self.kv.ping()
        return status

    def close(self) -> None:
        if self._cpu_pool is not None:
            self._cpu_pool.shutdown(wait=False, cancel_futures=True)
        self.embedder.queries.close()
        self.embedder.token_batches.close()
        self.store.close()

    def sources(
        self,
        question: str,
        *,
        allowed_sources: Sequence[str] | None = None,
        k: int | None = None,
        audience: Audience | None = None,
    ) -> list[Citation]:
        """The best sources for a question, without generating: those above the threshold, else the closest.

        Only documents `audience` may read (None: documents visible to everyone) are looked at."""
        question = _require(question)
        settings = self.settings
        k = k or settings.top_k
        candidates = self.rank(
            question,
            limit=k * settings.candidate_multiplier,
            allowed_sources=allowed_sources,
            audience=audience,
        )
        threshold = min_relevance(self._active_reranker(settings), {})
        kept = above_threshold(candidates, threshold)[:k] or candidates[: min(k, 3)]
        return [_citation(i, c) for i, c in enumerate(kept, start=1)]

    def rank(
        self,
        text: str,
        *,
        limit: int | None = None,
        allowed_sources: Sequence[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        timings: dict[str, float] | None = None,
        plan: QueryPlan | None = None,
        audience: Audience | None = None,
        searched: list[Candidate] | None = None,
    ) -> list[Candidate]:
        """Hybrid retrieval of `limit` candidates (default top_k × candidate_multiplier), then the active reranker.

        Best first, each with its `relevance` set; no threshold. `answer()`, `sources()` and the evaluation all
        rank through here. Stage times in ms are added to `timings` when given. A `plan` (multi-query, HyDE)
        searches each of its queries and fuses them by RRF before reranking against `text`. Only documents
        `audience` may read are candidates (None: documents visible to everyone; `Audience.operator()`: all).
        `searched` is the plan's first search when it was already made (`_search_early`).
        """
        settings = self._effective(overrides or {})
        limit = limit or _candidate_limit(settings)
        timings = {} if timings is None else timings
        with _timed(timings, "retrieve"):
            candidates = retrieve_plan(
                self.retriever,
                plan or QueryPlan(text),
                limit,
                self.index_version,
                allowed_sources,
                audience,
                searched,
            )
        with _timed(timings, "rerank"):
            candidates = self._active_reranker(settings).rerank(text, candidates)
        if self.doc_signals is None:
            return candidates
        with _timed(timings, "feedback"):  # votes move documents a little; hidden ones are dropped
            signals = self.doc_signals
            return apply_feedback(candidates, signals.weights(), signals.hidden(), settings.feedback_boost)

    def answer(
        self,
        question: str,
        *,
        allowed_sources: Sequence[str] | None = None,
        history: Sequence[Turn] = (),
        on_token: Callable[[str], None] | None = None,
        overrides: Mapping[str, Any] | None = None,
        audience: Audience | None = None,
    ) -> Answer:
        """Answer `question` from the sources `allowed_sources` names (None: every source), never from others,
        and only from documents `audience` may read (None: documents visible to everyone; see permissions.py).

        `history` is the thread so far (bounded here to `history_max_tokens`); a follow-up is searched as its LLM
        rewrite, or together with the previous question without an LLM (`query_plan.py`). Abstains with the closest sources when nothing passes the threshold; falls
        back to quoting passages when no LLM is set up or it fails (`answer.error` says why). `on_token` hears
        the text as it streams; `overrides` (see `AnswerOverrides`) change settings for this answer only.
        Raises `UserError` for an empty question and `ValueError` for an unknown override.
        """
        prepared = self._prepare(question, allowed_sources, history, overrides, audience, on_token)
        if isinstance(prepared, Answer):
            return prepared  # a cache hit
        p = prepared
        if not p.kept:
            answer = self._abstain_streamed(p.question, p.candidates, on_token)
        else:
            answer = self._generate(
                p.question, p.kept, p.history, p.settings, on_token, p.timings, p.spend, pool=p.candidates
            )
        return self._finish(p, answer)

    async def answer_async(
        self,
        question: str,
        *,
        allowed_sources: Sequence[str] | None = None,
        history: Sequence[Turn] = (),
        on_token: Callable[[str], None] | None = None,
        overrides: Mapping[str, Any] | None = None,
        audience: Audience | None = None,
    ) -> Answer:
        """`answer()` for an event loop, with the same arguments and result: the CPU stages (cache, embedding,
        search, rerank, packing, quoting) run in the engine's bounded thread pool (`answer_threads`) and the
        LLM stream is awaited on the loop, so waiting for the model holds no thread.

        Cancelling it closes the LLM stream; when that happens during generation, `AnswerCancelled` (an
        `asyncio.CancelledError`) carries the partial answer with the tokens spent so far. `on_token` is
        called on the loop while the model streams, from a pool thread otherwise."""
        args = (question, allowed_sources, history, overrides, audience, on_token)
        # The cache lookup reads the answer cache and the index's metadata: on the loop when both live in this
        # process (a fraction of a millisecond, less than the hop to a thread), else in the pool (Redis, a server).
        looked_up = self._look_up(*args) if self._local_lookup else await self._in_cpu(self._look_up, *args)
        if isinstance(looked_up, Answer):
            return looked_up
        early = self._search_early(looked_up)
        try:  # the query-side LLM calls wait on the loop, holding no answer thread
            with _timed(looked_up.timings, "query"):
                plan = await aplan_queries(
                    looked_up.question, looked_up.history, looked_up.settings, self.calls, looked_up.spend
                )
            searched = await early if early is not None and plan.search == looked_up.question else None
            with _timed(looked_up.timings, "embed"):  # batched with every answer in flight, holding no thread
                await self.embedder.aencode_queries(plan.queries)
        except asyncio.CancelledError:
            if early is not None:
                early.cancel()
            raise self._cancelled(looked_up, "query", "", None) from None
        p = await self._in_cpu(self._ranked, looked_up, plan, searched, self.generator is not None)
        if not p.kept:
            answer = self._abstain_streamed(p.question, p.candidates, on_token)
        else:
            answer = await self._generate_async(p, on_token)
        return await self._in_cpu(self._finish, p, answer)

    def _prepare(
        self,
        question: str,
        allowed_sources: Sequence[str] | None,
        history: Sequence[Turn],
        overrides: Mapping[str, Any] | None,
        audience: Audience | None,
        on_token: Callable[[str], None] | None,
    ) -> _Prepared | Answer:
        """Everything before generation: the cached answer when there is one, else ranked, kept candidates."""
        looked_up = self._look_up(question, allowed_sources, history, overrides, audience, on_token)
        if isinstance(looked_up, Answer):
            return looked_up
        with _timed(looked_up.timings, "query"):
            plan = plan_queries(
                looked_up.question, looked_up.history, looked_up.settings, self.calls, looked_up.spend
            )
        return self._ranked(looked_up, plan)

    def _look_up(
        self,
        question: str,
        allowed_sources: Sequence[str] | None,
        history: Sequence[Turn],
        overrides: Mapping[str, Any] | None,
        audience: Audience | None,
        on_token: Callable[[str], None] | None,
    ) -> _Prepared | Answer:
        """The cached answer when there is one, else the question made ready to plan and rank."""
        question = _require(question)
        settings = self._effective(overrides or {})
        history = bound_history(history, settings.history_max_tokens, settings.tokenizer_encoding)
        timings: dict[str, float] = {}
        started = time.perf_counter()

        with _timed(timings, "cache"):
            key = cache_key(
                question,
                allowed_sources,
                history,
                self._answer_settings(settings),
                f"{settings.collection}:{self._cache_version()}",
                (audience or Audience.public()).key(),
            )
            cached = self.cache.get(key)
        if cached is not None:
            if on_token:
                on_token(cached.text)
            timings["total"] = _ms(started)
            return replace(
                cached, id=Answer(question, "", []).id, cache_hit=True, timings_ms=timings, cost_usd=0.0
            )
        spend = Spend(settings.max_cost_per_question_usd)  # every LLM call of this question is charged here
        return _Prepared(
            question,
            settings,
            history,
            key,
            spend,
            started,
            [],
            [],
            timings,
            allowed_sources,
            overrides,
            audience,
        )

    def _ranked(
        self,
        p: _Prepared,
        plan: QueryPlan,
        searched: list[Candidate] | None = None,
        pack: bool = False,
    ) -> _Prepared:
        """Rank the candidates of the planned searches and keep those over the threshold; with `pack`, pack the
        kept ones for the LLM too (one trip to the pool instead of two, the second queued behind other answers)."""
        settings, timings = p.settings, p.timings
        p.candidates = self.rank(
            plan.search,
            allowed_sources=p.allowed_sources,
            overrides=p.overrides,
            timings=timings,
            plan=plan,
            audience=p.audience,
            searched=searched,
        )
        with _timed(timings, "threshold"):
            threshold = min_relevance(self._active_reranker(settings), p.overrides or {})
            p.kept = above_threshold(p.candidates, threshold)[: settings.top_k]
        if pack and p.kept:
            p.packed = self._pack(p.question, p.kept, p.history, settings, p.spend, timings)
        return p

    def _search_early(self, p: _Prepared) -> asyncio.Future[list[Candidate]] | None:
        """The question's own search, started while its phrasings (or HyDE passage) are written, when the plan
        searches the question as asked (not a follow-up's rewrite): the CPU work overlaps the LLM's wait instead
        of queueing with every other answer's when the replies come back."""
        settings = p.settings
        if self.calls is None or not (settings.multi_query > 0 or settings.hyde) or is_follow_up(p.history):
            return None
        future = asyncio.ensure_future(self._search(p, _candidate_limit(settings)))
        future.add_done_callback(_retrieved)  # a failure surfaces through `await`, never as "never retrieved"
        return future

    async def _search(self, p: _Prepared, limit: int) -> list[Candidate]:
        """The search `rank` makes for a plan's first query, its embedding awaited."""
        await self.embedder.aencode_queries([p.question])
        search = functools.partial(self.retriever.retrieve, audience=p.audience)
        return await self._in_cpu(search, p.question, limit, self.index_version, p.allowed_sources)

    def _finish(self, p: _Prepared, answer: Answer) -> Answer:
        """Charge the question's LLM calls, time it, cache it (unless the LLM failed) and log one line."""
        _charge(answer, p.spend)
        answer.timings_ms = {**p.timings, "total": _ms(p.started)}
        if answer.error is None:
            self.cache.put(p.key, answer)
        log.info(
            "answered",
            extra={
                "event": "answer",
                "answer_id": answer.id,
                "abstained": answer.abstained,
                "extractive": answer.extractive,
                "citations": len(answer.citations),
                "tokens_in": answer.tokens_in,
                "tokens_out": answer.tokens_out,
                "total_ms": answer.timings_ms["total"],
            },
        )
        return answer

    async def _in_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a CPU stage in the engine's bounded pool, keeping the caller's context (log fields)."""
        if self._cpu_pool is None:
            threads = self.settings.answer_threads or (os.cpu_count() or 2) + 2
            self._cpu_pool = ThreadPoolExecutor(threads, thread_name_prefix="answer-cpu")
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._cpu_pool, functools.partial(ctx.run, fn, *args)
        )

    # -- stages -----------------------------------------------------------------------------------------------

    def _active_reranker(self, settings: Settings) -> Reranker:
        return self.reranker if settings.use_reranker else NoReranker(settings.min_relevance)

    def _abstain(self, question: str, candidates: list[Candidate]) -> Answer:
        nearest = sorted(
            candidates, key=lambda c: -(c.relevance if c.relevance is not None else c.fused_score)
        )
        closest = [_citation(i, c) for i, c in enumerate(nearest[:3], start=1)]
        text = ABSTAIN_TEXT
        if closest:
            text += " The closest sources I found are listed below."
        return Answer(question=question, text=text, citations=closest, abstained=True)

    def _abstain_streamed(
        self, question: str, candidates: list[Candidate], on_token: Callable[[str], None] | None
    ) -> Answer:
        answer = self._abstain(question, candidates)
        if on_token:
            on_token(answer.text)
        return answer

    def _generate(
        self,
        question: str,
        kept: list[Candidate],
        history: Sequence[Turn],
        settings: Settings,
        on_token: Callable[[str], None] | None,
        timings: dict[str, float],
        spend: Spend | None = None,
        pool: Sequence[Candidate] = (),
    ) -> Answer:
        spend = spend or Spend(settings.max_cost_per_question_usd)
        packed = self._pack(question, kept, history, settings, spend, timings)
        generated: Generated | None = None
        error = None
        with _timed(timings, "generate"):
            if self.generator is not None and packed.blocks:
                try:
                    generated = self.generator.generate(
                        question,
                        packed.blocks,
                        history,
                        HoldSentinel(on_token) if on_token else None,
                        settings.llm_model,
                    )
                except Exception as exc:  # noqa: BLE001 - any LLM failure falls back to quoting, never silence
                    error = _llm_failed(exc)
            return self._from_generated(
                question, kept, packed, settings, on_token, spend, generated, error, pool
            )

    async def _generate_async(self, p: _Prepared, on_token: Callable[[str], None] | None) -> Answer:
        """`_generate` with the LLM stream awaited on the loop and the CPU stages in the pool."""
        settings, timings = p.settings, p.timings
        packed = p.packed
        if packed is None:
            packed = await self._in_cpu(self._pack, p.question, p.kept, p.history, settings, p.spend, timings)
        generated: Generated | None = None
        error = None
        with _timed(timings, "generate"):
            if self.generator is not None and packed.blocks:
                try:
                    generated = await self.generator.agenerate(
                        p.question,
                        packed.blocks,
                        p.history,
                        HoldSentinel(on_token) if on_token else None,
                        settings.llm_model,
                    )
                except GenerationCancelled as cancelled:
                    cost = price_usd(settings, cancelled.model, cancelled.tokens_in, cancelled.tokens_out)
                    p.spend.add(cancelled.tokens_in, cancelled.tokens_out, cost)
                    raise self._cancelled(p, "generation", cancelled.text, cancelled.model) from None
                except Exception as exc:  # noqa: BLE001 - any LLM failure falls back to quoting, never silence
                    error = _llm_failed(exc)
            return await self._in_cpu(
                self._from_generated,
                p.question,
                p.kept,
                packed,
                settings,
                on_token,
                p.spend,
                generated,
                error,
                p.candidates,
            )

    def _cancelled(self, p: _Prepared, stage: str, text: str, model: str | None) -> AnswerCancelled:
        """The answer as far as it got, with the tokens its LLM calls spent, for the query log's `cancelled` row."""
        partial = Answer(p.question, text, [], model=model, error="cancelled")
        _charge(partial, p.spend)
        partial.timings_ms = {**p.timings, "total": _ms(p.started)}
        log.info(
            "answer cancelled",
            extra={
                "event": "answer_cancelled",
                "answer_id": partial.id,
                "stage": stage,
                "tokens_out": partial.tokens_out,
            },
        )
        return AnswerCancelled(partial)

    def _pack(
        self,
        question: str,
        kept: list[Candidate],
        history: Sequence[Turn],
        settings: Settings,
        spend: Spend,
        timings: dict[str, float],
    ) -> PackedContext:
        with _timed(timings, "pack"):
            overhead = (
                count_tokens(question, settings.tokenizer_encoding)
                + sum(count_tokens(t.text, settings.tokenizer_encoding) for t in history)
                + 250
            )  # system prompt and message framing
            return pack_context(
                kept, token_budget(settings, overhead, spend.cost_usd), settings.tokenizer_encoding
            )

    def _from_generated(
        self,
        question: str,
        kept: list[Candidate],
        packed: PackedContext,
        settings: Settings,
        on_token: Callable[[str], None] | None,
        spend: Spend,
        generated: Generated | None,
        error: str | None,
        pool: Sequence[Candidate] = (),
    ) -> Answer:
        """The LLM's answer once grounded, else (no LLM, it failed, no citation held) quoted passages. `pool`
        (every ranked candidate) is what the answerability score weighs the question's words against."""
        all_citations = [b.citation for b in packed.blocks]
        if generated is not None:
            cost = price_usd(settings, generated.model, generated.tokens_in, generated.tokens_out)
            spend.add(generated.tokens_in, generated.tokens_out, cost)
            answer = self._grounded(question, generated.text, packed.blocks, kept, settings)
            if answer is not None:
                answer.model = generated.model
                if answer.abstained and on_token:
                    on_token(answer.text)  # the sentinel itself was held back, not streamed
                return answer
        if error:
            reason = "; the language model failed"
        elif self.generator:
            reason = "; the AI answer's citations did not match its sources"
        else:
            reason = "; no language model set up"
        text = extractive_answer(question, packed.blocks, self.sparse, settings.extractive_sentences, reason)
        score = None
        if settings.answerability_min > 0 or self.score_answerability:
            score = self._answerability(question, text, packed.blocks, kept, pool, settings)
            if score < settings.answerability_min:
                answer = self._abstain_streamed(question, kept, on_token)
                answer.answerability = score
                return answer
        if on_token:
            on_token(text)
        cited = set(cited_numbers(text))
        return Answer(
            question=question,
            text=text,
            citations=[c for c in all_citations if c.n in cited] or all_citations,
            extractive=True,
            error=error,
            answerability=score,
        )

    def _answerability(
        self,
        question: str,
        text: str,
        blocks: Sequence[ContextBlock],
        kept: Sequence[Candidate],
        pool: Sequence[Candidate],
        settings: Settings,
    ) -> float:
        """The answerability score of a quoted answer. When only the decision matters (serving, not `eval` or
        `calibrate`), the contextual pass over the top source (half the check's cost) is made only if the score
        could fall on either side of the threshold whatever that pass finds (`score_range`); else the decision is
        the same without it, and the score given is the bound that decided it. (Bounding the question's and quoted
        sentences' pass as well decided almost no question of the dev sets: a cosine's range is too wide.)"""
        weights, threshold = settings.answerability_weights, settings.answerability_min
        if self.score_answerability or threshold <= 0 or not needs_token_vectors(weights):
            return answerability(
                self.evidence(question, text, blocks, kept, pool, weights), self.sparse, weights
            )
        evidence = self.evidence(
            question, text, blocks, kept, pool, weights, top_tokens=self.embedder.token_spans
        )
        low, high = score_range(evidence, self.sparse, TOP_SOFT, weights)
        if low >= threshold:
            return low
        if high < threshold:
            return high
        # Undecided: the rest of the evidence stands, only the top source's words need their vectors.
        if evidence.words and evidence.words["blocks"]:
            top = [b.text for b in blocks[:1]]
            evidence.words["blocks"] = source_words(
                top, self.embedder.encode_tokens, self.sparse, words_of=self._words
            )
        return answerability(evidence, self.sparse, weights)

    def evidence(
        self,
        question: str,
        extractive_text: str,
        blocks: Sequence[ContextBlock],
        kept: Sequence[Candidate],
        pool: Sequence[Candidate] = (),
        weights: Mapping[str, float] | None = None,
        top_tokens: Callable[[Sequence[str]], Sequence[TokenVectors]] | None = None,
    ) -> Evidence:
        """What the answerability score reads for a quoted-passage answer. The question's and quoted sentences'
        token vectors (soft term matching) and sentence vectors come from one forward pass; without a weighted
        soft-match feature (`weights`, default the shipped ones) only the sentence vectors are embedded, and only
        when the sentence similarity weighs; features from words' own vectors embed only words never seen.
        `top_tokens` gives the top source's token vectors (default: its forward pass)."""
        quoted = quoted_sentences(extractive_text)
        words = static = None
        if not quoted:
            sims: list[float] = []
        elif needs_token_vectors(weights):
            short = self.embedder.encode_tokens([question, *quoted])
            pooled = self.embedder.pooled_many(short)
            sims = cosines(pooled[0], pooled[1:])
            top = [b.text for b in blocks[:1]]
            words = evidence_words(
                question,
                quoted,
                top,
                top_tokens or self.embedder.encode_tokens,
                self.sparse,
                short_tokens=short,
                words_of=self._words,
            )
        elif needs_sentence_sims(weights):
            sims = sentence_similarities(
                question, quoted, self.embedder.encode_query, self.embedder.encode_passages
            )
        else:
            sims = []
        if quoted and static_sources(weights):
            top = [b.text for b in blocks[: static_sources(weights)]]
            static = evidence_static_words(question, quoted, top, self.embedder.word_vectors, self.sparse)
        return Evidence(
            question=question,
            quoted=quoted,
            blocks=[b.text for b in blocks[:3]],
            pool=[c.chunk.text for c in (pool or kept)],
            relevances=[c.relevance if c.relevance is not None else c.fused_score for c in kept],
            sentence_sims=sims,
            words=words,
            static=static,
        )

    def _grounded(
        self,
        question: str,
        generated: str,
        blocks: list[ContextBlock],
        kept: list[Candidate],
        settings: Settings,
    ) -> Answer | None:
        """The LLM's answer with unsupported citations dropped; an abstention for the no-answer sentinel;
        None when no citation is supported (the caller quotes passages instead)."""
        if is_no_answer(generated):
            return self._abstain(question, kept)
        text = strip_unknown_citations(without_sentinel(generated), {b.n for b in blocks})
        if settings.grounding_min_overlap > 0:
            sources = {b.n: b.text for b in blocks}
            grounded = check_citations(text, sources, self.sparse, settings.grounding_min_overlap)
            if grounded.dropped:
                log.info(
                    "unsupported citations dropped",
                    extra={"event": "citations_dropped", "dropped": grounded.dropped},
                )
            if not grounded.supported:
                return None
            text = grounded.text
        cited = set(cited_numbers(text))
        all_citations = [b.citation for b in blocks]
        return Answer(
            question=question,
            text=text,
            citations=[c for c in all_citations if c.n in cited] or all_citations,
        )

    # -- helpers ----------------------------------------------------------------------------------------------

    def _effective(self, overrides: Mapping[str, Any]) -> Settings:
        check_overrides(overrides)
        if not overrides:
            return self.settings
        return self.settings.model_copy(update=dict(overrides))

    def _answer_settings(self, settings: Settings) -> dict[str, Any]:
        """Settings that change an answer, part of the cache key."""
        return {
            "top_k": settings.top_k,
            "mult": settings.candidate_multiplier,
            "reranker": self.reranker.name,
            "use_reranker": settings.use_reranker,
            "min_relevance": settings.min_relevance,
            "min_rerank": settings.min_rerank_score,
            "context": settings.max_context_tokens,
            "budget": settings.max_cost_per_question_usd,
            "llm": settings.llm_model if self.generator else None,
            "embedding": settings.embedding_model,
            # a cached answer must not cite a document hidden since
            "hidden": sorted(self.doc_signals.hidden()) if self.doc_signals is not None else [],
            "query_side": [settings.rewrite_follow_ups, settings.multi_query, settings.hyde]
            if self.generator
            else None,
            "grounding": settings.grounding_min_overlap,
            "answerability": settings.answerability_min,
            "answerability_weights": settings.answerability_weights,
        }


def _require(question: str) -> str:
    question = (question or "").strip()
    if not question:
        raise UserError('the question is empty: ask something, e.g. ragbot ask "How do I reset my VPN?"')
    return question


def _candidate_limit(settings: Settings) -> int:
    """How many candidates a search finds for the reranker (`rank`'s default)."""
    return settings.top_k * settings.candidate_multiplier


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _llm_failed(exc: Exception) -> str:
    """The error an LLM failure leaves on the answer, logged once."""
    error = f"{type(exc).__name__}: {str(exc)[:200]}"
    log.warning("llm failed; answering with quoted passages", extra={"event": "llm_error", "error": error})
    return error


def _charge(answer: Answer, spend: Spend) -> None:
    """Every LLM call of the question (rewrite, phrasings, HyDE, the answer itself) on the answer's bill."""
    answer.tokens_in, answer.tokens_out, answer.cost_usd = spend.tokens_in, spend.tokens_out, spend.cost_usd


def _citation(n: int, cand: Candidate) -> Citation:
    chunk = cand.chunk
    text = chunk.text[chunk.overlap :]
    score = cand.relevance if cand.relevance is not None else cand.fused_score
    return Citation(
        n,
        chunk.title,
        chunk.url,
        text[:300],
        round(float(score), 4),
        chunk.source,
        chunk.doc_id,
        chunk.heading_path,
        list(chunk.readers),
    )


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + _ms(start)


__all__ = ["ABSTAIN_TEXT", "AnswerCancelled", "Engine", "PackedContext"]
