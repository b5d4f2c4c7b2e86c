"""Checks dev.jsonl against the corpus: each gold page exists and holds the reference answer; for each unanswerable
question, no page holds all its `absent` terms (case-insensitive grep over every page).

    python eval/18f-qa/check.py [CORPUS]   (default ../shared/corpora/18f-handbook/content)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parents[2] / "shared" / "corpora" / "18f-handbook" / "content"


def main() -> int:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CORPUS
    pages = {
        str(p.relative_to(corpus)): p.read_text(encoding="utf-8", errors="replace")
        for p in corpus.rglob("*.md")
    }
    lowered = {k: v.lower() for k, v in pages.items()}
    problems = 0
    cases = [json.loads(line) for line in (HERE / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    for case in cases:
        if case["answerable"]:
            gold = case["gold"][0]
            if gold not in pages:
                print(f"missing gold page {gold}: {case['question']}")
                problems += 1
            elif case["answer"].lower() not in lowered[gold]:
                print(f"reference {case['answer']!r} not in {gold}: {case['question']}")
                problems += 1
        else:
            terms = [t.lower() for t in case["absent"]]
            holding = [k for k, text in lowered.items() if all(t in text for t in terms)]
            if holding or case["topic"] not in pages:
                print(f"not absent ({', '.join(holding[:3]) or 'topic page missing'}): {case['question']}")
                problems += 1
    answerable = sum(c["answerable"] for c in cases)
    print(
        f"{len(cases)} questions: {answerable} answerable, {len(cases) - answerable} unanswerable; {problems} problems"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
