"""Run an implementation against a conformance suite, with 0 LSB tolerance.

``check(suite_dir, implementation)`` accepts

* a Python callable ``impl(op, inputs, params) -> {name: array}`` (see
  :mod:`promref.conformance.reference` for the interface), optionally with a
  ``supported_ops`` attribute; raising ``NotImplementedError`` skips a case;
* a command (a string, split like a shell would, or an argv list) that speaks
  the subprocess protocol of docs/conformance.md: for each case the checker
  writes ``request.json``, ``params.txt`` and the input files into a fresh
  directory and runs ``CMD <dir>/request.json <dir>/out``; the command writes
  each output as ``out/<name>.bin`` (raw little-endian) or ``out/<name>.npy``
  and exits 0, or exits 77 for "unsupported" (the case is skipped);
* an object with ``run_case(case, suite_dir)`` and ``supported_ops``.

It returns a :class:`Report`: per case pass / fail / skip / error, and for a
failure the first mismatching tensor (for model cases the first layer in
execution order), its index, the expected and the actual value.
"""
import fnmatch
import json
import os
import shlex
import math
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from .. import limits
from ..progress import bar
from .suite import DTYPES, OPS, SuiteError, load_case_arrays, load_manifest, read_array, verified_path

PROTOCOL = "promref-conformance-request"
PROTOCOL_VERSION = 1
EXIT_UNSUPPORTED = 77
STATUSES = ("pass", "fail", "skip", "error")


class Unsupported(Exception):
    """An implementation does not support a case (it is reported as skipped)."""


class ImplementationError(Exception):
    """An implementation crashed, timed out, or returned missing or malformed outputs."""


@dataclass
class CaseResult:
    """The outcome of one case."""
    case: str
    op: str
    status: str                      # "pass", "fail", "skip" or "error"
    message: str = ""
    tensor: Optional[str] = None     # first mismatching output (a layer name for model cases)
    index: Optional[tuple] = None    # its index (C order) in that tensor
    expected: Optional[int] = None
    actual: Optional[int] = None
    mismatches: int = 0              # differing values in that tensor
    compared: int = 0                # values compared in the whole case

    def line(self):
        text = f"{self.status.upper():5s} {self.case}"
        return text + (f": {self.message}" if self.message else "")


@dataclass
class Report:
    """All case results of one check run."""
    suite: str
    implementation: str
    results: list = field(default_factory=list)

    def count(self, status):
        return sum(r.status == status for r in self.results)

    @property
    def ok(self):
        """True when nothing failed or errored (skips are allowed) and at least one case passed."""
        return self.count("pass") > 0 and self.count("fail") == 0 and self.count("error") == 0

    def result(self, case_id):
        for r in self.results:
            if r.case == case_id:
                return r
        raise KeyError(case_id)

    def failures(self):
        return [r for r in self.results if r.status in ("fail", "error")]

    def summary(self):
        return (f"{self.count('pass')} passed, {self.count('fail')} failed, {self.count('error')} errors, "
                f"{self.count('skip')} skipped (of {len(self.results)} cases)")

    def text(self, verbose=False):
        lines = [f"suite: {self.suite}", f"implementation: {self.implementation}"]
        for r in self.results:
            if verbose or r.status in ("fail", "error"):
                lines.append("  " + r.line())
        lines.append(("OK: " if self.ok else "NOT CONFORMANT: ") + self.summary())
        return "\n".join(lines)

    def to_dict(self):
        return {"suite": self.suite, "implementation": self.implementation, "ok": self.ok,
                "summary": self.summary(),
                "results": [dict(asdict(r), index=list(r.index) if r.index is not None else None)
                            for r in self.results]}


# ------------------------------------------------------------ implementations


class PythonImplementation:
    """Wraps a callable ``fn(op, inputs, params) -> {name: array}``."""

    def __init__(self, fn, supported_ops=None, name=None):
        self.fn = fn
        ops = supported_ops if supported_ops is not None else getattr(fn, "supported_ops", None)
        self.supported_ops = set(ops) if ops is not None else None
        self.name = name or getattr(fn, "__name__", None) or repr(fn)

    def __repr__(self):
        return f"python: {self.name}"

    def run_case(self, case, suite_dir):
        inputs = load_case_arrays(suite_dir, case["inputs"])
        params = dict(case["params"], rounding=case["rounding"])
        if case["op"] == "model":
            params["weights"] = verified_path(suite_dir, case["weights"])
            params["outputs"] = [t["name"] for t in case["outputs"]]
        try:
            outputs = self.fn(case["op"], inputs, params)
        except NotImplementedError as e:
            raise Unsupported(str(e) or f"op {case['op']!r} not implemented") from None
        if not isinstance(outputs, dict):
            raise ImplementationError(f"returned {type(outputs).__name__}, expected a dict of arrays")
        return outputs


def _flat_params(request):
    """The ``params.txt`` text of a request: one ``key=value`` per line (docs/conformance.md)."""
    lines = ["# promref conformance request (flat form of request.json)",
             f"case={request['case']}", f"op={request['op']}", f"rounding={request['rounding'] or 'none'}"]
    for key, value in request["params"].items():
        text = " ".join(str(int(v)) for v in value) if isinstance(value, (list, tuple)) else str(value)
        lines.append(f"{key}={text}")
    if "weights" in request:
        lines.append(f"weights={request['weights']}")
    lines.append(f"out_dir={request['out_dir']}")
    for group, key in (("inputs", "input"), ("outputs", "output")):
        lines.append(f"{group}={len(request[group])}")
        for i, t in enumerate(request[group]):
            lines += [f"{key}.{i}.name={t['name']}", f"{key}.{i}.file={t['file']}",
                      f"{key}.{i}.dtype={t['dtype']}", f"{key}.{i}.shape={' '.join(str(s) for s in t['shape'])}"]
            if "data_offset" in t:
                lines.append(f"{key}.{i}.offset={t['data_offset']}")
    return "\n".join(lines) + "\n"


class SubprocessImplementation:
    """An external program speaking the file protocol of docs/conformance.md."""

    def __init__(self, cmd, supported_ops=None, timeout=120.0, keep_dir=None, query_ops=True):
        try:
            self.argv = shlex.split(cmd) if isinstance(cmd, str) else [os.fspath(c) for c in cmd]
        except (ValueError, TypeError) as e:
            raise SuiteError(f"cannot use {limits.bounded_repr(cmd)} as a command: {e}") from None
        if not self.argv:
            raise SuiteError("empty command")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
                or timeout <= 0:
            raise SuiteError(f"timeout must be a finite positive number of seconds, not {limits.bounded_repr(timeout)}")
        self.timeout = timeout
        if keep_dir is not None and os.path.lexists(keep_dir) and not os.path.isdir(keep_dir):
            raise SuiteError(f"{os.fsdecode(keep_dir)}: exists and is not a directory (the --keep directory)")
        self.keep_dir = keep_dir
        self.supported_ops = set(supported_ops) if supported_ops is not None else (
            self.query_supported_ops() if query_ops else None)

    def __repr__(self):
        return "command: " + " ".join(shlex.quote(a) for a in self.argv)

    def query_supported_ops(self):
        """Ask ``CMD --supported-ops``; None (everything) unless it exits 0 and names known ops."""
        try:
            done = run_command(self.argv + ["--supported-ops"], None, min(self.timeout, 30))
        except ImplementationError:
            return None
        ops = set(done.stdout.split())
        if done.returncode != 0 or not ops or not ops <= set(OPS):
            return None
        return ops

    def run_case(self, case, suite_dir):
        root = self.keep_dir
        if root:
            os.makedirs(root, exist_ok=True)
        work = tempfile.mkdtemp(prefix="case-", dir=root)
        try:
            return self._run(case, suite_dir, work)
        finally:
            if not self.keep_dir:
                shutil.rmtree(work, ignore_errors=True)

    def _run(self, case, suite_dir, work):
        in_dir, out_dir = os.path.join(work, "in"), os.path.join(work, "out")
        os.makedirs(in_dir)
        os.makedirs(out_dir)
        inputs = []
        for t in case["inputs"]:
            dst = os.path.join(in_dir, f"{t['name']}.npy")
            shutil.copyfile(verified_path(suite_dir, t), dst)
            inputs.append({k: t[k] for k in ("name", "dtype", "shape", "data_offset")} | {"file": dst})
        outputs = [{"name": t["name"], "dtype": t["dtype"], "shape": t["shape"],
                    "file": os.path.join(out_dir, f"{t['name']}.bin")} for t in case["outputs"]]
        request = {"protocol": PROTOCOL, "protocol_version": PROTOCOL_VERSION, "case": case["id"],
                   "op": case["op"], "rounding": case["rounding"], "params": case["params"],
                   "inputs": inputs, "outputs": outputs, "out_dir": out_dir}
        if case["op"] == "model":
            request["weights"] = os.path.join(in_dir, "weights.npz")
            shutil.copyfile(verified_path(suite_dir, case["weights"]), request["weights"])
        with open(os.path.join(work, "request.json"), "w", encoding="utf-8") as f:
            json.dump(request, f, indent=1)
        with open(os.path.join(work, "params.txt"), "w", encoding="utf-8") as f:
            f.write(_flat_params(request))
        done = run_command(self.argv + [os.path.join(work, "request.json"), out_dir], work, self.timeout)
        if done.returncode == EXIT_UNSUPPORTED:
            raise Unsupported(limits.printable_tail((done.stdout + done.stderr).strip(), 200)
                              or "exit code 77 (unsupported)")
        if done.returncode != 0:
            tail = limits.printable_tail((done.stderr or done.stdout).strip(), 400)
            raise ImplementationError(f"exit code {done.returncode}" + (f": {tail}" if tail else ""))
        results = {}
        for t in case["outputs"]:
            for ext in (".npy", ".bin"):
                path = os.path.join(out_dir, t["name"] + ext)
                if os.path.lexists(path):
                    try:
                        results[t["name"]] = read_array(path, t["dtype"], t["shape"])
                    except (SuiteError, ValueError, OSError) as e:
                        raise ImplementationError(f"output {t['name']!r}: {str(e)[:300]}") from None
                    break
        return results


class _Completed:
    """What :func:`run_command` returns: returncode, stdout, stderr (text, invalid UTF-8 replaced)."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _drain(stream, sink, budget, proc):
    """Read ``stream`` to its end, keeping what fits in the shared ``budget``; kill on overflow."""
    for block in iter(lambda: stream.read(1 << 16), b""):
        with budget["lock"]:
            room = budget["left"]
            budget["left"] -= len(block)
        sink.append(block[:max(room, 0)])
        if budget["left"] < 0:
            _kill_group(proc)
            budget["overflow"] = True


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole session: grandchildren too
    except (ProcessLookupError, PermissionError):
        pass


def run_command(argv, cwd, timeout):
    """Run ``argv`` in its own process group; its whole group is killed on a timeout, when it
    prints more than :data:`limits.MAX_CHECKER_OUTPUT_BYTES`, and once it exits (so no
    grandchild outlives the case).  Raises :class:`ImplementationError` for those, and when it
    cannot start."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except (OSError, ValueError) as e:
        raise ImplementationError(f"cannot run {argv[0][:200]!r}: {e}") from None
    budget = {"left": limits.MAX_CHECKER_OUTPUT_BYTES, "lock": threading.Lock(), "overflow": False}
    out, err = [], []
    readers = [threading.Thread(target=_drain, args=(s, sink, budget, proc), daemon=True)
               for s, sink in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        raise ImplementationError(f"timed out after {timeout} s (its whole process group was killed)") from None
    finally:
        _kill_group(proc)
        for r in readers:
            r.join(5)
        proc.stdout.close()
        proc.stderr.close()
    if budget["overflow"]:
        raise ImplementationError(f"printed more than {limits.MAX_CHECKER_OUTPUT_BYTES} bytes; killed")
    text = lambda parts: b"".join(parts).decode("utf-8", "replace")  # noqa: E731
    return _Completed(proc.returncode, text(out), text(err))


def as_implementation(implementation, supported_ops=None):
    """Wrap a callable, a command string/list, or pass through an object with ``run_case``."""
    if hasattr(implementation, "run_case"):
        return implementation
    if callable(implementation):
        return PythonImplementation(implementation, supported_ops)
    if isinstance(implementation, (str, list, tuple)):
        return SubprocessImplementation(implementation, supported_ops)
    raise SuiteError(f"cannot use {limits.bounded_repr(implementation)} as an implementation")


# ------------------------------------------------------------ comparison


def compare(case, expected, actual):
    """A CaseResult for one case, comparing outputs in the manifest's order.

    Op cases need every output; model cases need the last layer, and every
    intermediate layer that was returned is compared too.
    """
    result = CaseResult(case["id"], case["op"], "pass")
    entries = case["outputs"]
    required = [entries[-1]["name"]] if case["op"] == "model" else [t["name"] for t in entries]
    missing = [n for n in required if n not in actual]
    if missing:
        result.status, result.message = "error", f"missing output(s) {missing}"
        return result
    compared_layers = 0
    for t in entries:
        name = t["name"]
        if name not in actual:
            continue
        want = expected[name]
        got = np.asarray(actual[name])
        if got.dtype.kind not in "iu":
            result.status, result.tensor = "error", name
            result.message = f"output {name!r} has dtype {got.dtype}, expected {t['dtype']}"
            return result
        if got.shape != want.shape:
            result.status, result.tensor = "error", name
            result.message = f"output {name!r} has shape {list(got.shape)}, expected {list(want.shape)}"
            return result
        info = np.iinfo(DTYPES[t["dtype"]])
        if got.size and (got.min() < info.min or got.max() > info.max):
            result.status, result.tensor = "fail", name
            result.message = f"output {name!r} holds values outside {t['dtype']}"
            return result
        diff = got.astype(np.int64) != want.astype(np.int64)
        result.compared += int(want.size)
        compared_layers += 1
        if diff.any():
            flat = int(np.argmax(diff.reshape(-1)))
            index = tuple(int(i) for i in np.unravel_index(flat, want.shape))
            result.status, result.tensor, result.index = "fail", name, index
            result.expected, result.actual = int(want[index]), int(got[index])
            result.mismatches = int(diff.sum())
            where = f"layer {name!r}" if case["op"] == "model" else f"output {name!r}"
            result.message = (f"{where} index {list(index)}: expected {result.expected}, got {result.actual} "
                              f"({result.mismatches} of {want.size} values differ)")
            return result
    if case["op"] == "model":
        result.message = f"{compared_layers} of {len(entries)} layer outputs compared"
    return result


# ------------------------------------------------------------ the checker


def select_cases(manifest, ops=None, cases=None):
    """Cases of the manifest whose op is in ``ops`` and whose id matches one of the ``cases`` globs."""
    chosen = []
    for case in manifest["cases"]:
        if ops is not None and case["op"] not in ops:
            continue
        if cases and not any(fnmatch.fnmatchcase(case["id"], pattern) for pattern in cases):
            continue
        chosen.append(case)
    return chosen


def check(suite_dir, implementation, ops=None, cases=None, supported_ops=None, log=None, quiet=True):
    """Run ``implementation`` on the suite in ``suite_dir``; returns a :class:`Report`.

    ops: only cases of these ops; cases: only ids matching these glob patterns;
    supported_ops: ops the implementation supports (others are skipped), on
    top of what the implementation itself declares; log: called with each
    result line as it completes; quiet=False: a progress bar on a terminal.
    """
    suite_dir = os.path.abspath(os.fspath(suite_dir))
    manifest = load_manifest(suite_dir)
    impl = as_implementation(implementation, supported_ops)
    declared = getattr(impl, "supported_ops", None)
    allowed = None
    for group in (declared, supported_ops):
        if group is not None:
            allowed = set(group) if allowed is None else allowed & set(group)
    report = Report(suite_dir, repr(impl))
    chosen = select_cases(manifest, ops, cases)
    progress = bar(len(chosen), "conformance check", unit="case", quiet=quiet)
    for case in chosen:
        if allowed is not None and case["op"] not in allowed:
            result = CaseResult(case["id"], case["op"], "skip", f"op {case['op']!r} not supported")
        else:
            try:
                actual = impl.run_case(case, suite_dir)
                expected = load_case_arrays(suite_dir, case["outputs"])
                result = compare(case, expected, actual)
            except Unsupported as e:
                result = CaseResult(case["id"], case["op"], "skip", str(e))
            except ImplementationError as e:
                result = CaseResult(case["id"], case["op"], "error", str(e))
            except Exception as e:  # a Python implementation's own bug
                result = CaseResult(case["id"], case["op"], "error", f"{type(e).__name__}: {e}")
        report.results.append(result)
        progress.update(1)
        if log:
            log(result.line())
    progress.close()
    return report
