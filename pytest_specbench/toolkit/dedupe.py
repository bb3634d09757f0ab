"""De-duplication by embedding distance: Algorithm 1 of the SpecBench paper.

Given N prompts and a target K, the paper embeds every prompt, computes pairwise cosine distances,
and then, while more than K prompts survive, takes the closest surviving pair and drops the member
whose summed distance to the survivors is smaller: of two near-duplicates it keeps the one that is
more different from everything else. The smallest distance left between survivors (``d_min``) says
how diverse the result is.

Done literally, each of the N-K steps scans all surviving pairs: O(N^3) overall. :func:`select_diverse`
keeps, for every survivor, its nearest surviving neighbour and that distance. The closest pair is
then an ``argmin`` over N numbers, and after a removal only the rows whose nearest neighbour was the
removed prompt are recomputed (one vectorised row-min each), which brings the run to about O(N^2).
:func:`select_diverse_reference` is the literal algorithm in plain Python, kept as the oracle the
tests compare against.

Both follow the same deterministic rules, so their survivors are identical:

* closest pair: the smallest distance; among equal distances the pair (i, j), i < j, that comes first
  in lexicographic order;
* summed distances within a relative ``SUM_TIE_TOLERANCE`` count as equal, and then the prompt with
  the larger index (the later one in the input) is dropped.

Embedding is kept apart (:func:`embed`, models in :mod:`.embedders`) so that the algorithm is tested on plain vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .embedders import DEFAULT_EMBEDDER
from .errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from .calls import EmbeddingCache

#: Summed distances closer than this (relative) are a tie; floating-point summation order must not
#: decide which prompt survives.
SUM_TIE_TOLERANCE = 1e-9
#: Texts embedded (and stored in the cache) at a time, unless the embedder asks for more.
EMBED_BATCH = 64


@dataclass(frozen=True)
class Selection:
    """Survivors (input indices, ascending), removals in the order they happened, and the distances."""

    keep: tuple[int, ...]
    removed: tuple[int, ...]
    d_min: float
    d_min_before: float


def _check(n: int, keep: int) -> None:
    if keep < 1:
        raise InputError(f"--keep must be at least 1, got {keep}")
    if keep > n:
        raise InputError(
            f"--keep {keep} is more than the {n} prompts given; nothing can be kept that is not there (choose K <= {n})"
        )


def _drop(i: int, j: int, s_i: float, s_j: float) -> int:
    """Which member of the closest pair goes: the smaller summed distance, ties to the later index."""
    tol = SUM_TIE_TOLERANCE * max(1.0, abs(s_i), abs(s_j))
    if s_i < s_j - tol:
        return i
    if s_j < s_i - tol:
        return j
    return max(i, j)


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine distance ``1 - cos(u, v)`` in float64, diagonal exactly 0."""
    import numpy as np

    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError("embeddings must be a non-empty 2-D array (one row per prompt)")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise InputError("an embedding is all zeros; its cosine distance is undefined")
    x = x / norms
    d = 1.0 - x @ x.T
    np.clip(d, 0.0, 2.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def select_diverse(dist: np.ndarray, keep: int, *, on_step: Callable[[], None] | None = None) -> Selection:
    """Algorithm 1 on a distance matrix, vectorised with a nearest-neighbour cache (see module doc)."""
    import numpy as np

    base = np.array(dist, dtype=np.float64)
    if base.ndim != 2 or base.shape[0] != base.shape[1]:
        raise InputError("the distance matrix must be square")
    n = base.shape[0]
    _check(n, keep)
    np.fill_diagonal(base, 0.0)
    if n == 1:
        return Selection((0,), (), math.inf, math.inf)
    work = base.copy()
    np.fill_diagonal(work, np.inf)  # a prompt is never its own neighbour
    alive = np.ones(n, dtype=bool)
    nn = work.argmin(axis=1)  # first index of the row minimum: the tie rule above
    nd = work[np.arange(n), nn]
    d_before = float(nd.min())
    removed: list[int] = []
    for _ in range(n - keep):
        i = int(nd.argmin())
        j = int(nn[i])
        sums = base[[i, j]] @ alive  # distances to every survivor (self contributes 0)
        r = _drop(i, j, float(sums[0]), float(sums[1]))
        removed.append(r)
        alive[r] = False
        work[r, :] = np.inf
        work[:, r] = np.inf
        nd[r] = np.inf
        stale = np.flatnonzero(alive & (nn == r))
        if stale.size:
            rows = work[stale]
            nn[stale] = rows.argmin(axis=1)
            nd[stale] = rows[np.arange(stale.size), nn[stale]]
        if on_step is not None:
            on_step()
    survivors = tuple(int(k) for k in np.flatnonzero(alive))
    d_min = float(nd[alive].min()) if keep > 1 else math.inf
    return Selection(survivors, tuple(removed), d_min, d_before)


def select_diverse_reference(dist: Sequence[Sequence[float]], keep: int) -> Selection:
    """Algorithm 1 exactly as written, in plain Python: the oracle for :func:`select_diverse`."""
    d = [[float(v) for v in row] for row in dist]
    n = len(d)
    _check(n, keep)

    def closest(alive: list[int]) -> tuple[float, int, int]:
        best: tuple[float, int, int] | None = None
        for pos, i in enumerate(alive):
            for j in alive[pos + 1 :]:
                if best is None or d[i][j] < best[0]:
                    best = (d[i][j], i, j)
        return best if best is not None else (math.inf, -1, -1)

    alive = list(range(n))
    d_before = closest(alive)[0]
    removed = []
    while len(alive) > keep:
        _, i, j = closest(alive)
        s_i = math.fsum(d[i][k] for k in alive if k != i)
        s_j = math.fsum(d[j][k] for k in alive if k != j)
        r = _drop(i, j, s_i, s_j)
        alive.remove(r)
        removed.append(r)
    return Selection(tuple(alive), tuple(removed), closest(alive)[0], d_before)


# ------------------------------------------------------------------------------------------ embedding


def embed(
    texts: Sequence[str],
    *,
    model: str = DEFAULT_EMBEDDER,
    cache: EmbeddingCache | None = None,
    bar: Any = None,
    base_urls: Sequence[str] = (),
    timeout: float = 120.0,
    retries: int = 3,
) -> np.ndarray:
    """Unit-length sentence embeddings, one row per text, from cache where possible.

    ``model`` is an ``--embedder`` name (:mod:`.embedders`). Texts are embedded in chunks and each
    chunk is stored as soon as it is done, so an interrupted run resumes; the embedder is built only
    when something is missing from the cache.
    """
    import numpy as np

    from .embedders import embedder_id, make_embedder

    model_id = embedder_id(model, base_urls)  # refuses a malformed name before anything loads
    vectors: list[np.ndarray | None] = [None] * len(texts)
    keys = [cache.key(model_id, t) for t in texts] if cache is not None else []
    if cache is not None:
        found = cache.get_many(keys)
        for k in range(len(texts)):
            if keys[k] in found:
                vectors[k] = np.frombuffer(found[keys[k]], dtype=np.float32)
    missing = [k for k in range(len(texts)) if vectors[k] is None]
    if bar is not None:
        bar.update(len(texts) - len(missing))
    if not missing:
        return _stacked(vectors)
    embedder = make_embedder(model, base_urls=base_urls, timeout=timeout, retries=retries)
    try:
        step = int(getattr(embedder, "chunk", EMBED_BATCH))
        for start in range(0, len(missing), step):
            idx = missing[start : start + step]
            out = np.asarray(embedder.embed([texts[k] for k in idx]), dtype=np.float32)
            for row, k in enumerate(idx):
                vectors[k] = out[row]
            if cache is not None:
                cache.put_many((keys[k], out.shape[1], out[row].tobytes()) for row, k in enumerate(idx))
            if bar is not None:
                bar.update(len(idx))
    finally:
        embedder.close()
    return _stacked(vectors)


def _stacked(vectors: list[np.ndarray | None]) -> np.ndarray:
    """One row per text; by now each was embedded or read from the cache."""
    import numpy as np

    filled = [v for v in vectors if v is not None]
    assert len(filled) == len(vectors), "every text is embedded or read from the cache"
    return np.vstack(filled) if filled else np.zeros((0, 0), dtype=np.float32)
