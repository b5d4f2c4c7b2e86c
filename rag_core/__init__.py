"""The engine: retrieval, reranking, answers, and the index they read."""

import os

# Before torch loads (its OpenMP reads this once): torch's worker threads otherwise spin while they wait for work.
# With other work on the machine (our own answer threads, a busy node) a 13-token question then cost ~200 ms of
# CPU with two threads instead of ~25 ms (benchmarks/README.md). An explicit OMP_WAIT_POLICY is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
