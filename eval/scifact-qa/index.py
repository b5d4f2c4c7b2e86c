"""Indexes the abstracts `index.txt` lists (read from the SciFact folder at run time) into the configured data dir.

RAG_DATA_DIR=/somewhere/scifact-qa PYTHONPATH=. python eval/scifact-qa/index.py [SCIFACT_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from rag_core.engine import Engine  # noqa: E402
from rag_core.settings import get_settings  # noqa: E402
from rag_core.types import Document  # noqa: E402


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "eval" / "scifact"
    wanted = set((HERE / "index.txt").read_text(encoding="utf-8").split())
    engine = Engine.from_settings(get_settings().model_copy(update={"redis_url": None}))
    with engine.index_writer().begin() as tx:
        for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            if doc["_id"] in wanted:
                tx.upsert(
                    Document(id=doc["_id"], source="scifact", title=doc.get("title", ""), text=doc["text"]),
                    "1",
                )
    print(f"indexed {len(wanted)} abstracts; index version {engine.index_version}")
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
