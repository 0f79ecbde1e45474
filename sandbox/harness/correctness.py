"""Correctness harness: runs INSIDE the sandbox, next to the student's code. Imports only stdlib, NumPy, tinytorch.

It judges nothing. It reads the runs to do (/job/inputs/cases.json) and their input arrays
(/job/inputs/arrays.npz, sliced at the offsets cases.json gives: no zip reader), imports the student's spatial.py
(as `tinytorch.core.spatial`, see student_module.py), and for every run builds the layer, sets its parameters as
kit Tensors, runs forward and `out.backward(G)`, and writes back raw outputs (shapes, exception texts, and arrays:
float32 when the student's array is exactly that, else converted to float64, so nothing is rounded) to
/job/out/result.bin as an .npz whose member `record.json` (a uint8 array) holds the JSON record. The grader
outside re-validates every byte of it and compares with its own reference.

Which class (or function) a component is, and the SimpleCNN parameters in `parameters()` order, come from
cases.json: the assignment's spec decides them, not this file.

A run that only constructs (cases.json "forward": false) and names an earlier run in "construct_of" (the same
component and constructor arguments) is not built again: its entry is that run's entry as construction left it
(the parameter shapes, notes, or the construct error), recorded before that run's forward pass. Building
SimpleCNN twice (random init of a 4096x128 weight) cost ~5 ms of every job's CPU.

The result file is rewritten after every run, so a process that dies later (os._exit, a crash, the wall-clock
limit) still hands back the runs it finished. Each phase of a run has its own time limit (SIGALRM), so an
infinite loop in one component costs only that component's checks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the harness folder off sys.path

from harness_common import MEMORY_ERROR_EXIT_CODE, CappedWriter, parse_harness_args  # noqa: E402
from npz_archive import NpzArchive, npy_parts  # noqa: E402
from student_module import execute, new_module, parse  # noqa: E402

FORMAT = 1
ERROR_TEXT_CHARS = 2000  # longest exception text handed back per run
PRINT_CAP_BYTES = 64 * 1024  # how much of the student's printing is passed on to the log
WRITE_EVERY_S = 0.5  # longest stretch of finished runs that a dying process can lose
MAX_PARAMETERS = 64  # parameter shapes of a SimpleCNN handed back


class CaseTimeout(BaseException):
    """Raised by SIGALRM when one phase of a run is over its time limit (BaseException: `except Exception` in
    student code does not swallow it)."""



def main() -> int:
    args = parse_harness_args()
    sys.dont_write_bytecode = True

    import numpy as np

    from tinytorch.core.tensor import Tensor

    harness = Harness(np, Tensor, args)
    try:
        harness.run()
    except MemoryError:
        os._exit(MEMORY_ERROR_EXIT_CODE)
    # Exit now: threads the student's code started must not outlive the harness (or touch result.bin after it).
    os._exit(0)


class Harness:
    def __init__(self, np, tensor_class, args):
        self.np, self.Tensor, self.args = np, tensor_class, args
        self.out_dir = args.out
        self.record: dict = {"format": FORMAT, "import": None, "classes": {}, "runs": {}}
        self.arrays = NpzArchive()  # the arrays handed back so far, each serialised once
        self.submission_path = os.path.realpath(args.submission)
        self.stderr_fd = os.dup(2)
        self.progress = open(os.path.join(self.out_dir, "progress.jsonl"), "a", encoding="utf-8")
        self.asarray = np.asarray  # taken before student code runs (the grader outside re-validates anyway)
        self.ndarray, self.float32, self.float64 = np.ndarray, np.dtype(np.float32), np.float64
        self.kept_constructions: set[str] = set()  # ids of runs a later run's "construct_of" names
        self.constructions: dict[str, tuple[float, str]] = {}  # run id -> (construct seconds, entry as JSON)

    def run(self) -> None:
        with open(os.path.join(self.args.inputs, "cases.json"), encoding="utf-8") as handle:
            cases = json.load(handle)
        inputs = self.load_inputs(cases.get("arrays", {}))
        signal.signal(signal.SIGALRM, _on_alarm)
        sys.stdout = CappedWriter(self.stderr_fd, PRINT_CAP_BYTES)
        sys.stderr = sys.stdout
        self.sys_recursion = sys.getrecursionlimit()
        self.class_names = {component: [str(name) for name in names]
                            for component, names in cases.get("class_names", {}).items()}

        self.kept_constructions = {run["construct_of"] for run in cases["runs"] if run.get("construct_of")}
        module = self.import_submission(cases.get("import_time_limit_s", 10.0))
        self.write()
        if module is None:
            return
        timed_out: set[str] = set()
        last_write, previous_component = time.perf_counter(), None
        for run in cases["runs"]:
            # Rewriting the file after every run costs more than the runs; writing at each new component and
            # at least every WRITE_EVERY_S keeps what finished if the process dies later.
            if run["component"] != previous_component or time.perf_counter() - last_write > WRITE_EVERY_S:
                self.write()
                last_write, previous_component = time.perf_counter(), run["component"]
            self.say({"run": run["id"], "phase": "start"})
            started = time.perf_counter()
            entry: dict = {"status": "ok", "phase": "", "error": "", "notes": []}
            self.record["runs"][run["id"]] = entry
            if run["component"] in timed_out:
                # One infinite loop per component is enough: the component's other runs are not started.
                entry.update(status="skipped_after_timeout", phase="construct")
                continue
            try:
                if not self.reuse_construction(run, entry):
                    self.do_run(module, run, inputs, entry)
            except MemoryError:
                entry.update(status="error", error="MemoryError: your code ran out of memory")
            if entry["status"] == "timeout":
                timed_out.add(run["component"])
            entry["seconds"] = round(time.perf_counter() - started, 4)
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.write()
        self.say({"phase": "done"})

    def reuse_construction(self, run: dict, entry: dict) -> bool:
        """Fills `entry` from the construction of the run `run["construct_of"]`, when that one was recorded and
        took no longer than this run's own time limit (building it again would have timed out: it is built again)."""
        kept = self.constructions.get(run.get("construct_of"))
        if run.get("forward") is not False or kept is None or kept[0] > float(run.get("time_limit_s", 10.0)):
            return False
        entry.update(json.loads(kept[1]))
        return True

    def keep_construction(self, run: dict, entry: dict, started: float) -> None:
        """Records the entry as construction left it (success or a construct-phase failure), for later runs."""
        if run["id"] in self.kept_constructions:
            self.constructions[run["id"]] = (time.perf_counter() - started, json.dumps(entry))

    def load_inputs(self, index: dict) -> dict:
        """key -> array of arrays.npz, each a writable copy of its slice (the grader wrote the file and the index:
        numpy.load would parse a zip and ~100 .npy headers per job, and importing zipfile alone costs more)."""
        with open(os.path.join(self.args.inputs, "arrays.npz"), "rb") as handle:
            raw = handle.read()
        inputs = {}
        for key, (offset, dtype, shape) in index.items():
            count = 1
            for size in shape:
                count *= size
            inputs[key] = self.np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape).copy()
        return inputs

    # Import -----------------------------------------------------------------------------------------------

    def import_submission(self, time_limit: float):
        record: dict = {"status": "error", "kind": "", "message": "", "line": None}
        self.record["import"] = record
        try:
            with open(self.args.submission, "rb") as handle:
                raw = handle.read()
        except OSError as error:
            record.update(kind="missing", message=str(error))
            return None
        if not raw.strip():
            record.update(kind="empty", message="spatial.py is empty")
            return None
        if b"\x00" in raw:
            record.update(kind="binary", message="spatial.py contains NUL bytes: it looks like a binary file")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            record.update(kind="encoding", line=line,
                          message=f"spatial.py is not valid UTF-8 text (byte {error.start}, line {line})")
            return None
        try:
            tree = parse(text, self.submission_path)
            whole_file = compile(tree, self.submission_path, "exec", dont_inherit=True)  # not the text: ~2 ms less
        except SyntaxError as error:
            record.update(kind="syntax", line=error.lineno,
                          message=f"{type(error).__name__}: {error.msg}", text=(error.text or "").rstrip()[:200])
            return None
        except (ValueError, MemoryError, RecursionError) as error:
            record.update(kind="syntax", message=f"{type(error).__name__}: {error}"[:ERROR_TEXT_CHARS])
            return None
        module = new_module(self.submission_path)
        self.say({"phase": "import"})
        try:
            signal.setitimer(signal.ITIMER_REAL, time_limit)
            failures = execute(module, tree, self.submission_path, self.describe, self.student_line, whole_file)
            record["tests_failed"] = [{**failure, "statement": failure["statement"][:200]} for failure in failures]
            signal.setitimer(signal.ITIMER_REAL, 0)
        except CaseTimeout:
            record.update(kind="timeout", message=f"importing spatial.py took more than {time_limit:g} s")
            return None
        except ImportError as error:
            signal.setitimer(signal.ITIMER_REAL, 0)
            record.update(kind="import", module=getattr(error, "name", None) or "",
                          message=self.describe(error), line=self.student_line(error))
            return None
        except SystemExit as error:  # the student's exit must not end the harness
            signal.setitimer(signal.ITIMER_REAL, 0)
            record.update(kind="exit", message=self.describe(error), line=self.student_line(error))
            return None
        except BaseException as error:
            signal.setitimer(signal.ITIMER_REAL, 0)
            record.update(kind="exception", message=self.describe(error), line=self.student_line(error))
            return None
        for component, names in self.class_names.items():
            found = [name for name in names if callable(module.__dict__.get(name))]
            self.record["classes"][component] = found[0] if found else None
        record.update(status="ok")
        return module

    def pick(self, module, run: dict):
        """The student's class (or function) for this run: among the spec's names, the first that accepts the
        run's constructor arguments, else the first defined (its TypeError then explains the mismatch)."""
        defined = [name for name in self.class_names.get(run["component"], [])
                   if callable(module.__dict__.get(name))]
        if run.get("call") == "function":
            return (defined[0], module.__dict__[defined[0]]) if defined else (None, None)
        classes = [name for name in defined if isinstance(module.__dict__[name], type)]
        if len(classes) < 2:  # the only class is the answer whatever its signature: no inspect (2 ms to import)
            return (classes[0], module.__dict__[classes[0]]) if classes else (None, None)
        import inspect

        for name in classes:
            try:
                inspect.signature(module.__dict__[name]).bind(**run.get("init", {}))
            except TypeError:
                continue
            except ValueError:  # no signature to inspect: try it
                pass
            return name, module.__dict__[name]
        return (classes[0], module.__dict__[classes[0]]) if classes else (None, None)

    # One run ----------------------------------------------------------------------------------------------

    def do_run(self, module, run: dict, inputs: dict, entry: dict) -> None:
        component = run["component"]
        class_name, cls = self.pick(module, run)
        if class_name is None:
            entry.update(status="missing_class", phase="construct")
            return
        if class_name != self.record["classes"].get(component):
            entry["class"] = class_name
        limit = float(run.get("time_limit_s", 10.0))
        x_value = inputs[run["x"]]
        params = {name: (None if key is None else inputs[key]) for name, key in run.get("params", {}).items()}
        attempts = [params]
        if component == "conv2d" and "bias" in params and params["bias"] is None:
            zeros = self.np.zeros(params["weight"].shape[0], dtype=params["weight"].dtype)
            attempts.append({**params, "bias": zeros})
        for index, attempt in enumerate(attempts):
            entry.update(status="ok", phase="", error="")
            tensors = self.forward_phase(cls, component, run, x_value, attempt, entry, limit)
            if entry["status"] == "ok":
                if index > 0:
                    entry["notes"].append("bias_zeros")
                break
        else:
            return
        if tensors is None:
            return
        x, out, parameters = tensors
        if run.get("grad") is None:
            return
        entry["phase"] = "backward"
        self.say({"run": run["id"], "phase": "backward"})
        try:
            signal.setitimer(signal.ITIMER_REAL, limit)
            out.backward(inputs[run["grad"]])
            signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as error:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.fail(entry, error)
            return
        self.store(run["id"], "dx", getattr(x, "grad", None), entry, run)
        for name, tensor in parameters.items():
            if tensor is not None:
                self.store(run["id"], f"grad/{name}", getattr(tensor, "grad", None), entry, run)

    def forward_phase(self, cls, component, run, x_value, params, entry, limit):
        entry["phase"] = "construct"
        self.say({"run": run["id"], "phase": "forward"})
        started = time.perf_counter()
        self.constructions.pop(run["id"], None)  # a retry's construction replaces the earlier attempt's
        try:
            signal.setitimer(signal.ITIMER_REAL, limit)
            if run.get("call") == "function":
                layer, forward = None, cls
                parameters = {}
            else:
                layer = cls(**run.get("init", {}))
                forward = getattr(layer, "forward", None)
                forward = forward if callable(forward) else layer
            if component == "simplecnn":
                parameters = self.simplecnn_parameters(layer, run, entry)
            elif layer is not None:
                entry["param_shapes"] = {name: self.shape_of(getattr(layer, name, None)) for name in params}
            self.keep_construction(run, entry, started)
            if run.get("forward") is False:
                signal.setitimer(signal.ITIMER_REAL, 0)
                return None
            if component == "simplecnn":
                for name, value in params.items():
                    tensor = parameters[name]
                    tensor.data = value.copy()
                    tensor.requires_grad = True
                    tensor.grad = None
            elif layer is not None:
                parameters = {}
                for name, value in params.items():
                    tensor = None if value is None else self.Tensor(value.copy(), requires_grad=True)
                    setattr(layer, name, tensor)
                    parameters[name] = tensor
            x = self.Tensor(x_value.copy(), requires_grad=True)
            entry["phase"] = "forward"
            out = forward(x)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as error:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.fail(entry, error)
            if entry["phase"] == "construct" and run["id"] not in self.constructions:
                # Failed while constructing; not while setting parameters after the construction was recorded.
                self.keep_construction(run, entry, started)
            return None
        entry["out_type"] = type(out).__name__
        self.store(run["id"], "out", out, entry, run)
        if run.get("keep_input"):
            self.store(run["id"], "x_after", x, entry, run)
        return x, out, parameters

    def simplecnn_parameters(self, model, run: dict, entry: dict) -> dict:
        """name -> the student's own parameter Tensor, matched by `parameters()` order and shapes.

        The spec's architecture lists the parameters in order with their shapes (run["param_shapes"]); what
        `model.parameters()` returns is handed back (entry["param_list"]) for the API check. When it does not
        match, the Tensors found by walking the model's attributes in definition order are tried as well.
        """
        expected = [(name, [int(n) for n in shape]) for name, shape in run.get("param_shapes", {}).items()]
        listed = getattr(model, "parameters", None)
        found = []
        if callable(listed):
            found = [value for value in list(listed())[:MAX_PARAMETERS] if hasattr(value, "data")]
            entry["param_list"] = [self.shape_of(value) for value in found]
        else:
            entry["param_list"] = None
        shapes = [shape for _, shape in expected]
        if [self.shape_of(value) for value in found] != shapes:
            walked = self.walk_parameters(model, trainable_only=True)
            if [self.shape_of(value) for value in walked] != shapes:
                # Files from the course's forward-only versions keep weights that do not require grad.
                walked = self.walk_parameters(model, trainable_only=False)
            entry["param_walk"] = [self.shape_of(value) for value in walked]
            if entry["param_walk"] != shapes:
                raise LookupError("SimpleCNN's parameters do not match the assignment's architecture")
            entry["notes"].append("parameters_by_attributes")
            found = walked
        return {name: value for (name, _), value in zip(expected, found)}

    def walk_parameters(self, root, *, trainable_only: bool) -> list:
        """Tensors (that require grad) reachable through attributes and lists, in definition order, each once."""
        found, seen = [], set()

        def visit(value, depth):
            if id(value) in seen or depth > 6 or len(found) >= MAX_PARAMETERS:
                return
            seen.add(id(value))
            if isinstance(value, self.Tensor):
                if getattr(value, "requires_grad", False) or not trainable_only:
                    found.append(value)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    visit(item, depth + 1)
            elif depth == 0 or callable(getattr(type(value), "forward", None)):
                for item in list(getattr(value, "__dict__", {}).values()):
                    visit(item, depth + 1)

        visit(root, 0)
        return found

    # Output -----------------------------------------------------------------------------------------------

    def shape_of(self, value):
        data = getattr(value, "data", value)
        shape = getattr(data, "shape", None)
        try:
            return [int(n) for n in shape] if shape is not None else None
        except (TypeError, ValueError):
            return None

    def store(self, run_id: str, name: str, value, entry: dict, run: dict) -> None:
        """Keep a Tensor/ndarray/None as an array, or note why it could not be kept.

        A plain float32 ndarray (a gradient, or a Tensor's data) stays float32: float32 runs compute in it, and
        its float64 copy on the grader's side is exact, with half the bytes to write and read. Anything else is
        converted to float64 as it comes.
        """
        shapes = entry.setdefault("shapes", {})
        if value is None:
            shapes[name] = None
            return
        data = getattr(value, "data", value)  # of an ndarray, a memoryview of it
        float32 = [item for item in (value, data) if type(item) is self.ndarray and item.dtype == self.float32]
        try:
            array = float32[0] if float32 else self.asarray(data, dtype=self.float64)
        except BaseException as error:
            entry.setdefault("unreadable", {})[name] = self.describe(error)
            return
        shapes[name] = [int(n) for n in array.shape]
        if array.size > int(run.get("max_elements", 10**6)):
            entry.setdefault("unreadable", {})[name] = f"too large ({array.size} elements)"
            return
        self.arrays.add(f"{run_id}/{name}.npy", npy_parts(array))  # tobytes() copies: later changes do not count

    def write(self) -> None:
        record = self.np.frombuffer(json.dumps(self.record).encode("utf-8"), dtype=self.np.uint8)
        with open(os.path.join(self.out_dir, "result.bin"), "r+b") as handle:
            self.arrays.write(handle, {"record.json.npy": npy_parts(record)})

    def say(self, line: dict) -> None:
        try:
            self.progress.write(json.dumps(line) + "\n")
            self.progress.flush()
        except (OSError, ValueError):
            pass

    def fail(self, entry: dict, error: BaseException) -> None:
        if isinstance(error, CaseTimeout):
            entry.update(status="timeout", error="")
        else:
            entry.update(status="error", error=self.describe(error), line=self.student_line(error))

    def describe(self, error: BaseException) -> str:
        try:
            text = f"{type(error).__name__}: {error}"
        except BaseException:
            text = type(error).__name__
        return text[:ERROR_TEXT_CHARS]

    def student_line(self, error: BaseException):
        """The last line of spatial.py on the traceback, as (line number, function name), or None."""
        try:
            import traceback  # only when something failed: a file whose checks all pass never needs it

            frames = [frame for frame in traceback.extract_tb(error.__traceback__)
                      if os.path.realpath(frame.filename) == self.submission_path]
        except BaseException:
            return None
        if not frames:
            return None
        return [frames[-1].lineno, frames[-1].name]


def _on_alarm(signum, frame):
    raise CaseTimeout()


if __name__ == "__main__":
    sys.exit(main())
