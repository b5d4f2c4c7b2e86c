"""`/v1/knowledge` for admin tokens (403 for others) and `ragbot knowledge` in a terminal, each change synced
into a real index; a restricted curated answer never reaches an API asker it does not name."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import _build_parser
from bot.cli_knowledge import knowledge_command
from rag_core.engine import Engine
from rag_core.feedback import FeedbackStore
from rag_core.feedback import curated as cur
from rag_core.settings import Settings
from tests.bot.api.conftest import ADMIN, PUBLIC, RunningApi, running_api
from tests.bot.knowledge.test_curated_source import BADGE_A, BADGE_Q
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def api(engine: Engine, tmp_path: Path, clean_redis: str) -> Iterator[RunningApi]:
    with running_api(engine, tmp_path, clean_redis) as running:
        yield running


def test_only_admin_tokens_manage_curated_answers(api: RunningApi) -> None:
    with api.client(PUBLIC) as public:
        assert public.get("/v1/knowledge").status_code == 403
        assert (
            public.post("/v1/knowledge", json={"question": "q", "answer": "a", "by": "x"}).status_code == 403
        )
        assert public.delete("/v1/knowledge/abc").status_code == 403
        assert public.get("/v1/knowledge/export").status_code == 403
    with api.client(None) as anonymous:
        assert anonymous.get("/v1/knowledge").status_code == 401
    assert cur.list_answers(api.feedback) == []


def test_admin_adds_edits_exports_imports_and_removes_and_asks_see_it_at_once(api: RunningApi) -> None:
    with api.client(ADMIN) as admin, api.client(PUBLIC) as public:
        assert public.post("/v1/ask", json={"question": BADGE_Q}).json()["abstained"]
        resp = admin.post(
            "/v1/knowledge",
            json={"question": BADGE_Q, "answer": BADGE_A, "by": "Dana", "link": "https://t/1"},
        )
        assert resp.status_code == 201 and resp.json()["indexed"] is True
        saved = resp.json()["answer"]
        assert saved["author"] == "Dana" and saved["readers"] is None and saved["age_days"] == 0

        asked = public.post("/v1/ask", json={"question": BADGE_Q}).json()
        assert not asked["abstained"] and "Maria at reception" in asked["text"]
        assert asked["citations"][0] == {**asked["citations"][0], "title": BADGE_Q, "source": "answers"}

        edited = admin.patch(f"/v1/knowledge/{saved['id']}", json={"answer": "Badges come from Maria, free."})
        assert (
            edited.status_code == 200 and edited.json()["answer"]["answer"] == "Badges come from Maria, free."
        )
        assert "Maria, free" in public.post("/v1/ask", json={"question": BADGE_Q}).json()["text"]
        assert admin.patch("/v1/knowledge/nope", json={"answer": "x"}).status_code == 404

        exported = admin.get("/v1/knowledge/export")
        assert exported.headers["content-type"].startswith("application/x-ndjson")
        [line] = exported.text.splitlines()
        assert json.loads(line)["id"] == saved["id"]

        assert admin.delete(f"/v1/knowledge/{saved['id']}").json() == {"answer": None, "indexed": True}
        assert admin.delete(f"/v1/knowledge/{saved['id']}").status_code == 404
        assert public.post("/v1/ask", json={"question": BADGE_Q}).json()["abstained"]

        bad = admin.post("/v1/knowledge/import", content='{"question": "q"}\n')
        assert bad.status_code == 422 and "line 1" in bad.json()["detail"]
        back = admin.post("/v1/knowledge/import", content=exported.text)
        assert back.json() == {"added": 1, "replaced": 0, "indexed": True}
        assert [a["id"] for a in admin.get("/v1/knowledge").json()] == [saved["id"]]
        assert not public.post("/v1/ask", json={"question": BADGE_Q}).json()["abstained"]


def test_a_restricted_curated_answer_never_reaches_an_api_asker_it_does_not_name(api: RunningApi) -> None:
    with api.client(ADMIN) as admin, api.client(PUBLIC) as public:
        resp = admin.post(
            "/v1/knowledge",
            json={"question": BADGE_Q, "answer": BADGE_A, "by": "Dana", "readers": ["group:facilities"]},
        )
        assert resp.status_code == 201 and resp.json()["answer"]["readers"] == ["group:facilities"]
        for client in (public, admin):  # an API token is no principal of the facilities group
            asked = client.post("/v1/ask", json={"question": BADGE_Q}).json()
            assert asked["abstained"] and "Maria" not in json.dumps(asked)
            listed = client.get("/v1/sources", params={"q": BADGE_Q}).json()
            assert "Maria" not in json.dumps(listed) and BADGE_Q not in json.dumps(listed)
            stream = client.post(
                "/v1/ask", json={"question": BADGE_Q}, headers={"Accept": "text/event-stream"}
            ).text
            assert "Maria" not in stream


# --- the terminal -----------------------------------------------------------------------------------------------


def _run(settings: Settings, *argv: str) -> tuple[int, str]:
    args = _build_parser().parse_args(["knowledge", *argv])
    out = io.StringIO()
    code = knowledge_command(args, settings, out)
    return code, out.getvalue()


def test_ragbot_knowledge_add_list_export_import_remove(engine: Engine, tmp_path: Path) -> None:
    settings = engine.settings.model_copy(update={"data_dir": tmp_path / "data"})
    code, out = _run(settings, "add", BADGE_Q, BADGE_A, "--by", "Dana", "--link", "https://t/1", "--no-sync")
    assert code == 0 and out.startswith("saved ") and "not synced" in out
    saved_id = out.split()[1]
    code, out = _run(
        settings, "add", "Guest wifi?", "hunter2", "--by", "Sam", "--readers", "group:it", "--no-sync"
    )
    code, listing = _run(settings, "list")
    first, second = listing.splitlines()
    assert first.startswith(f"{saved_id}  ") and "by Dana  [everyone]" in first and BADGE_Q in first
    assert "[group:it]" in second and "0d" in second

    code, exported = _run(settings, "export")
    (tmp_path / "kb.jsonl").write_text(exported)
    code, out = _run(settings, "remove", saved_id, "--no-sync")
    assert code == 0 and out.startswith(f"removed {saved_id}")
    with pytest.raises(Exception, match="no saved answer"):
        _run(settings, "remove", saved_id, "--no-sync")
    code, out = _run(settings, "import", str(tmp_path / "kb.jsonl"), "--no-sync")
    assert "imported 1 new, 1 replaced" in out
    assert len(_run(settings, "list")[1].splitlines()) == 2


def test_ragbot_knowledge_add_syncs_at_once(small_engine: Engine, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, embedding_model=small_engine.settings.embedding_model)
    code, out = _run(settings, "add", BADGE_Q, BADGE_A, "--by", "Dana")
    assert code == 0 and "answers: 1 added" in out
    engine = Engine.from_settings(settings)
    try:
        [cite] = engine.sources(BADGE_Q)
        assert cite.source == "answers" and cite.title == BADGE_Q
    finally:
        engine.close()


def test_the_ragbot_command_lists_saved_answers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with FeedbackStore.from_settings(settings) as store:
        saved = cur.add_answer(store, BADGE_Q, BADGE_A, author="Dana")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"PYTHONPATH": str(ROOT), "RAG_DATA_DIR": str(tmp_path), "RAG_LOG_JSON": "false"}
    ragbot = [sys.executable, "-m", "bot.cli", "knowledge"]
    done = subprocess.run(
        [*ragbot, "list"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(saved.id)
    bad = subprocess.run(
        [*ragbot, "remove", "nope", "--no-sync"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "no saved answer with id 'nope'" in bad.stderr


def test_parser_has_every_knowledge_subcommand() -> None:
    parser = _build_parser()
    for argv in (["add", "q", "a", "--by", "x"], ["list"], ["remove", "i"], ["export"], ["import", "f"]):
        assert isinstance(parser.parse_args(["knowledge", *argv]), argparse.Namespace)
