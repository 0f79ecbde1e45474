"""Similarity engine: renamed copies rank first; the handed-out starter alone scores near zero."""

import builtins
import io
import keyword
import tokenize

from grader.similarity import compare_all, starter_share
from grader.settings import PROJECT_ROOT

SUBMISSIONS = PROJECT_ROOT / "tests" / "fixtures" / "submissions"
STARTER = (PROJECT_ROOT / "tests" / "fixtures" / "similarity" / "starter_spatial.py").read_text()
# Builtins, imported modules and imported names keep their names, so the disguised file still runs.
KEEP = set(dir(builtins)) | {"np", "numpy", "tinytorch", "core", "autograd", "layers", "tensor", "activations",
                             "self", "Tensor", "Function", "Linear", "Module", "ReLU"}


def disguised(source: str) -> str:
    """The same program with every local name renamed and every comment reworded (what a copier does)."""
    tokens = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        text = token.string
        if token.type == tokenize.NAME and not keyword.iskeyword(text) and text not in KEEP:
            text = f"renamed_{text[::-1]}"
        elif token.type == tokenize.COMMENT:
            text = "# written by me, honestly"
        tokens.append((token.type, text))
    return tokenize.untokenize(tokens)


def read(name: str) -> str:
    return (SUBMISSIONS / name).read_text()


def test_renamed_copy_ranks_first():
    sources = {"alice": read("good_vectorized.py"), "mallory": disguised(read("good_vectorized.py")),
               "bob": read("good_loop.py"), "carol": read("course_current_solution.py"),
               "dave": read("course_forward_only.py")}
    pairs = compare_all(sources, handed_out=[STARTER])
    top = pairs[0]
    assert {top.first, top.second} == {"alice", "mallory"}
    assert top.score > 0.9
    assert all(pair.score < top.score - 0.3 for pair in pairs[1:]), [(p.first, p.second, p.score) for p in pairs]
    assert top.first_spans and top.second_spans
    span = top.first_spans[0]
    assert 0 <= span.start < span.end <= len(sources[top.first])


def test_starter_alone_scores_near_zero():
    sources = {"starter-only": STARTER, "bob": read("good_loop.py"), "alice": read("good_vectorized.py")}
    pairs = compare_all(sources, handed_out=[STARTER])
    starter_pairs = [pair for pair in pairs if "starter-only" in (pair.first, pair.second)]
    assert all(pair.score < 0.1 for pair in starter_pairs), [(p.first, p.second, p.score) for p in starter_pairs]
    assert starter_share(STARTER, handed_out=[STARTER]) < 0.05
    assert starter_share(read("good_loop.py"), handed_out=[STARTER]) > 0.5


def test_without_the_starter_the_skeleton_is_shared():
    """The boilerplate removal is what keeps the starter near zero: without it the skeleton itself matches."""
    sources = {"starter-only": STARTER, "copy": disguised(STARTER)}
    assert compare_all(sources)[0].score > 0.8
    assert all(pair.score < 0.1 for pair in compare_all(sources, handed_out=[STARTER]))
