"""Writes .env.example from the settings classes: `python -m tests.env_example > .env.example`.

The engine's `Settings` (rag_core/settings.py) comes first, then what only the chat processes read (`BotSettings`,
bot/settings.py); each setting's comment in the source becomes its line in the file.
"""

import json
import re
import sys
from pathlib import Path

from bot.settings import BotSettings

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    (ROOT / "rag_core" / "settings.py", "class Settings(BaseSettings):"),
    (ROOT / "bot" / "settings.py", "class BotSettings(Settings):"),
]


def _depth(line: str) -> int:
    return sum(line.count(o) - line.count(c) for o, c in ("()", "[]", "{}"))


def _fields(path: Path, header: str) -> list[tuple[str, str, str | None]]:
    """(name, comment, section) of each field of the class starting at `header`, in source order."""
    body = path.read_text().split(header, 1)[1]
    body = re.split(r"\n(?:class |def |@)", body, maxsplit=1)[0]  # up to the next top-level statement
    lines = body.split("\n")
    fields: list[tuple[str, str, str | None]] = []
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"    # --- (.+?) -+", line)
        if m:
            section = m.group(1)
        m = re.match(r"    (\w+): ", line)
        if m and m.group(1) != "model_config":
            j, depth = i, _depth(line)
            while depth > 0:
                j += 1
                depth += _depth(lines[j])
            comments = re.findall(r"#\s*(.+)$", "\n".join(lines[i : j + 1]), flags=re.M)
            fields.append((m.group(1), comments[-1].strip() if comments else "", section))
            i = j
        i += 1
    return fields


def render() -> str:
    s = BotSettings(_env_file=None)
    out = [
        "# ragbot settings. Copy to .env (or export them) and change what you need; every line shows the default.",
        "# All settings take the RAG_ prefix. Lists and maps are JSON. Slack and Discord tokens are also read from",
        "# their usual names without the prefix: SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_SIGNING_SECRET, DISCORD_TOKEN.",
    ]
    last = None
    for path, header in SOURCES:
        for name, comment, section in _fields(path, header):
            if section != last:
                out += ["", f"# --- {section}"]
                last = section
            value = getattr(s, name)
            if value is None:
                rendered = ""
            elif hasattr(value, "get_secret_value"):
                rendered = value.get_secret_value()
            elif isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, (list, dict)):
                rendered = json.dumps(json.loads(s.model_dump_json(include={name}))[name])
            else:
                rendered = str(value)
            out.append(f"# {comment or name.replace('_', ' ')}")
            out.append(f"RAG_{name.upper()}={rendered}" if rendered != "" else f"# RAG_{name.upper()}=")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
