"""Opening input files safely: regular files only, and JSON with bounded depth and numbers.

Every path promref reads from (weights, images, checkpoints, data set
batches, suite manifests and tensors, model cards, energy tables, an
implementation's outputs) is opened through :func:`open_regular`: a FIFO,
device or directory is refused *before* anything blocks on it (``open`` of a
FIFO waits for a writer forever).  :func:`loads_json` parses JSON whose depth
and integer sizes are limited (docs/format.md, "Resource limits").  Every
exported file (ONNX, TFLite, a random model) is checked by :func:`output_file`
first: a directory or a missing folder is refused before the export runs.
"""
import json
import os
import stat

from . import limits
from .errors import PromrefError


def open_regular(path, error=PromrefError, what="file", max_bytes=None):
    """Open ``path`` for binary reading; it must be a regular file (of at most ``max_bytes``).

    The file is opened non-blocking (so a FIFO without a writer cannot hang
    the open), checked with ``fstat`` on the open descriptor (no race with a
    rename), then switched back to blocking.  Raises ``error`` naming the path.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{_name(path)}: no such file (a {what} was expected)") from None
    except IsADirectoryError:
        raise error(f"{_name(path)}: is a directory, not a {what}") from None
    except (OSError, ValueError, TypeError) as e:  # ValueError: embedded NUL byte
        raise error(f"{_name(path)}: cannot open the {what}: {getattr(e, 'strerror', None) or e}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{_name(path)}: is a directory, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{_name(path)}: is not a regular file (a FIFO, socket or device?); "
                        f"promref reads a {what} only from a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise error(f"{_name(path)}: {info.st_size} bytes, more than the limit of {max_bytes} "
                        f"for a {what}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, error=PromrefError, what="file", max_bytes=None):
    """The bytes of the regular file ``path`` (at most ``max_bytes``; it may not grow past them)."""
    with open_regular(path, error, what, max_bytes) as f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"{_name(path)}: grew past the limit of {max_bytes} bytes while being read")
    return data


def output_file(path, error=PromrefError, what="file"):
    """``path`` as a str, checked as a place to write a ``what``: refused with ``error`` when it
    is a directory or its folder does not exist, before any work goes into the contents."""
    try:
        name = os.fspath(path)
    except TypeError:
        raise error(f"the {what} to write must be a path, not {type(path).__name__}") from None
    if os.path.isdir(name):
        raise error(f"{_name(name)}: is a directory; give the {what} to write")
    folder = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(folder):
        raise error(f"{_name(name)}: its folder {_name(folder)} does not exist")
    return name


def _name(path):
    try:
        return os.fsdecode(path)
    except (TypeError, ValueError):
        return repr(path)


def _bounded_int(text):
    if len(text.lstrip("-")) > limits.MAX_JSON_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} digits (limit {limits.MAX_JSON_INT_DIGITS})")
    return int(text)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {limits.bounded_repr(key)}")
        out[key] = value
    return out


def check_depth(value, max_depth=limits.MAX_JSON_DEPTH):
    """Raise ValueError if the nested lists/dicts of ``value`` go deeper than ``max_depth`` (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def loads_json(data, max_depth=limits.MAX_JSON_DEPTH, allow_nan=False):
    """Parse JSON ``data`` (bytes or str) strictly; raise ValueError with a short reason.

    Refused: invalid UTF-8, ``NaN``/``Infinity`` (unless ``allow_nan``: then the
    caller refuses them per field), integers longer than
    ``MAX_JSON_INT_DIGITS`` digits, duplicate object keys (another reader
    might take the first), nesting deeper than ``max_depth``.  Depth is
    checked on the raw text first, so a 100,000-deep file never recurses.
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"not valid UTF-8: {e}") from None
    depth = deepest = 0
    in_string = escaped = False
    for ch in data:  # a cheap bracket count: the parser below then never recurses too deep
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels")
        elif ch in "]}":
            depth -= 1
    try:
        extra = {} if allow_nan else dict(parse_constant=_no_constant)
        return json.loads(data, parse_int=_bounded_int, object_pairs_hook=_unique_keys, **extra)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
