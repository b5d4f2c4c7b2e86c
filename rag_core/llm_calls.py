"""Short, non-streamed LLM calls of the query side (rewrite, alternative phrasings, HyDE): cached and priced.

Each call is one chat completion with a small output cap. Its cost is added to the question's `Spend`, which the
context packer and the daily spend cap see; a call the remaining budget cannot pay for is not made. A cached reply
costs nothing. A failed call logs one line and returns None, so the stage falls back to what it does without an LLM.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import openai

from rag_core.kv import KeyValue
from rag_core.settings import Settings
from rag_core.tokens import count_tokens

log = logging.getLogger(__name__)


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


class ShortCalls:
    """One short chat completion per query-side stage, through the generator's OpenAI-compatible client."""

    def __init__(self, client: openai.OpenAI, kv: KeyValue, settings: Settings) -> None:
        self.client = client
        self.kv = kv
        self.settings = settings

    def ask(
        self, stage: str, messages: list[dict[str, str]], model: str, max_tokens: int, spend: Spend
    ) -> str | None:
        """The model's reply, from the cache when this exact call was made before; None when it failed or
        the question's remaining budget cannot pay for it."""
        key = (
            "ragbot:llm:" + hashlib.sha256(json.dumps([model, messages], sort_keys=True).encode()).hexdigest()
        )
        cached = self.kv.get(key)
        if cached is not None:
            return cached.decode()
        encoding = self.settings.tokenizer_encoding
        estimate_in = sum(count_tokens(m["content"], encoding) for m in messages) + 8 * len(messages)
        if price_usd(self.settings, model, estimate_in, max_tokens) > spend.left_usd:
            log.info(
                "llm call skipped: over the question's budget", extra={"event": "llm_skipped", "stage": stage}
            )
            return None
        try:
            response = self.client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                temperature=0.0,
                max_tokens=max_tokens,
            )
        except openai.OpenAIError as exc:
            log.warning(
                "llm call failed; this stage falls back to no LLM",
                extra={"event": "llm_error", "stage": stage, "error": type(exc).__name__},
            )
            return None
        if not getattr(response, "choices", None):
            log.warning(
                "llm call returned no choices; this stage falls back to no LLM",
                extra={"event": "llm_error", "stage": stage, "error": "no_choices"},
            )
            return None
        text = (response.choices[0].message.content or "").strip()
        usage = response.usage
        tokens_in = usage.prompt_tokens if usage else estimate_in
        tokens_out = usage.completion_tokens if usage else count_tokens(text, encoding)
        spend.add(tokens_in, tokens_out, price_usd(self.settings, model, tokens_in, tokens_out))
        if text:
            self.kv.set(key, text, self.settings.cache_ttl_s)
        return text or None
