"""What skipping the top source's token pass saves (`Engine._answerability`, docs/answers.md): every question of a
dev set answered without an LLM twice, as served (the pass only when it can change the decision) and with the whole
check (`score_answerability`, as `eval` and `calibrate` run it), the token cache emptied before each question.
Prints the token passes, the median CPU time per answer (process time: torch's threads count) of each, their ratio,
and whether every decision is the same.

    RAG_DATA_DIR=data/idx/18f PYTHONPATH=. python benchmarks/answerability_bound.py eval/18f-qa/dev.jsonl [N]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag_core.engine import Engine  # noqa: E402
from rag_core.kv import MemoryKV  # noqa: E402
from rag_core.settings import get_settings  # noqa: E402


def main() -> int:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]
    rows = rows[: int(sys.argv[2])] if len(sys.argv) > 2 else rows
    settings = get_settings()
    base = Engine.from_settings(settings)
    embedder = base.embedder
    passes = {"n": 0}
    encode = embedder._model.encode

    def counting(texts: Any, **kwargs: Any) -> Any:
        if kwargs.get("output_value") == "token_embeddings":
            passes["n"] += 1
        return encode(texts, **kwargs)

    embedder._model.encode = counting  # type: ignore[method-assign]
    for row in rows[:3]:  # warm-up (not measured)
        base.answer(row["question"] + " (warm-up)")
    results: dict[str, tuple[float, int, list[bool]]] = {}
    for mode in ("served", "whole check"):
        engine = Engine(settings, store=base.store, embedder=embedder, reranker=base.reranker, kv=MemoryKV())
        engine.score_answerability = mode == "whole check"
        passes["n"], cpu, decisions = 0, [], []
        for row in rows:
            embedder._tokens.clear()
            started = time.process_time()
            answer = engine.answer(row["question"])
            cpu.append((time.process_time() - started) * 1000)
            decisions.append(answer.abstained)
        results[mode] = (statistics.median(cpu), passes["n"], decisions)
        print(
            f"{mode:12s} token passes {passes['n']:5d}  median CPU {results[mode][0]:7.1f} ms  "
            f"abstained {sum(decisions)} of {len(decisions)}"
        )
    served, whole = results["served"], results["whole check"]
    print(
        f"answerability_bound: CPU {served[0] / whole[0]:.2f} x the whole check; "
        f"passes {served[1]}/{whole[1]}; same decisions: {served[2] == whole[2]}"
    )
    base.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
