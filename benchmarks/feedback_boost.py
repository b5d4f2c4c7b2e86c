"""What the feedback boost does to ranking on SciFact: nothing without votes, and what votes simulated on the
TRAIN split gain on the TEST split.

    python benchmarks/feedback_boost.py [--beir ../shared/eval/scifact] [--docs 0] [--data-dir data]

Simulated votes: for each train query, the answer cites the top `--cite` documents of the hybrid ranking and
the asker votes 👍 when one of them is relevant (qrels), else 👎; every vote counts for every cited document,
as in the bot (rag_core.feedback.doc_votes). Votes are spread over the last `--days` days, so decay applies.
The test ranking is then re-scored with `rag_core.boost.apply_feedback`, the function the engine applies.
`--docs N` indexes a subset (every judged document plus distractors up to N) when the full corpus takes too long.
"""

from __future__ import annotations

import argparse
import random
import statistics
from datetime import timedelta
from pathlib import Path

from rag_core.boost import DocKey, apply_feedback
from rag_core.engine import Engine
from rag_core.evaluation import (
    BeirData,
    _doc_ranking,
    beir_settings,
    index_corpus,
    load_beir,
    ndcg_at,
    recall_at,
)
from rag_core.feedback.doc_votes import DocVote, aggregate
from rag_core.feedback.store import utc_naive
from rag_core.settings import Settings, get_settings
from rag_core.store import Where
from rag_core.types import Candidate

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "beir"


def subset(test: BeirData, train: BeirData, docs: int) -> BeirData:
    """Every document judged for a test or train query, then the corpus's first others, up to `docs`."""
    if docs <= 0:
        return test
    judged = {d for rel in [*test.qrels.values(), *train.qrels.values()] for d in rel}
    keep = [d for d in test.corpus if d in judged]
    keep += [d for d in test.corpus if d not in judged][: max(0, docs - len(keep))]
    return BeirData({d: test.corpus[d] for d in keep}, test.queries, test.qrels)


def ranked(engine: Engine, text: str, depth: int) -> list[Candidate]:
    """The hybrid (fused) candidates of a query, best first: what the engine ranks before the threshold."""
    qvec = engine.embedder.encode_query(text)
    dense, sparse = engine.store.search(
        qvec, engine.sparse.encode_query(text), depth, Where.visible(engine.index_version)
    )
    return engine.retriever.fuse(qvec, dense, sparse, depth)


def scores(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> tuple[float, float]:
    nd = statistics.fmean(ndcg_at(r, qrels[q], 10) for q, r in runs.items())
    rc = statistics.fmean(recall_at(r, qrels[q], 100) for q, r in runs.items())
    return nd, rc


def simulated_votes(
    engine: Engine, train: BeirData, cite: int, days: float, depth: int, seed: int
) -> tuple[list[DocVote], int]:
    rng = random.Random(seed)
    now = utc_naive()
    votes: list[DocVote] = []
    up = 0
    for qid, text in train.queries.items():
        cited = _doc_ranking(c.chunk.doc_id for c in ranked(engine, text, depth))[:cite]
        value = 1 if any(d in train.qrels[qid] for d in cited) else -1
        up += value > 0
        votes.append(([(SOURCE, d) for d in cited], value, now - timedelta(days=rng.uniform(0, days))))
    return votes, up


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beir", default=str(ROOT.parent / "shared" / "eval" / "scifact"))
    parser.add_argument("--docs", type=int, default=0, help="index a subset of this many documents (0 = all)")
    parser.add_argument("--data-dir", default=None, help="data dir holding (or to hold) the index")
    parser.add_argument("--cite", type=int, default=3, help="documents an answer cites")
    parser.add_argument("--days", type=float, default=60.0, help="votes spread over this many days")
    parser.add_argument("--depth", type=int, default=200, help="chunks ranked per query")
    parser.add_argument("--boosts", default="0.05,0.1,0.2", help="largest boost fractions to try")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    base: Settings = get_settings()
    if args.data_dir:
        base = base.model_copy(update={"data_dir": Path(args.data_dir)})
    folder = Path(args.beir)
    test, train = load_beir(folder, "test"), load_beir(folder, "train")
    data = subset(test, train, args.docs)
    engine = Engine.from_settings(beir_settings(base, folder))
    index_corpus(engine, data, progress=lambda i: print(f"  indexed {i}/{len(data.corpus)}", flush=True))
    print(
        f"corpus {len(data.corpus)} documents; {len(train.queries)} train, {len(test.queries)} test queries"
    )

    test_ranked = {qid: ranked(engine, text, args.depth) for qid, text in test.queries.items()}

    def runs(weights: dict[DocKey, float], boost: float) -> dict[str, list[str]]:
        out = {}
        for qid, cands in test_ranked.items():
            fresh = [Candidate(c.chunk, c.dense_score, c.sparse_score, c.fused_score) for c in cands]
            boosted = apply_feedback(fresh, weights, set(), boost)
            out[qid] = _doc_ranking(c.chunk.doc_id for c in boosted)[:100]
        return out

    plain = {q: _doc_ranking(c.chunk.doc_id for c in cands)[:100] for q, cands in test_ranked.items()}
    ref_nd, ref_rc = scores(plain, test.qrels)
    print(f"hybrid, no boost          nDCG@10 {ref_nd:.4f} R@100 {ref_rc:.4f}")
    no_votes = runs({}, engine.settings.feedback_boost)
    nd, rc = scores(no_votes, test.qrels)
    same = sum(no_votes[q] == plain[q] for q in plain)
    print(
        f"boost, no votes           nDCG@10 {nd:.4f} R@100 {rc:.4f}  identical rankings {same}/{len(plain)}"
    )

    votes, up = simulated_votes(engine, train, args.cite, args.days, args.depth, args.seed)
    settings = engine.settings
    weights = aggregate(votes, utc_naive(), settings.feedback_half_life_days, settings.feedback_prior_votes)
    touched = sum(any((SOURCE, d) in weights for d in plain[q][:10]) for q in plain)
    print(
        f"simulated votes: {len(votes)} ({up} up, {len(votes) - up} down) on {len(weights)} documents; "
        f"{touched}/{len(plain)} test queries have a voted document in their top 10"
    )
    for boost in [float(b) for b in args.boosts.split(",")]:
        nd, rc = scores(runs(weights, boost), test.qrels)
        print(
            f"boost ±{boost:.0%} with votes   nDCG@10 {nd:.4f} R@100 {rc:.4f}  "
            f"(Δ nDCG@10 {nd - ref_nd:+.4f}, ratio {nd / ref_nd:.4f})"
        )
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
