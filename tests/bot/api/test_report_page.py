"""/admin/report: admin token or login-link session, `ragbot report --serve`, and the page in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from rag_core.feedback import FeedbackStore
from rag_core.types import Answer, Citation, Vote
from tests.bot.api.conftest import ADMIN, PUBLIC, RunningApi

ROOT = Path(__file__).resolve().parents[3]
CHART_GREEN = (0x2E, 0x7D, 0x32)  # rag_core/feedback/charts.py: answered bars, thumbs-up line


def seed(store: FeedbackStore, days: int = 4) -> None:
    """A few answered, abstained and voted questions on each of the last days."""
    now = datetime.now(UTC).replace(tzinfo=None)
    for day in range(days):
        for i in range(3):
            answer = Answer(
                question=f"question {day}-{i}",
                text="…",
                citations=[
                    Citation(1, "VPN how-to", "https://drive.example.com/vpn", "…", 0.5, "people-drive")
                ],
                abstained=i == 2,
                timings_ms={"total": 300.0 + 100 * i},
                cost_usd=0.001,
            )
            store.log_answer(
                answer,
                platform="api",
                channel="api:ops",
                user=f"u{i}",
                outcome="abstained" if i == 2 else "answered",
                at=now - timedelta(days=day, hours=1),
            )
            store.record_vote(Vote(answer.id, f"v{i}", 1 if i == 0 else -1, "api", "api:ops"))


def test_admin_token_gets_the_live_report(api: RunningApi) -> None:
    seed(api.feedback)
    with api.client(ADMIN) as http:
        page = http.get("/admin/report", params={"days": 7})
        assert http.get("/admin/report", params={"days": 0}).status_code == 422
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "(7 days)" in page.text and "data:image/png;base64," in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    with api.client(PUBLIC) as http:
        assert http.get("/admin/report").status_code == 403


def test_the_days_bound_is_the_reports() -> None:
    from bot.api.admin import MAX_REPORT_DAYS
    from rag_core.feedback.report import MAX_DAYS

    assert MAX_REPORT_DAYS == MAX_DAYS


def test_a_login_link_works_once_and_its_session_opens_the_report(api: RunningApi) -> None:
    secret = api.ctx.sessions.new_login()
    with httpx.Client(base_url=api.url) as browser:
        first = browser.get("/admin/login", params={"token": secret})
        assert first.status_code == 303 and first.headers["location"] == "/admin/report"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "Path=/admin" in cookie and secret not in cookie
        assert browser.get("/admin/report").status_code == 200  # the cookie jar sends the session
    with httpx.Client(base_url=api.url) as other:
        assert other.get("/admin/login", params={"token": secret}).status_code == 401  # used already
    with httpx.Client(base_url=api.url, cookies={"ragbot_session": "forged"}) as forged:
        assert forged.get("/admin/report").status_code == 401


@pytest.fixture
def report_serve(tmp_path: Path, clean_redis: str) -> Iterator[str]:
    """`ragbot report --serve` as a subprocess on a free port; yields the login link it printed."""
    with FeedbackStore(f"sqlite:///{tmp_path / 'ragbot.db'}") as store:
        seed(store)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RAG_DATA_DIR": str(tmp_path),
        "RAG_REDIS_URL": clean_redis,
        "RAG_LOG_JSON": "false",
    }
    env.pop("RAG_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "report", "--serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        link = ""
        for line in proc.stdout:
            if "/admin/login?token=" in line:
                link = line.strip()
                break
        assert link.startswith("http://127.0.0.1:"), f"no login link printed (exit {proc.poll()})"
        yield link
    finally:
        proc.terminate()
        proc.wait(10)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(url: str, out: Path) -> None:
    """Headless Chromium, isolated profile, nothing fetched but the page."""
    browser = _chromium()
    assert browser is not None
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1100,2600",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            timeout=120,
            capture_output=True,
        )


def chart_pixels(png: Path) -> int:
    """Pixels close to the charts' green: only the rendered charts have them (links are blue, text grey)."""
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
    distance = np.abs(pixels - np.array(CHART_GREEN, dtype=np.int32)).sum(axis=2)
    return int((distance < 60).sum())


def test_report_serve_link_opens_the_report_once_with_its_charts_in_headless_chromium(
    report_serve: str, api: RunningApi, tmp_path: Path
) -> None:
    if _chromium() is None:  # still check the link, then say loudly what was not checked
        with httpx.Client(follow_redirects=True, timeout=60) as browser:
            page = browser.get(report_serve)
            assert page.status_code == 200 and "data:image/png;base64," in page.text
            assert browser.get(report_serve).status_code == 401
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it as root)"
        )
    with_data, empty = tmp_path / "report.png", tmp_path / "empty.png"
    screenshot(report_serve, with_data)  # the link `ragbot report --serve` printed, over a seeded query log
    screenshot(
        f"{api.url}/admin/login?token={api.ctx.sessions.new_login()}", empty
    )  # no questions: no charts
    green = chart_pixels(with_data)
    assert chart_pixels(empty) == 0
    assert green > 2000, f"the report's charts did not render ({green} chart-coloured pixels)"
    with httpx.Client(timeout=60) as browser:  # the link was used by Chromium: it works once only
        assert browser.get(report_serve).status_code == 401
