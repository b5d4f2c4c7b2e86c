"""The deploy files say only true things: real settings, real probe paths and ports, real `ragbot` commands.

Parses compose.yaml, the Kubernetes manifests as `kubectl kustomize` renders them, the Dockerfile, the Procfile
and the Makefile, and checks them against the settings classes, the health server and the CLI parser.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import _build_parser
from bot.settings import BotSettings
from rag_core.feedback.http import serve_health

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_NAMES = {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN"}
NOT_OURS = {"PATH", "PYTHONUNBUFFERED", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}  # read by Python, HF
DEFAULT_HTTP_PORT = BotSettings.model_fields["http_port"].default


def _is_setting(name: str) -> bool:
    if name in PLATFORM_NAMES:
        return True
    return name.startswith("RAG_") and name[4:].lower() in BotSettings.model_fields


def _assert_command(args: list[str]) -> None:
    """`args` parse as a real `ragbot` subcommand line (argparse exits on anything else)."""
    parsed = _build_parser().parse_args(args)
    assert callable(parsed.func), args


@pytest.fixture(scope="module")
def served_paths() -> Iterator[dict[str, int]]:
    """The status each probe path gets from the real probe routes of the front door (404 = not served)."""
    server = serve_health(0, host="127.0.0.1")
    statuses: dict[str, int] = {}
    try:
        for path in ("/healthz", "/readyz", "/metrics", "/nope"):
            try:
                with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as resp:
                    statuses[path] = resp.status
            except urllib.error.HTTPError as exc:
                statuses[path] = exc.code
        yield statuses
    finally:
        server.stop()


def _probe_ok(path: str, statuses: dict[str, int]) -> None:
    assert path in statuses and statuses[path] != 404, f"{path} is not served by the health server"


# --- compose ----------------------------------------------------------------------------------------------
def test_compose_settings_commands_probes_and_dependencies(served_paths: dict[str, int]) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    bots = {name: s for name, s in services.items() if s.get("image") == "ragbot:local"}
    assert set(bots) == {"ragbot", "slack", "discord", "scheduler"}
    assert bots["ragbot"]["profiles"] == ["single"]
    assert {n for n, s in bots.items() if s["profiles"] == ["roles"]} == {"slack", "discord", "scheduler"}
    for name, service in bots.items():
        _assert_command(service["command"])
        for var in service["environment"]:
            assert _is_setting(var), f"{name}: {var} is not a setting"
        assert service["env_file"][0]["path"] == ".env"
        assert {d: c["condition"] for d, c in service["depends_on"].items()} == {
            "qdrant": "service_healthy",
            "redis": "service_healthy",
            "postgres": "service_healthy",
        }
        port = int(service["environment"]["RAG_HTTP_PORT"])
        probe = " ".join(service["healthcheck"]["test"])
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", probe)
        assert url and int(url.group(1)) == port, probe
        _probe_ok(url.group(2), served_paths)
    assert services["ragbot"]["ports"] == [f"{DEFAULT_HTTP_PORT}:8080"]  # one front door for everything
    for infra in ("qdrant", "redis", "postgres"):
        assert services[infra]["healthcheck"]["test"], infra
        assert ":" in services[infra]["image"] and not services[infra]["image"].endswith(":latest")
    assert services["qdrant"]["volumes"] == ["qdrant-data:/qdrant/storage"]


# --- Kubernetes -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; it renders the kustomize manifests")
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(ROOT / "deploy" / "k8s", copy)
    overlay = copy / "overlays" / "example"
    shutil.copy(overlay / "tokens.env.example", overlay / "tokens.env")  # the real one is never committed
    rendered = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_kubernetes_roles_probes_commands_and_settings(
    manifests: list[dict[str, Any]], served_paths: dict[str, int]
) -> None:
    deployments = _by_kind(manifests, "Deployment")
    assert set(deployments) == {
        "ragbot-slack-socket",
        "ragbot-slack-http",
        "ragbot-discord",
        "ragbot-scheduler",
    }
    assert deployments["ragbot-discord"]["spec"]["replicas"] == 1
    assert deployments["ragbot-discord"]["spec"]["strategy"]["type"] == "Recreate"
    [config] = _by_kind(manifests, "ConfigMap").values()
    [secret] = _by_kind(manifests, "Secret").values()
    for var in [*config["data"], *secret["data"]]:
        assert _is_setting(var), f"{var} is not a setting"
    http_port = int(config["data"]["RAG_HTTP_PORT"])
    for name, deployment in deployments.items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        _assert_command(container["args"])
        assert {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]} == {
            config["metadata"]["name"],
            secret["metadata"]["name"],
        }
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": http_port}, name  # the front door is the only port
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            assert (get["path"], get["port"]) == (path, "http"), (name, probe)
            _probe_ok(get["path"], served_paths)
        limits = container["resources"]["limits"]
        assert container["resources"]["requests"]["memory"] and limits["memory"]
        assert container["securityContext"]["runAsNonRoot"] is True
    http = deployments["ragbot-slack-http"]["spec"]["template"]["spec"]["containers"][0]
    assert http["args"] == ["slack", "--http"]
    assert "RAG_SLACK_HTTP_PORT" not in config["data"]  # the old port setting is an alias only
    [service] = [
        s for s in _by_kind(manifests, "Service").values() if s["metadata"]["name"] == "ragbot-slack-http"
    ]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    [hpa] = _by_kind(manifests, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ragbot-slack-http"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    [ingress] = _by_kind(manifests, "Ingress").values()
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/slack/events"  # Bolt's endpoint
    assert set(_by_kind(manifests, "PodDisruptionBudget")) == {"ragbot-slack-socket", "ragbot-slack-http"}
    [monitor] = _by_kind(manifests, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    _probe_ok("/metrics", served_paths)


# --- image, Procfile, Makefile ----------------------------------------------------------------------------
def test_dockerfile_entrypoint_healthcheck_settings_and_install_step(served_paths: dict[str, int]) -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = text.replace("\\\n", " ").splitlines()
    assert 'ENTRYPOINT ["ragbot"]' in lines and 'CMD ["run"]' in lines
    _assert_command(["run"])
    assert any(line.startswith("FROM ${PYTHON_IMAGE}") for line in lines)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
    assert 'VOLUME ["/app/data"]' in lines and "USER 10001" in lines
    env = dict(re.findall(r"(\w+)=(\S+)", next(line for line in lines if line.startswith("ENV PATH"))))
    for var in env:
        assert var in NOT_OURS or _is_setting(var), var
    health = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert "/healthz" in health and "RAG_HTTP_PORT" in health and f"'{DEFAULT_HTTP_PORT}'" in health
    _probe_ok("/healthz", served_paths)
    # the image installs with the same step as `make demo`
    install = next(line for line in lines if "deploy/install.sh" in line and line.startswith("RUN"))
    makefile = (ROOT / "Makefile").read_text()
    assert "\tdeploy/install.sh $(BIN)/pip -e '.[test]'" in makefile
    assert "deploy/install.sh /opt/venv/bin/pip ." in install


def test_procfile_lines_are_ragbot_commands() -> None:
    lines = (ROOT / "Procfile").read_text().splitlines()
    active = [line for line in lines if line and not line.startswith("#")]
    assert active == ["web: ragbot run"]
    documented = [line.lstrip("# ").strip() for line in lines if re.match(r"#\s+[\w-]+: ragbot ", line)]
    assert len(documented) == 4
    for line in active + documented:
        _, command = line.split(":", 1)
        words = shlex.split(command)
        assert words[0] == "ragbot"
        _assert_command(words[1:])
