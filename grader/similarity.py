"""Pairwise similarity of students' files (winnowing fingerprints over normalized tokens, via copydetect).

Names, comments and string contents are normalized away before fingerprinting, so renaming variables or rewording
comments does not hide a copy. Code every student was given (the starter file, the course kit) is boilerplate: its
fingerprints are removed from every file before comparing, so the shared starter alone scores near zero.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from copydetect import CodeFingerprint, compare_files

NOISE_TOKENS = 25  # k: shortest run of normalized characters that counts as shared (copydetect's default)
GUARANTEE_TOKENS = 30  # w + k - 1: every shared run this long is guaranteed to be found
PROGRESS_EVERY_PAIRS = 50  # a 300-student course has ~45,000 pairs: report progress without a write per pair


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of the original (unnormalized) source."""

    start: int
    end: int


@dataclass(frozen=True)
class PairSimilarity:
    """How much of each of two files is shared with the other, with the shared spans in each."""

    first: str
    second: str
    first_share: float  # fraction of the first file's fingerprinted tokens found in the second
    second_share: float
    overlap_tokens: int
    first_spans: tuple[Span, ...]
    second_spans: tuple[Span, ...]

    @property
    def score(self) -> float:
        """Rank key: the larger share (a short file copied into a long one still ranks high)."""
        return max(self.first_share, self.second_share)


def fingerprint(source: str, *, boilerplate: Sequence[int] = ()) -> CodeFingerprint:
    """Fingerprint Python source held in memory (never a path: submissions are not written out for this)."""
    return CodeFingerprint("submission.py", NOISE_TOKENS, GUARANTEE_TOKENS - NOISE_TOKENS + 1,
                           boilerplate=list(boilerplate), language="python", fp=io.StringIO(source))


def boilerplate_hashes(sources: Sequence[str]) -> list[int]:
    """Fingerprints of code handed out to everyone (starter file, course kit), to ignore in every comparison."""
    hashes: set[int] = set()
    for source in sources:
        hashes.update(int(value) for value in fingerprint(source).hashes)
    return sorted(hashes)


def _spans(slices) -> tuple[Span, ...]:
    if len(slices) == 0 or slices.shape[-1] == 0:
        return ()
    return tuple(Span(int(start), int(end)) for start, end in zip(slices[0], slices[1]))


def compare_all(sources: Mapping[str, str], *, handed_out: Sequence[str] = (),
                on_progress: Callable[[int, int], None] | None = None) -> list[PairSimilarity]:
    """Compare every pair of `sources` (key -> Python source), most similar first.

    Args:
        sources: one entry per student (their latest submission), keyed by whatever identifies it to the caller.
        handed_out: sources given to every student; their fingerprints are ignored.
        on_progress: called with (pairs compared, all pairs) now and then, for a progress bar.
    Returns:
        Every pair with a non-zero overlap, ranked by `PairSimilarity.score`, highest first.
    """
    ignored = boilerplate_hashes(handed_out)
    prints = {key: fingerprint(source, boilerplate=ignored) for key, source in sources.items()}
    pairs = []
    every_pair = list(combinations(sorted(prints), 2))
    for index, (first, second) in enumerate(every_pair):
        if on_progress is not None and index % PROGRESS_EVERY_PAIRS == 0:
            on_progress(index, len(every_pair))
        overlap, (first_share, second_share), (first_slices, second_slices) = compare_files(prints[first],
                                                                                           prints[second])
        if overlap == 0:
            continue
        pairs.append(PairSimilarity(first=first, second=second, first_share=float(first_share),
                                    second_share=float(second_share), overlap_tokens=int(overlap),
                                    first_spans=_spans(first_slices), second_spans=_spans(second_slices)))
    return sorted(pairs, key=lambda pair: (-pair.score, pair.first, pair.second))


def starter_share(source: str, *, handed_out: Sequence[str]) -> float:
    """Fraction of `source` left to compare once the handed-out code is removed (1.0 = nothing handed out)."""
    if not handed_out:
        return 1.0
    whole = fingerprint(source)
    rest = fingerprint(source, boilerplate=boilerplate_hashes(handed_out))
    return len(rest.hashes) / len(whole.hashes) if whole.hashes else 0.0
