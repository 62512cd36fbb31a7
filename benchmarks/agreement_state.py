"""Resumable progress of a long agreement run: one JSON line per finished chunk of images.

A run (e.g. benchmarks/tosa_agreement.py on 10,000 images) can take hours on a
shared CPU, so its evidence is written as it is produced, to a state file
outside the repository (default ``~/.cache/promref/agreement/<name>.jsonl``):

* line 1, ``{"kind": "header", "identity": {...}}``: what is being checked
  (the weights' and the exported artifact's sha256, ...).  ``--resume`` refuses
  a state file whose identity differs from the run's, so chunks checked
  against other weights or another exporter's output are never summed together;
* then one ``{"kind": "chunk", "part": ..., "start": i, "stop": j, ...}`` line per
  chunk of images ``[i, j)`` of part ``part`` (e.g. a rounding mode), with its
  mismatch counts per layer, the seconds it took and when it finished.

Lines are flushed and fsync'ed one by one, so a run stopped at any moment
(kill, end of session) loses at most the chunk in flight; a torn last line is
ignored when the file is read back.  The summary is always computed from the
file, never from the process's memory, so a run completed over several
sessions reports exactly what the file holds.
"""
import hashlib
import json
import os
import time

DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "promref", "agreement")


class StateError(SystemExit):
    """A state file that cannot be resumed (other identity, gaps); exits with its message."""


def default_state_path(name):
    """~/.cache/promref/agreement/<name>.jsonl"""
    return os.path.join(DEFAULT_DIR, f"{name}.jsonl")


def sha256_of(data):
    """sha256 hex digest of bytes, or of a file's bytes when given a path."""
    if isinstance(data, (bytes, bytearray)):
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    with open(data, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_records(path):
    """All complete JSON records of a state file ([] when it does not exist); a torn last line is skipped."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 2:  # only the very last line may be torn by a kill
                raise StateError(f"{path}: line {i + 1} is not JSON; the state file is damaged") from None
    return records


class AgreementState:
    """The state file of one run.  ``identity``: dict that must match to resume.

    Without ``resume`` an existing file is moved aside to ``<path>.<UTC time>.old``
    (never deleted) and the run starts from image 0.
    """

    def __init__(self, path, identity, resume):
        self.path, self.identity = path, json.loads(json.dumps(identity))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        records = read_records(path)
        if records and not resume:
            aside = f"{path}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.old"
            os.replace(path, aside)
            print(f"state: {path} existed and --resume was not given; moved to {aside}", flush=True)
            records = []
        if records:
            head = records[0]
            if head.get("kind") != "header" or head.get("identity") != self.identity:
                raise StateError(
                    f"{path} was written for another run:\n  its identity: {head.get('identity')}\n"
                    f"  this run's:   {self.identity}\nrun without --resume to start over, or pass another --state")
            self.chunks = [r for r in records[1:] if r.get("kind") == "chunk"]
        else:
            self.chunks = []
            self._append({"kind": "header", "identity": self.identity,
                          "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self._rewrite_if_torn(records)

    def _rewrite_if_torn(self, records):
        """Drop a torn last line, so that the next append starts on a line of its own."""
        with open(self.path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            with open(self.path, "w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r) + "\n")

    def _append(self, record):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def done(self, part):
        """Number of images of ``part`` done: chunks must tile [0, done) with no gap."""
        stop = 0
        for c in sorted((c for c in self.chunks if c["part"] == part), key=lambda c: c["start"]):
            if c["start"] != stop:
                raise StateError(f"{self.path}: part {part!r} has a gap or overlap at image {stop} "
                                 f"(next chunk starts at {c['start']})")
            stop = c["stop"]
        return stop

    def record(self, part, start, stop, seconds, **counts):
        """Append one finished chunk [start, stop) of ``part`` with its counts (JSON-able values)."""
        if start != self.done(part):
            raise StateError(f"{self.path}: chunk [{start}, {stop}) of {part!r} does not follow image "
                             f"{self.done(part)}")
        chunk = dict(kind="chunk", part=part, start=int(start), stop=int(stop), seconds=round(float(seconds), 3),
                     finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **counts)
        self._append(chunk)
        self.chunks.append(json.loads(json.dumps(chunk)))

    def part_chunks(self, part):
        """The chunks of ``part`` in image order."""
        return sorted((c for c in self.chunks if c["part"] == part), key=lambda c: c["start"])

    def total(self, part, key):
        """Sum of the integer field ``key`` over the chunks of ``part`` (0 when none)."""
        return sum(int(c.get(key, 0)) for c in self.part_chunks(part))

    def layer_totals(self, part, key="layer_mismatches"):
        """{layer: summed count} of the per-layer dict field ``key`` over the chunks of ``part``."""
        out = {}
        for c in self.part_chunks(part):
            for name, n in c.get(key, {}).items():
                out[name] = out.get(name, 0) + int(n)
        return out

    def mismatches(self, part, key="layer_mismatches"):
        """All mismatches of ``part``: the per-layer field ``key`` summed over layers and chunks."""
        return sum(self.layer_totals(part, key).values())

    def seconds(self, part):
        return sum(float(c["seconds"]) for c in self.part_chunks(part))
