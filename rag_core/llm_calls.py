"""Short, non-streamed LLM calls of the query side (rewrite, alternative phrasings, HyDE): cached and priced.

Each call is one chat completion with a small output cap. Its cost is added to the question's `Spend`, which the
context packer and the daily spend cap see; a call the remaining budget cannot pay for is not made. A cached reply
costs nothing. A failed call logs one line and returns None, so the stage falls back to what it does without an LLM.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import openai

from rag_core.kv import KeyValue
from rag_core.settings import Settings
from rag_core.tokens import count_tokens

log = logging.getLogger(__name__)
T = TypeVar("T")


def price_usd(settings: Settings, model: str, tokens_in: int, tokens_out: int) -> float:
    """Estimated USD of one call at the configured prices; unknown (e.g. local) models cost 0."""
    price = settings.model_prices.get(model)
    return round((tokens_in * price.input + tokens_out * price.output) / 1e6, 9) if price else 0.0


@dataclass(slots=True)
class Spend:
    """What the LLM calls of one question used so far, against its per-question budget."""

    budget_usd: float
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    def add(self, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost_usd = round(self.cost_usd + cost_usd, 9)
        self.calls += 1

    @property
    def left_usd(self) -> float:
        return max(self.budget_usd - self.cost_usd, 0.0)


@dataclass(slots=True)
class _Call:
    """One short call about to be made: its cache key and request, or the reply it needs no request for."""

    key: str
    request: dict[str, Any]
    estimate_in: int
    done: bool = False  # answered from the cache, or not made (over budget)
    reply: str | None = None


def create_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    """`chat.completions.create` arguments for `request`, its messages carried in `extra_body`.

    The SDK walks `messages` against its typed unions before sending, on the event loop with the GIL held: ~0.4 ms
    a call alone, several times that while the answer threads embed. Ours are plain wire-format dicts already, and
    `extra_body` is merged into the JSON body after that walk, so the request on the wire is the same.
    """
    fields = {key: value for key, value in request.items() if key != "messages"}
    return {**fields, "messages": [], "extra_body": {"messages": request["messages"]}}


class ShortCalls:
    """One short chat completion per query-side stage, through the generator's OpenAI-compatible clients.

    `ask` blocks (the terminal, evaluation); `aask` awaits the model on the event loop. Its cache lookups run on
    the loop when the cache lives in the process, else on an I/O thread: never in the engine's CPU pool, where
    they would queue behind other answers' embedding and search.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        kv: KeyValue,
        settings: Settings,
        async_client: Callable[[], openai.AsyncOpenAI] | None = None,
    ) -> None:
        self.client = client
        self.kv = kv
        self.settings = settings
        self.async_client = async_client

    def ask(
        self, stage: str, messages: list[dict[str, str]], model: str, max_tokens: int, spend: Spend
    ) -> str | None:
        """The model's reply, from the cache when this exact call was made before; None when it failed or
        the question's remaining budget cannot pay for it."""
        call = self._begin(stage, messages, model, max_tokens, spend)
        if call.done:
            return call.reply
        try:
            response = self.client.chat.completions.create(**create_kwargs(call.request))
        except openai.OpenAIError as exc:
            return _failed(stage, type(exc).__name__)
        return self._end(stage, call, response, spend)

    async def aask(
        self, stage: str, messages: list[dict[str, str]], model: str, max_tokens: int, spend: Spend
    ) -> str | None:
        """`ask` for an event loop: the same reply, cache and spend, with the HTTP call awaited."""
        if self.async_client is None:
            return await self._run(self.ask, stage, messages, model, max_tokens, spend)
        call = await self._run(self._begin, stage, messages, model, max_tokens, spend)
        if call.done:
            return call.reply
        try:
            response = await self.async_client().chat.completions.create(**create_kwargs(call.request))
        except openai.OpenAIError as exc:
            return _failed(stage, type(exc).__name__)
        return await self._run(self._end, stage, call, response, spend)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if getattr(self.kv, "in_process", False):
            return fn(*args)  # a dict lookup and a token count: less than the hop to a thread
        return await asyncio.to_thread(fn, *args)

    def _begin(
        self, stage: str, messages: list[dict[str, str]], model: str, max_tokens: int, spend: Spend
    ) -> _Call:
        key = (
            "ragbot:llm:" + hashlib.sha256(json.dumps([model, messages], sort_keys=True).encode()).hexdigest()
        )
        encoding = self.settings.tokenizer_encoding
        estimate_in = sum(count_tokens(m["content"], encoding) for m in messages) + 8 * len(messages)
        request = {"model": model, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens}
        call = _Call(key, request, estimate_in)
        cached = self.kv.get(key)
        if cached is not None:
            call.done, call.reply = True, cached.decode()
        elif price_usd(self.settings, model, estimate_in, max_tokens) > spend.left_usd:
            log.info(
                "llm call skipped: over the question's budget", extra={"event": "llm_skipped", "stage": stage}
            )
            call.done = True
        return call

    def _end(self, stage: str, call: _Call, response: Any, spend: Spend) -> str | None:
        """Charge the reply to the question and cache it."""
        if not getattr(response, "choices", None):
            return _failed(stage, "no_choices")
        text = (response.choices[0].message.content or "").strip()
        usage = response.usage
        model = call.request["model"]
        tokens_in = usage.prompt_tokens if usage else call.estimate_in
        tokens_out = (
            usage.completion_tokens if usage else count_tokens(text, self.settings.tokenizer_encoding)
        )
        spend.add(tokens_in, tokens_out, price_usd(self.settings, model, tokens_in, tokens_out))
        if text:
            self.kv.set(call.key, text, self.settings.cache_ttl_s)
        return text or None


def _failed(stage: str, error: str) -> str | None:
    log.warning(
        "llm call failed; this stage falls back to no LLM",
        extra={"event": "llm_error", "stage": stage, "error": error},
    )
    return None  # the stage falls back to what it does without an LLM
