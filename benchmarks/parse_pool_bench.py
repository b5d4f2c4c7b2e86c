"""Parse-pool benchmark: sync throughput with file parsing in-process (RAG_PARSE_WORKERS=0) against 2 workers.

Builds the Confluence-shaped HTML export of sync_bench.py from the Sourcegraph handbook, then, in the same run:
parsing alone (the reader, no embedding) and a full re-embedding sync, each with 0 and with 2 parse workers,
alternating so that a change in the machine's load hits both. The last line prints the ratios.

    .venv/bin/python benchmarks/parse_pool_bench.py [--pages N] [--rounds R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sync_bench import DEFAULT_CORPUS, build_confluence_export, handbook_pages  # noqa: E402

from connectors.parse_pool import resolve  # noqa: E402
from connectors.registry import make_reader  # noqa: E402
from connectors.sync import run_sync  # noqa: E402
from rag_core.settings import Settings, SourceConfig  # noqa: E402


def parse_seconds(settings: Settings, config: SourceConfig, workers: int) -> float:
    start = time.perf_counter()
    for _ in resolve(make_reader(config, settings).items(), workers):
        pass
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=40, help="handbook pages in the export")
    parser.add_argument("--rounds", type=int, default=2, help="timed syncs per mode (best is kept)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()

    from rag_core.engine import Engine

    work = Path(tempfile.mkdtemp(prefix="ragbot-parse-bench-"))
    pages = handbook_pages(args.corpus, args.pages)
    build_confluence_export(args.corpus, pages, work / "confluence")
    config = SourceConfig(name="bench", kind="confluence", path=work / "confluence")
    settings = Settings(
        _env_file=None, data_dir=work / "data", sources=[config], rerank_model="", log_level="WARNING"
    )
    engine = Engine.from_settings(settings)
    writer = engine.index_writer()
    (first,) = run_sync(settings, writer)  # loads the model and fills the index; not timed
    print(
        f"{len(pages)} handbook pages, {first.chunks_written} chunks; machine shared with other jobs (loaded)"
    )

    parse: dict[int, float] = {0: float("inf"), 2: float("inf")}
    sync: dict[int, float] = {0: float("inf"), 2: float("inf")}
    for _ in range(args.rounds):
        for workers in (0, 2):
            parse[workers] = min(parse[workers], parse_seconds(settings, config, workers))
            mode = settings.model_copy(update={"parse_workers": workers})
            start = time.perf_counter()
            (report,) = run_sync(mode, writer, full=True)
            sync[workers] = min(sync[workers], time.perf_counter() - start)
            if report.error:
                raise SystemExit(f"sync failed: {report.error}")
    for workers in (0, 2):
        print(
            f"workers={workers}: parsing alone {parse[workers]:.2f} s; full sync {sync[workers]:.1f} s = "
            f"{first.chunks_written / sync[workers]:.1f} chunks/s"
        )
    print(
        f"parse_pool_bench: sync throughput workers=2/workers=0 {sync[0] / sync[2]:.2f}, "
        f"parsing alone {parse[0] / parse[2]:.2f}"
    )
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
