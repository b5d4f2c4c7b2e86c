"""A client that goes away while its answer streams from the LLM: the LLM stream is closed (not read to the end
for nobody) and the query log says `cancelled`, with the tokens spent so far."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag_core.feedback import FeedbackStore
from rag_core.feedback.models import AnswerRecord
from tests.bot.api.conftest import ADMIN, RunningApi
from tests.llm_server import LLMServer


def _outcomes(feedback: FeedbackStore) -> list[tuple[str, int, int]]:
    with Session(feedback.engine) as session:
        return [(r.outcome, r.tokens_in, r.tokens_out) for r in session.scalars(select(AnswerRecord))]


def test_a_streaming_client_leaving_after_the_first_token_cancels_the_llm_call(
    llm_api: RunningApi, openai_server: LLMServer
) -> None:
    llm = openai_server.reset(hold_after_tokens=1)
    try:
        with llm_api.client() as client:
            headers = {"Accept": "text/event-stream"}
            body = {"question": "How quickly must I acknowledge a page?"}
            with client.stream("POST", "/v1/ask", json=body, headers=headers) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line == "event: token":
                        break  # the first token arrived: leave
        closed = llm.wait_for(lambda b: b.closed_by_client >= 1 and b.open_streams == 0, 60)
    finally:
        llm.release.set()
    assert closed, "the LLM stream was read on after the client left"
    llm_api.server.stop()  # the query log's pending writes finish with the server's loop
    [(outcome, tokens_in, tokens_out)] = _outcomes(llm_api.feedback)
    assert outcome == "cancelled" and tokens_in > 0 and tokens_out >= 1


def test_a_json_client_leaving_while_the_llm_answers_cancels_the_llm_call(
    llm_api: RunningApi, openai_server: LLMServer
) -> None:
    llm = openai_server.reset(hold_after_tokens=1)
    url = urlsplit(llm_api.url)
    payload = json.dumps({"question": "Who is paged when the primary does not acknowledge?"}).encode()
    request = (
        f"POST /v1/ask HTTP/1.1\r\nHost: {url.hostname}\r\nAuthorization: Bearer {ADMIN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    try:
        with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
            sock.sendall(request)
            assert llm.wait_for(lambda b: b.open_streams >= 1, 60)
        closed = llm.wait_for(lambda b: b.closed_by_client >= 1 and b.open_streams == 0, 60)
    finally:
        llm.release.set()
    assert closed, "the LLM stream was read on after the client left"
    llm_api.server.stop()
    [(outcome, _, _)] = _outcomes(llm_api.feedback)
    assert outcome == "cancelled"


def test_a_client_that_stays_gets_its_answer(llm_api: RunningApi, openai_server: LLMServer) -> None:
    openai_server.reset()
    with llm_api.client() as client:
        response = client.post("/v1/ask", json={"question": "How quickly must I acknowledge a page?"})
    assert response.status_code == 200 and response.json()["text"]
