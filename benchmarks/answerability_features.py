"""Records, once, what the answerability score reads for every question of a QA dev set, so that fitting and
leave-one-corpus-out evaluation (benchmarks/answerability_loco.py) never re-run retrieval.

Asks the configured index (no LLM) each question with the check off, and writes one JSON line per question to OUT:
the question's labels, whether the relevance threshold already abstained, the `Evidence` of its quoted-passage
answer with the best source quoted first and (for the "before" figures) with the previous quoting order, the
previous score's features, and the doc ids cited first by each order.

    RAG_DATA_DIR=data/idx/18f PYTHONPATH=. python benchmarks/answerability_features.py eval/18f-qa/dev.jsonl \\
        data/features/18f.jsonl
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rag_core.engine as engine_module  # noqa: E402
from rag_core.answer_eval import load_cases  # noqa: E402
from rag_core.answerability import Evidence, quoted_sentences, sentence_similarities  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.generation import cited_numbers, extractive_answer  # noqa: E402
from rag_core.settings import get_settings  # noqa: E402

# The score as it was before leave-one-corpus-out fitting (commit 4d6ff12), for the "before" column only.
LEGACY_COMMIT = "4d6ff12"


def legacy_module(cache: Path) -> Any:
    path = cache / "legacy_answerability.py"
    if not path.exists():
        source = subprocess.run(
            ["git", "show", f"{LEGACY_COMMIT}:rag_core/answerability.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("legacy_answerability", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    qa, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    legacy = legacy_module(out.parent)
    settings = get_settings().model_copy(update={"redis_url": None, "answerability_min": 1e-9})
    engine = Engine.from_settings(settings)
    engine.score_answerability = True  # the whole evidence, never the serving path's bounded shortcut
    if engine.generator is not None:
        raise SystemExit("record without an LLM: unset RAG_OPENAI_BASE_URL / RAG_OPENAI_API_KEY")
    seen: dict[str, Any] = {}

    def extractive(question: str, blocks: Any, sparse: Any, n: int, reason: str = "") -> str:
        seen["blocks"] = list(blocks)
        seen["old_text"] = extractive_answer(question, blocks, sparse, n, reason, top_first=False)
        return extractive_answer(question, blocks, sparse, n, reason)

    original_evidence = engine.evidence

    def evidence(
        question: str,
        text: str,
        blocks: Any,
        kept: Any,
        pool: Any = (),
        weights: Any = None,
        **kwargs: Any,
    ) -> Evidence:
        seen["kept"] = list(kept)
        seen["evidence"] = original_evidence(question, text, blocks, kept, pool, weights, **kwargs)
        return seen["evidence"]

    engine_module.extractive_answer = extractive  # type: ignore[attr-defined,assignment]
    engine_module.answerability = lambda *a, **k: 1.0  # type: ignore[attr-defined]
    engine.evidence = evidence  # type: ignore[method-assign,assignment]
    done = set()
    if out.exists():
        done = {json.loads(line)["question"] for line in out.read_text(encoding="utf-8").splitlines()}
    cases = load_cases(qa)
    with out.open("a", encoding="utf-8") as sink:
        for i, case in enumerate(cases, start=1):
            if case.question in done:
                continue
            seen.clear()
            answer = engine.answer(case.question)
            row: dict[str, Any] = {
                "question": case.question,
                "answerable": case.answerable,
                "split": case.split,
                "gold": case.gold,
                "threshold_abstained": "evidence" not in seen,
            }
            if "evidence" in seen:
                blocks, ev = seen["blocks"], seen["evidence"]
                by_n = {b.n: b.citation.doc_id for b in blocks}
                old_quoted = quoted_sentences(seen["old_text"])
                old = replace(
                    ev,
                    quoted=old_quoted,
                    sentence_sims=sentence_similarities(
                        case.question,
                        old_quoted,
                        engine.embedder.encode_query,
                        engine.embedder.encode_passages,
                    ),
                )
                old_cited = sorted(cited_numbers(seen["old_text"]))
                row |= {
                    "evidence": ev.to_json(),
                    "evidence_old": old.to_json(),
                    "legacy_features_old": legacy.features(
                        case.question,
                        legacy.quoted_sentences(seen["old_text"]),
                        [b.text for b in blocks[:3]],
                        seen["kept"],
                        engine.sparse,
                    ),
                    "cited": [c.doc_id for c in answer.citations],
                    "cited_old": [by_n[n] for n in old_cited if n in by_n],
                    "ranked": [c.chunk.doc_id for c in seen["kept"]],
                }
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            if i % 20 == 0:
                print(f"{i}/{len(cases)}", flush=True)
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
