"""torch's OpenMP workers sleep while idle unless the operator says otherwise (rag_core/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import os, bot.cli, rag_core.embedding; print(os.environ.get('OMP_WAIT_POLICY'))"


def _policy(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_ragbot_entry_point_makes_torchs_threads_sleep_when_idle() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env) == "PASSIVE"


def test_an_operators_own_policy_is_kept() -> None:
    assert _policy({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
