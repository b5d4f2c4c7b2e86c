"""Writes .env.example from the settings object: `python -m tests.env_example > .env.example`."""

import json
import re
import sys
from pathlib import Path

from rag_core.settings import Settings


def render() -> str:
    settings_py = Path(__file__).resolve().parent.parent / "rag_core" / "settings.py"
    src = settings_py.read_text().split("class Settings(BaseSettings):", 1)[1]
    lines = src.split("\n")
    comments, sections, order = {}, {}, []
    current_section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"    # --- (.+?) -+", line)
        if m:
            current_section = m.group(1)
        m = re.match(r"    (\w+): ", line)
        if m and m.group(1) != "model_config":
            name = m.group(1)
            j = i
            depth = (
                line.count("(")
                - line.count(")")
                + line.count("[")
                - line.count("]")
                + line.count("{")
                - line.count("}")
            )
            while depth > 0:
                j += 1
                l2 = lines[j]
                depth += (
                    l2.count("(")
                    - l2.count(")")
                    + l2.count("[")
                    - l2.count("]")
                    + l2.count("{")
                    - l2.count("}")
                )
            text = "\n".join(lines[i : j + 1])
            cm = re.findall(r"#\s*(.+)$", text, flags=re.M)
            comments[name] = cm[-1].strip() if cm else ""
            sections[name] = current_section
            order.append(name)
            i = j
        i += 1
    s = Settings(_env_file=None)
    out = [
        "# ragbot settings. Copy to .env (or export them) and change what you need; every line shows the default.",
        "# All settings take the RAG_ prefix. Lists and maps are JSON. Slack and Discord tokens are also read from",
        "# their usual names without the prefix: SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_SIGNING_SECRET, DISCORD_TOKEN.",
    ]
    last = None
    for name in order:
        if sections[name] != last:
            out += ["", f"# --- {sections[name]}"]
            last = sections[name]
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
        out.append(f"# {comments[name] or name.replace('_', ' ')}")
        out.append(f"RAG_{name.upper()}={rendered}" if rendered != "" else f"# RAG_{name.upper()}=")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
