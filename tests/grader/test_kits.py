"""Uploaded course kits: stored content-addressed without being imported, graded against in the sandbox; self-test.

The uploaded kit here is the built-in kit plus one module only it has (`tinytorch.core.course_extras`), so a
file importing that module fails under the built-in kit and passes under the uploaded one.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from grader.kits import KitError, kit_root, runner_for, store_kit
from grader.pipeline import grade_submission
from grader.self_test import run_self_test
from grader.settings import get_settings
from grader.spec import SpecError, load_spec, parse_spec
from grader.stages.correctness import max_score
from sandbox.select import select_runner
from tests.fixtures.mutants import mutant_source

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "reference" / "kit" / "tinytorch"
GOOD = (ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py").read_text()
EXTRA = "COURSE_KIT_MARKER = 'uploaded kit'\n\n\ndef scale(value):\n    return 2 * value\n"
USES_EXTRA = "from tinytorch.core.course_extras import COURSE_KIT_MARKER, scale\n\nassert scale(2) == 4\n" + GOOD
DEFAULT_TEXT = (ROOT / "grader" / "specs" / "default.toml").read_text()


def kit_archive(kind: str = "tar", prefix: str = "course-main/", extra: bool = True) -> bytes:
    files = {f"{prefix}tinytorch/{path.relative_to(KIT)}": path.read_bytes()
             for path in sorted(KIT.rglob("*.py")) if "__pycache__" not in path.parts}
    if extra:
        files[f"{prefix}tinytorch/core/course_extras.py"] = EXTRA.encode()
    files[f"{prefix}README.md"] = b"not part of the package"
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stored():
    return store_kit(kit_archive(), get_settings())


def spec_with_kit(reference: str):
    return parse_spec(DEFAULT_TEXT.replace("pass_mark = 0.75", f'pass_mark = 0.75\nkit = "{reference}"'))


def test_kit_is_stored_by_content_and_keeps_only_the_package(stored):
    again = store_kit(kit_archive("zip", prefix=""), get_settings())  # same package, other archive: same kit
    assert again.reference == stored.reference and again.root == stored.root
    assert (stored.root / "tinytorch" / "core" / "course_extras.py").read_text() == EXTRA
    assert not list(stored.root.rglob("README.md"))
    assert kit_root(stored.reference, get_settings()) == stored.root


@pytest.mark.parametrize("archive, message", [
    (b"definitely not an archive", "wheel, a .zip or a .tar"),
    (b"PK\x05\x06" + b"\0" * 18, "exactly one tinytorch"),  # an empty zip
])
def test_bad_uploads_are_refused(archive, message):
    with pytest.raises(KitError, match=message):
        store_kit(archive, get_settings())


def test_links_and_escaping_paths_are_refused():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("tinytorch/__init__.py")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(KitError, match="only regular files"):
        store_kit(buffer.getvalue(), get_settings())
    with pytest.raises(KitError, match="sha256:<64 hex digits>"):
        kit_root("sha256:abc", get_settings())
    with pytest.raises(SpecError, match="assignment.kit"):
        spec_with_kit("latest")


def test_file_using_kit_only_names_grades_under_the_uploaded_kit(stored):
    settings = get_settings()
    builtin = grade_submission(USES_EXTRA.encode(), spec=load_spec(), stages=["correctness"], settings=settings,
                               runner=select_runner(settings, "unsafe-subprocess"))
    assert builtin.score == 0 and "tinytorch.core.course_extras" in builtin.stages[0].message
    spec = spec_with_kit(stored.reference)
    uploaded = grade_submission(USES_EXTRA.encode(), spec=spec, stages=["correctness"], settings=settings,
                                runner=runner_for(spec, settings, "unsafe-subprocess"))
    assert [test.name for test in uploaded.tests if test.status != "passed"] == []
    assert uploaded.score == pytest.approx(max_score(spec))


def test_uploaded_kit_is_bound_into_the_bwrap_sandbox(stored):
    settings = get_settings()
    spec = spec_with_kit(stored.reference)
    runner = runner_for(spec, settings, "bwrap")
    assert runner.kit_dir == stored.root
    result = grade_submission(USES_EXTRA.encode(), spec=spec, stages=["correctness"], settings=settings,
                              runner=runner)
    assert result.score == pytest.approx(max_score(spec)), [t.output for t in result.tests if t.status != "passed"]


@pytest.mark.docker
def test_uploaded_kit_runs_in_its_own_docker_image(stored):
    settings = get_settings()
    spec = spec_with_kit(stored.reference)
    runner = runner_for(spec, settings, "docker")
    default_runner = select_runner(settings, "docker")
    assert runner.image_id != default_runner.image_id
    result = grade_submission(USES_EXTRA.encode(), spec=spec, stages=["correctness"], settings=settings,
                              runner=runner)
    assert result.score == pytest.approx(max_score(spec)), [t.output for t in result.tests if t.status != "passed"]


def test_self_test_passes_a_correct_solution_and_lists_what_a_broken_one_fails(stored):
    settings = get_settings()
    spec = spec_with_kit(stored.reference)
    runner = runner_for(spec, settings, "unsafe-subprocess")
    good = run_self_test(spec, USES_EXTRA.encode(), runner=runner, settings=settings)
    assert good.passed and good.failing == () and "Self-test passed" in good.message
    broken = run_self_test(spec, mutant_source("conv_flipped_kernel"), runner=runner, settings=settings)
    assert not broken.passed and broken.score < broken.max_score
    names = [name for name, _ in broken.failing]
    assert names and all(name.startswith(("conv2d.", "simplecnn.")) for name in names)
    assert "conv2d.forward.k3_stride1_pad0" in names and "conv2d.forward.k3_stride1_pad0" in broken.message
    assert "Likely cause: the kernel is flipped" in dict(broken.failing)["conv2d.forward.k3_stride1_pad0"]
