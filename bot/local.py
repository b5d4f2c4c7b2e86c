"""`ragbot ask` / `ragbot sources` in a terminal while a bot process holds the embedded index.

The embedded index serves one process. The bot process answers loopback POSTs to /local/ask and /local/sources
on its health port (`RAG_HTTP_PORT`, recorded in data_dir/ragbot.run.json); the terminal command, finding the
index held, asks there instead of loading its own models. Those routes answer as the operator (every document), so
besides coming from loopback a caller must send the token the run file holds (mode 0600, in the data dir): being on
127.0.0.1 is not enough behind a sidecar proxy, or for another user of the machine. The answer streams back as NDJSON lines: `{"token"}`
while it is generated, then `{"answer"}` (or `{"citations"}`), or `{"error"}`.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rag_core.errors import StoreUnavailable, UserError
from rag_core.permissions import Audience
from rag_core.settings import Settings
from rag_core.types import Answer, Citation

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.feedback.http import Emit, LocalRoute

RUN_FILE = "ragbot.run.json"
TIMEOUT_S = 120.0  # an LLM answer can take a while; the bot streams tokens as they come


NOT_AUTHORISED = "not authorised: ask from a terminal that can read the bot's data directory (its run file)"


def local_routes(engine: Engine, token: str) -> dict[str, LocalRoute]:
    """The loopback routes the bot process serves for terminal commands holding `token` (from the run file)."""

    def authorised(body: dict[str, Any]) -> None:
        if not token or not hmac.compare_digest(str(body.get("token", "")).encode(), token.encode()):
            raise UserError(NOT_AUTHORISED)

    def ask(body: dict[str, Any], emit: Emit) -> None:
        authorised(body)
        answer = engine.answer(
            str(body.get("question", "")),
            allowed_sources=body.get("sources"),
            on_token=lambda text: emit({"token": text}),
            audience=Audience.operator(),  # loopback only: the terminal's operator, who sees every document
        )
        emit({"answer": dataclasses.asdict(answer)})

    def sources(body: dict[str, Any], emit: Emit) -> None:
        authorised(body)
        citations = engine.sources(
            str(body.get("question", "")), allowed_sources=body.get("sources"), audience=Audience.operator()
        )
        emit({"citations": [dataclasses.asdict(c) for c in citations]})

    return {"/local/ask": ask, "/local/sources": sources}


def holder_port(settings: Settings) -> int | None:
    """The health port of the process holding this embedded index, or None when no other process holds it."""
    if settings.qdrant_url or settings.embedded_store != "edge":
        return None  # a Qdrant server serves every process; qdrant-client's local mode is not held this way
    from rag_core.store.edge import held_elsewhere

    if not held_elsewhere(settings.data_dir / "qdrant-edge" / settings.collection):
        return None
    try:
        return int(json.loads((settings.data_dir / RUN_FILE).read_text())["http_port"])
    except (OSError, ValueError, KeyError, TypeError):
        return settings.http_port  # a holder that wrote no run file (older version): its configured port


def run_token(settings: Settings) -> str:
    """The token the holding process wrote in its run file ("" when it cannot be read: the bot will refuse)."""
    try:
        return str(json.loads((settings.data_dir / RUN_FILE).read_text()).get("local_token", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _events(port: int, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            for line in response:
                event = json.loads(line)
                if "error" in event:
                    raise UserError(event["error"])
                yield event
    except urllib.error.HTTPError as exc:
        raise StoreUnavailable(
            f"the bot process holding the index answered HTTP {exc.code} on 127.0.0.1:{port}{path}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreUnavailable(
            f"the embedded index is held by another process, and asking it on 127.0.0.1:{port} failed "
            f"({reason}); stop that process or set RAG_QDRANT_URL to share an index"
        ) from None


def _citation(data: dict[str, Any]) -> Citation:
    return Citation(**data)


def ask(
    port: int,
    question: str,
    sources: list[str] | None,
    on_token: Callable[[str], None],
    token: str = "",
) -> Answer:
    """The running process's answer, its tokens passed to `on_token` as they arrive."""
    body = {"question": question, "sources": sources, "token": token}
    for event in _events(port, "/local/ask", body):
        if "token" in event:
            on_token(event["token"])
        elif "answer" in event:
            data = event["answer"]
            data["citations"] = [_citation(c) for c in data["citations"]]
            return Answer(**data)
    raise UserError(f"the bot process on 127.0.0.1:{port} ended the answer early; its log says why")


def sources(port: int, question: str, sources: list[str] | None, token: str = "") -> list[Citation]:
    body = {"question": question, "sources": sources, "token": token}
    for event in _events(port, "/local/sources", body):
        if "citations" in event:
            return [_citation(c) for c in event["citations"]]
    raise UserError(f"the bot process on 127.0.0.1:{port} ended the reply early; its log says why")
