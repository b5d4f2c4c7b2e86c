"""Answer generation: an OpenAI-compatible chat model over the packed sources, or quoted passages without one."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai

from rag_core.llm_calls import create_kwargs
from rag_core.packing import ContextBlock
from rag_core.settings import Settings
from rag_core.sparse import Bm25Encoder
from rag_core.tokens import count_tokens
from rag_core.types import Turn

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """You answer questions for a team using ONLY the numbered sources below.
Rules:
- Use only facts stated in the sources. If they do not contain the answer, reply with exactly NO_ANSWER_IN_SOURCES
  and nothing else.
- Cite every claim with the number of its source in square brackets right after it, like [1] or [2][3]. Cite only
  given numbers, and only the source that states the claim.
- Be short: a few sentences or a short list. Use Markdown for lists, bold and code.
- Earlier conversation turns are context for what the question means, not a source of facts.

Sources:
{sources}"""

EXTRACTIVE_LABEL = "_Quoted passages from the sources (no AI summary{reason})._"

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


# Worth another try before any token arrived (after one, a retry would repeat the words already shown).
_RETRYABLE = (
    openai.APIConnectionError,
    openai.APITimeoutError,
    openai.RateLimitError,
    openai.InternalServerError,
)


def _backoff_s(attempt: int) -> float:
    return min(0.5 * 2.0 ** (attempt - 1), 4.0)


class IncompleteStream(Exception):
    """The server closed the stream before saying it had finished: the text may be cut mid-sentence."""


class GenerationCancelled(asyncio.CancelledError):
    """The answer was cancelled while the model streamed it (asker gone, shutdown); the stream was closed.

    Carries what was spent so far: the prompt's tokens and the text received before the cancellation."""

    def __init__(self, text: str, tokens_in: int, tokens_out: int, model: str) -> None:
        super().__init__("generation cancelled")
        self.text = text
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out
        self.model = model


@dataclass(slots=True)
class Generated:
    text: str
    tokens_in: int
    tokens_out: int
    model: str


def strip_unknown_citations(text: str, valid: set[int]) -> str:
    """Drop `[n]` markers that point to no provided source; keep the valid numbers of a `[1, 9]` group."""

    def fix(match: re.Match[str]) -> str:
        numbers = [int(x) for x in re.findall(r"\d+", match.group(1)) if int(x) in valid]
        return "".join(f"[{n}]" for n in numbers) or "\x00"

    return re.sub(r"[ \t]?\x00", "", _CITATION.sub(fix, text))


def cited_numbers(text: str) -> list[int]:
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for n in re.findall(r"\d+", match.group(1)):
            if int(n) not in seen:
                seen.append(int(n))
    return seen


def build_messages(
    question: str, blocks: Sequence[ContextBlock], history: Sequence[Turn]
) -> list[dict[str, str]]:
    sources = "\n\n".join(b.text for b in blocks)
    messages = [{"role": "system", "content": SYSTEM_PROMPT.format(sources=sources)}]
    messages += [{"role": t.role, "content": t.text} for t in history]
    messages.append({"role": "user", "content": question})
    return messages


class LLMGenerator:
    """Streams a chat completion; retries only before the first token, so a user never sees text twice."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        self.client = openai.OpenAI(
            base_url=settings.openai_base_url, api_key=key, timeout=settings.llm_timeout_s, max_retries=0
        )
        self._key = key
        # one async client per event loop: its connection pool belongs to the loop that opened it
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )

    def async_client(self) -> openai.AsyncOpenAI:
        """The AsyncOpenAI client of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(
                base_url=self.settings.openai_base_url,
                api_key=self._key,
                timeout=self.settings.llm_timeout_s,
                max_retries=0,
            )
            self._async_clients[loop] = client
        return client

    def generate(
        self,
        question: str,
        blocks: Sequence[ContextBlock],
        history: Sequence[Turn],
        on_token: Callable[[str], None] | None,
        model: str | None = None,
    ) -> Generated:
        model = model or self.settings.llm_model
        messages = build_messages(question, blocks, history)
        attempt = 0
        while True:
            parts: list[str] = []
            try:
                usage = self._stream(model, messages, parts, on_token)
                break
            except _RETRYABLE:
                attempt += 1
                if parts or attempt > self.settings.llm_max_retries:
                    raise
                time.sleep(_backoff_s(attempt))
        return self._generated(model, messages, parts, usage)

    async def agenerate(
        self,
        question: str,
        blocks: Sequence[ContextBlock],
        history: Sequence[Turn],
        on_token: Callable[[str], None] | None,
        model: str | None = None,
    ) -> Generated:
        """`generate` awaited on the event loop: waiting for the model holds no thread. Cancelling it closes
        the stream and raises `GenerationCancelled` with what was spent so far."""
        model = model or self.settings.llm_model
        messages = build_messages(question, blocks, history)
        attempt = 0
        while True:
            parts: list[str] = []
            try:
                usage = await self._astream(model, messages, parts, on_token)
                break
            except asyncio.CancelledError:
                raise GenerationCancelled(
                    "".join(parts),
                    self._prompt_tokens(messages),
                    count_tokens("".join(parts), self.settings.tokenizer_encoding),
                    model,
                ) from None
            except _RETRYABLE:
                attempt += 1
                if parts or attempt > self.settings.llm_max_retries:
                    raise
                await asyncio.sleep(_backoff_s(attempt))
        return self._generated(model, messages, parts, usage)

    def _generated(
        self, model: str, messages: list[dict[str, str]], parts: list[str], usage: tuple[int, int] | None
    ) -> Generated:
        """The answer and its token counts: the server's usage when it sent one, else counted here."""
        text = "".join(parts)
        tokens_in = usage[0] if usage else self._prompt_tokens(messages)
        tokens_out = usage[1] if usage else count_tokens(text, self.settings.tokenizer_encoding)
        return Generated(text, tokens_in, tokens_out, model)

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(count_tokens(m["content"], self.settings.tokenizer_encoding) for m in messages)

    def _request(self, model: str, messages: list[Any]) -> dict[str, Any]:
        """The streamed chat-completion request both clients make (as `create` arguments)."""
        return create_kwargs(
            {
                "model": model,
                "messages": messages,
                "temperature": self.settings.llm_temperature,
                "max_tokens": self.settings.llm_max_output_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )

    async def _astream(
        self, model: str, messages: list[Any], parts: list[str], on_token: Callable[[str], None] | None
    ) -> tuple[int, int] | None:
        stream = await self.async_client().chat.completions.create(**self._request(model, messages))
        read = _StreamReader(parts, on_token)
        async with stream:  # closes the HTTP response on every exit, cancellation included
            async for event in stream:
                read.event(event)
        return read.usage()

    def _stream(
        self, model: str, messages: list[Any], parts: list[str], on_token: Callable[[str], None] | None
    ) -> tuple[int, int] | None:
        read = _StreamReader(parts, on_token)
        for event in self.client.chat.completions.create(**self._request(model, messages)):
            read.event(event)
        return read.usage()


class _StreamReader:
    """Collects a streamed completion's text into `parts` (passing each piece to `on_token`) and its usage."""

    def __init__(self, parts: list[str], on_token: Callable[[str], None] | None) -> None:
        self.parts = parts
        self.on_token = on_token
        self._usage: tuple[int, int] | None = None
        self._finished = False

    def event(self, event: Any) -> None:
        if event.usage:
            self._usage = (event.usage.prompt_tokens, event.usage.completion_tokens)
        for choice in event.choices or []:
            delta = choice.delta.content if choice.delta else None
            if delta:
                self.parts.append(delta)
                if self.on_token:
                    self.on_token(delta)
            self._finished = self._finished or choice.finish_reason is not None

    def usage(self) -> tuple[int, int] | None:
        """The (prompt, completion) tokens the server reported; IncompleteStream when it never said it finished."""
        if not self._finished:
            raise IncompleteStream(f"stream ended after {len(self.parts)} chunks without a finish reason")
        return self._usage


_TABLE_RULE = re.compile(r"^\s*\|[\s:|-]+\|\s*$")


def _without_table_headers(text: str) -> str:
    """Table header and rule rows say nothing on their own; quoting them would only add noise."""
    lines = text.split("\n")
    drop = {i for i, line in enumerate(lines) if _TABLE_RULE.match(line)}
    drop |= {i - 1 for i in drop}
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


def extractive_answer(
    question: str,
    blocks: Sequence[ContextBlock],
    sparse: Bm25Encoder,
    max_sentences: int,
    reason: str = "",
    top_first: bool = True,
) -> str:
    """The sentences of the top sources that share most terms with the question, each cited, in source order.

    With `top_first`, the best sentence of the top-ranked source is always quoted (first) when it holds any of the
    question's terms: the ranking put that source first, so a lower one sharing a word more does not displace it."""
    query_terms = set(sparse.encode_query(question).indices)
    scored: list[tuple[float, int, int, str]] = []
    for rank, block in enumerate(blocks[:3]):
        body = block.text.split("\n", 1)[1] if "\n" in block.text else block.text
        for i, sentence in enumerate(s.strip() for s in _SENTENCE.split(_without_table_headers(body))):
            if len(sentence) < 12 or sentence.startswith(("```", "|---", "…")):
                continue
            overlap = len(query_terms & set(sparse.encode_query(sentence).indices))
            scored.append((overlap - 0.5 * rank, block.n, i, sentence))
    ranked = sorted(scored, key=lambda s: -s[0])
    top_n = blocks[0].n if blocks else None
    first = next((s for s in ranked if s[1] == top_n and s[0] > 0), None) if top_first else None
    best = (
        ([first] + [s for s in ranked if s is not first])[:max_sentences] if first else ranked[:max_sentences]
    )
    best.sort(key=lambda s: (s[1], s[2]))
    lines = [f"> {sentence} [{n}]" for _, n, _, sentence in best]
    return EXTRACTIVE_LABEL.format(reason=reason) + "\n" + "\n".join(lines)
