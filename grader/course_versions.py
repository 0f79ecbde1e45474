"""Which version of the course a student's file looks written for, read from its source text (never run here).

The public course (MLSysBook/TinyTorch) changed module 09's API over time:

- older versions (up to September 2025): a single-channel `Conv2D(kernel_size)` beside the multi-channel layer,
  `MaxPool2D(pool_size)`, layers built on `tinytorch.core.layers.Module` and `Dense`, CNN code imported from
  `tinytorch.core.cnn`, or the development modules (`from tensor_dev import Tensor`);
- the module text this grader was written for: `Conv2D(in_channels, out_channels, kernel_size, stride, padding)`,
  `MaxPool2D`, `AvgPool2D`, `Flatten`, `SimpleCNN` with fc1/fc2;
- the current course (November 2025 on): `Conv2d`/`MaxPool2d`/`AvgPool2d` with their own backward functions
  (`from tinytorch.core.autograd import Function, ReLUBackward`), flattening with reshape, a SimpleCNN of 16/32
  filters.

When a file fails in a way its version explains, the feedback says which version it looks like and what the
assignment expects, instead of a bare TypeError or ImportError.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass, field

from reference.architectures import Architecture

OLDER = "older_course"
MODULE_TEXT = "module_text"
CURRENT = "current_course"
OLD_MODULES = {"tinytorch.core.cnn": "CNN code from tinytorch.core.cnn",
               "tinytorch.core.dense": "dense layers from tinytorch.core.dense",
               "tinytorch.core.networks": "tinytorch.core.networks"}
DEV_SUFFIX = "_dev"
MAX_SOURCE_BYTES = 512 * 1024  # larger files are not analysed (the upload limit is far below this)
# CPython 3.11's parser is not safe to run from several threads at once (see grader/services/submissions.py);
# a self-test grades in the API's thread pool.
_PARSE_LOCK = threading.Lock()


@dataclass(frozen=True)
class CourseStyle:
    """What the file's source shows.

    Fields:
        version: OLDER, MODULE_TEXT or CURRENT, or "" when nothing points either way.
        evidence: short phrases naming what points to that version (for the feedback).
        package_copy: the file uses relative imports (`from .tensor import Tensor`), i.e. it is the course's
            exported tinytorch/core/spatial.py.
    """

    version: str = ""
    evidence: tuple[str, ...] = ()
    package_copy: bool = False
    older: tuple[str, ...] = field(default=(), repr=False)


def _parameters(function: ast.FunctionDef) -> list[str]:
    names = [argument.arg for argument in function.args.posonlyargs + function.args.args]
    return names[1:] if names and names[0] in ("self", "cls") else names


def recognise(source: bytes) -> CourseStyle:
    """Read the course version off the file's imports, class names, base classes and constructor parameters."""
    if len(source) > MAX_SOURCE_BYTES:
        return CourseStyle()
    try:
        with _PARSE_LOCK:
            tree = ast.parse(source.decode("utf-8", errors="replace"))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return CourseStyle()
    older: list[str] = []
    weak_older: list[str] = []  # names the kit still provides: evidence only beside a stronger sign
    current: list[str] = []
    module_text: list[str] = []
    package_copy = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if node.level:
                package_copy = True
                module = "tinytorch.core." + module if node.level == 1 and module else module
            if module in OLD_MODULES:
                older.append(f"it imports {OLD_MODULES[module]}")
            elif module.endswith(DEV_SUFFIX) or module.split(".")[0].endswith(DEV_SUFFIX):
                older.append(f"it imports the development module {module}")
            if module.endswith("layers") and "Dense" in names:
                weak_older.append("it uses Dense (now Linear)")
            if module.endswith("layers") and "Module" in names:
                weak_older.append("its layers build on tinytorch.core.layers.Module (now Layer)")
            if module.endswith("autograd") and names & {"ReLUBackward", "enable_autograd"}:
                current.append("it imports ReLUBackward/enable_autograd from tinytorch.core.autograd")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in OLD_MODULES:
                    older.append(f"it imports {OLD_MODULES[alias.name]}")
        elif isinstance(node, ast.ClassDef):
            init = next((item for item in node.body if isinstance(item, ast.FunctionDef) and item.name == "__init__"),
                        None)
            parameters = _parameters(init) if init is not None else []
            if node.name in ("Conv2D", "Conv2d") and parameters[:1] == ["kernel_size"]:
                older.append(f"its {node.name}(kernel_size) is the single-channel layer")
            if node.name in ("MaxPool2D", "MaxPool2d") and parameters[:1] == ["pool_size"]:
                older.append(f"its {node.name}(pool_size) uses the old argument name")
            if node.name in ("Conv2d", "MaxPool2d", "AvgPool2d") and parameters[:1] in (["in_channels"],
                                                                                           ["kernel_size"]):
                if not (node.name == "Conv2d" and parameters[:1] == ["kernel_size"]):
                    current.append(f"it defines {node.name}")
            if node.name in ("Conv2D", "MaxPool2D", "AvgPool2D", "Flatten") and parameters[:1] != ["pool_size"]:
                if not (node.name == "Conv2D" and parameters[:1] == ["kernel_size"]):
                    module_text.append(f"it defines {node.name}")
    older = list(dict.fromkeys(older + weak_older)) if older else []
    if older:
        return CourseStyle(OLDER, tuple(older), package_copy, tuple(older))
    if current and len(current) >= len(module_text):
        return CourseStyle(CURRENT, tuple(dict.fromkeys(current)), package_copy)
    if module_text:
        return CourseStyle(MODULE_TEXT, tuple(dict.fromkeys(module_text)), package_copy)
    return CourseStyle(package_copy=package_copy)


VERSION_NAMES = {OLDER: "an older version of the course (up to September 2025)",
                 MODULE_TEXT: "the module text's version of the assignment",
                 CURRENT: "the current course (November 2025 on)"}


def expected_api(course: str, architecture: Architecture, flatten: str) -> str:
    """What the assignment expects, in one sentence a student can act on."""
    flatten_text = {"class": "a Flatten class", "function": "a flatten(x) function",
                    "none": "any flatten step inside SimpleCNN"}[flatten]
    if course == CURRENT:
        layers = ("Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True), "
                  "MaxPool2d(kernel_size, stride=None, padding=0), AvgPool2d(kernel_size, stride=None, padding=0)")
    else:
        layers = ("Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0), "
                  "MaxPool2D(kernel_size, stride=None), AvgPool2D(kernel_size, stride=None)")
    return (f"This assignment expects multi-channel layers {layers}, {flatten_text}, and SimpleCNN() built as "
            f"{architecture.describe()}, on tinytorch.core.tensor.Tensor with autograd.")


def mismatch_note(style: CourseStyle, course: str, architecture: Architecture, flatten: str) -> str:
    """A note for the feedback when the file's version differs from the assignment's ("" when it does not)."""
    if style.version != OLDER:
        return ""
    because = "; ".join(style.evidence[:3])
    return (f"Your file looks written for {VERSION_NAMES[OLDER]}: {because}. "
            f"{expected_api(course, architecture, flatten)}")
