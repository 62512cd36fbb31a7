"""CIFAR-10 in both official layouts, read safely.

    >>> from promref.data import load_cifar10, CIFAR10_CLASSES
    >>> x, y = load_cifar10("test")                         # doctest: +SKIP
    >>> x.shape, x.dtype, y.shape, CIFAR10_CLASSES[y[0]]    # doctest: +SKIP
    ((10000, 32, 32, 3), dtype('uint8'), (10000,), 'cat')

Where the data is looked for (first match wins):

1. the ``root`` argument,
2. the environment variable ``PROMREF_CIFAR10``,
3. ``~/.cache/promref/cifar10``.

``root`` may hold the layout folders (``root/cifar-10-batches-bin``,
``root/cifar-10-batches-py``, as the official archives unpack), or be one of
those folders itself.

The two official layouts:

* ``cifar-10-batches-bin``: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (train)
  and ``test_batch.bin`` (test), 10,000 records each; a record is one label
  byte and 3,072 pixel bytes: the 1,024 red values, then green, then blue,
  each plane a row-major 32 x 32 image.
* ``cifar-10-batches-py``: pickles ``data_batch_1`` .. ``data_batch_5`` and
  ``test_batch``, each a dict ``{b'batch_label', b'labels', b'data',
  b'filenames'}`` whose ``b'data'`` is a uint8 array [10000, 3072] in the same
  planar order.  Pickles can run code, so they are read with a restricted
  unpickler that admits only the five globals these files reference (numpy's
  array and dtype reconstruction, and ``_codecs.encode`` for bytes written by
  Python 3 at protocol 2), each through a guard that checks its arguments.

Both give the same arrays: images uint8 [N, 32, 32, 3] (NHWC, RGB) and labels
uint8 [N] in 0..9 (indices into :data:`CIFAR10_CLASSES`).

The development copy in ``../shared/data/cifar10`` is a JPEG re-encoding of
CIFAR-10; accuracy measured on it must be reported as "CIFAR-10 (JPEG copy)".
``load_cifar10(..., return_source=True)`` returns a :class:`Cifar10Source`
whose ``name`` gives that label.
"""

import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .. import limits
from ..architectures import CIFAR10_LABELS
from ..errors import PromrefError
from ..fileio import open_regular
from ..limits import bounded_repr

__all__ = [
    "CIFAR10_CLASSES", "ENV_VAR", "DEFAULT_ROOT", "LAYOUT_DIRS", "OFFICIAL_SOURCES",
    "DatasetError", "Cifar10Source", "load_cifar10", "download_cifar10",
    "cifar10_available", "cifar10_root", "find_cifar10",
]

#: the dataset's class names in label order (the one tuple, promref.architectures.CIFAR10_LABELS)
CIFAR10_CLASSES = CIFAR10_LABELS

ENV_VAR = "PROMREF_CIFAR10"
DEFAULT_ROOT = Path("~") / ".cache" / "promref" / "cifar10"

LAYOUT_DIRS = {"bin": "cifar-10-batches-bin", "py": "cifar-10-batches-py"}

# layout -> (url, md5 of the archive), from https://www.cs.toronto.edu/~kriz/cifar.html
OFFICIAL_SOURCES = {
    "bin": ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530"),
    "py": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
           "c58f30108f718f92721af3b95e74349a"),
}

SPLIT_STEMS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)),
               "test": ("test_batch",)}
RECORDS_PER_BATCH = 10000
IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES
NUM_CLASSES = len(CIFAR10_CLASSES)

_SUFFIX = {"bin": ".bin", "py": ""}
_JPEG_COPY_MARK = b"JPEG copy"


class DatasetError(PromrefError):
    """A dataset is missing, incomplete, corrupt, unsafe, or fails its checksum."""


@dataclass(frozen=True)
class Cifar10Source:
    """Which files :func:`load_cifar10` read.

    ``jpeg_copy`` is True for the JPEG re-encoding in ``../shared/data`` (its
    python pickles carry "(JPEG copy)" in their ``batch_label``; a binary
    layout is recognised through the python layout beside it).  ``name`` is
    the label that accuracy figures must carry.
    """

    split: str
    layout: str
    directory: Path
    files: tuple
    batch_labels: tuple = ()
    jpeg_copy: bool = False

    @property
    def name(self):
        return "CIFAR-10 (JPEG copy)" if self.jpeg_copy else "CIFAR-10"


# --- where the data is --------------------------------------------------------

def cifar10_root(root=None):
    """The folder to look in: ``root``, else ``$PROMREF_CIFAR10``, else ``~/.cache/promref/cifar10``."""
    if root is None:
        root = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    try:
        return Path(os.fspath(root)).expanduser()
    except TypeError:
        raise DatasetError(f"CIFAR-10 root must be a path, not {type(root).__name__}") from None


def _check_choice(value, name, choices):
    if value not in choices:
        raise DatasetError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def _layouts(layout):
    _check_choice(layout, "layout", ("auto", "bin", "py"))
    return ("bin", "py") if layout == "auto" else (layout,)


def _splits(split):
    _check_choice(split, "split", ("train", "test", None))
    return ("train", "test") if split is None else (split,)


def _files(directory, layout, split):
    return [directory / (stem + _SUFFIX[layout]) for sp in _splits(split) for stem in SPLIT_STEMS[sp]]


def _layout_dir(root, layout):
    """The folder of ``layout`` under ``root``: root/<layout dir>, or root itself."""
    if root.name == LAYOUT_DIRS[layout]:
        return root
    sub = root / LAYOUT_DIRS[layout]
    if sub.is_dir():
        return sub
    # root itself is a (renamed) layout folder if it holds that layout's files
    if any(p.is_file() for p in _files(root, layout, None)):
        return root
    return sub


def find_cifar10(root=None, layout="auto", split=None):
    """Return ``(layout, directory)`` of the first layout whose files for ``split`` are all there.

    ``split=None`` asks for both splits.  Raises :class:`DatasetError` naming
    every folder looked at and what is missing from it.
    """
    layouts = _layouts(layout)
    base = cifar10_root(root)
    problems = []
    for lay in layouts:
        directory = _layout_dir(base, lay)
        if not directory.is_dir():
            problems.append(f"{directory}: no such directory")
            continue
        missing = [p.name for p in _files(directory, lay, split) if not p.is_file()]
        if not missing:
            return lay, directory
        problems.append(f"{directory}: missing {', '.join(missing)}")
    if root is not None:
        origin = "given as root"
    elif os.environ.get(ENV_VAR):
        origin = f"from ${ENV_VAR}"
    else:
        origin = "the default"
    what = "CIFAR-10" if split is None else f"the CIFAR-10 {split} split"
    raise DatasetError(
        f"{what} ({' or '.join(LAYOUT_DIRS[x] for x in layouts)} layout) not found under "
        f"{base} ({origin}): " + "; ".join(problems)
        + f". Pass root= or set ${ENV_VAR} to look elsewhere, or use download=True "
          f"(download_cifar10()) to fetch the official archive.")


def cifar10_available(root=None, layout="auto", split=None):
    """True when :func:`find_cifar10` would succeed (all files present; contents not checked)."""
    try:
        find_cifar10(root, layout, split)
    except DatasetError:
        return False
    return True


# --- loading ------------------------------------------------------------------

def load_cifar10(split="train", root=None, layout="auto", download=False, *,
                 records_per_batch=RECORDS_PER_BATCH, return_source=False):
    """Load one CIFAR-10 split.

    Returns ``(images, labels)``: images uint8 [N, 32, 32, 3] (NHWC, RGB),
    labels uint8 [N] in 0..9; N is 50,000 for ``"train"`` and 10,000 for
    ``"test"``.  With ``return_source=True`` a :class:`Cifar10Source` comes
    third.

    ``layout="auto"`` reads the binary layout when it is complete, else the
    python one.  ``download=True`` fetches the official archive into the root
    (see :func:`download_cifar10`) when no layout is found.
    ``records_per_batch`` is the record count every batch file must have
    (10,000 in the official files; ``None`` accepts any).
    """
    _check_choice(split, "split", ("train", "test"))
    _layouts(layout)
    try:
        lay, directory = find_cifar10(root, layout, split)
    except DatasetError:
        if not download:
            raise
        download_cifar10(root, layout="bin" if layout == "auto" else layout)
        lay, directory = find_cifar10(root, layout, split)

    files = _files(directory, lay, split)
    reader = _read_bin_batch if lay == "bin" else _read_py_batch
    batches = [reader(path, records_per_batch) for path in files]

    n = sum(len(b[1]) for b in batches)
    images = np.empty((n, 32, 32, 3), np.uint8)
    labels = np.empty(n, np.uint8)
    at = 0
    for planar, lab, _ in batches:
        k = len(lab)
        # planar: [k, 3072] = R plane, G plane, B plane, each row-major 32 x 32
        images[at:at + k] = planar.reshape(k, 3, 32, 32).transpose(0, 2, 3, 1)
        labels[at:at + k] = lab
        at += k
    if not return_source:
        return images, labels

    batch_labels = tuple(b[2] for b in batches if b[2] is not None)
    if lay == "py":
        jpeg = any(_JPEG_COPY_MARK.decode() in s for s in batch_labels)
    else:
        jpeg = _sibling_py_is_jpeg_copy(directory, split)
    source = Cifar10Source(split=split, layout=lay, directory=directory, files=tuple(files),
                           batch_labels=batch_labels, jpeg_copy=jpeg)
    return images, labels, source


def _sibling_py_is_jpeg_copy(bin_dir, split):
    """Whether the python layout next to ``bin_dir`` says it is the JPEG copy.

    The batch label sits in the first few hundred bytes of each pickle, so a
    byte search there tells without unpickling anything.
    """
    py_dir = bin_dir.parent / LAYOUT_DIRS["py"]
    for path in _files(py_dir, "py", split):
        try:
            with open(path, "rb") as f:
                if _JPEG_COPY_MARK in f.read(4096):
                    return True
        except OSError:
            pass
    return False


def _check_labels(labels, path):
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        i = int(bad[0])
        raise DatasetError(f"{path}: corrupt: record {i} has label {int(labels[i])}, "
                           f"labels must be 0..{NUM_CLASSES - 1} ({bad.size} bad labels in all)")


def _check_count(n, path, records_per_batch):
    if records_per_batch is not None and n != records_per_batch:
        raise DatasetError(f"{path}: wrong record count: {n} records, "
                           f"a CIFAR-10 batch has {records_per_batch}")


def _read_bin_batch(path, records_per_batch):
    """(planar uint8 [n, 3072], labels uint8 [n], None) from one binary batch file."""
    try:
        size = path.stat().st_size
        if size == 0 or size % RECORD_BYTES:
            raise DatasetError(
                f"{path}: truncated or corrupt: its size, {size} bytes, is not a whole "
                f"positive number of {RECORD_BYTES}-byte records (1 label byte + {IMAGE_BYTES} pixel bytes)")
        _check_count(size // RECORD_BYTES, path, records_per_batch)
        with open_regular(path, DatasetError, "CIFAR-10 batch") as f:
            data = f.read(size + 1)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e
    if len(data) != size:
        raise DatasetError(f"{path}: changed while being read ({size} bytes, then {len(data)})")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    _check_labels(labels, path)
    return records[:, 1:], labels, None


def _key(d, name):
    """d[b'name'] (the official files), or d['name'] (a pickle written with str keys)."""
    if name.encode() in d:
        return d[name.encode()]
    return d.get(name)


def _read_py_batch(path, records_per_batch):
    """(planar uint8 [n, 3072], labels uint8 [n], batch label str or None) from one pickle."""
    try:
        with open_regular(path, DatasetError, "CIFAR-10 batch", max_bytes=limits.MAX_MEMBER_BYTES) as f:
            obj = _RestrictedUnpickler(f, path).load()
    except DatasetError as e:
        if str(path) in str(e):
            raise
        raise DatasetError(f"{path}: {e}") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e
    except Exception as e:  # anything the unpickler can raise on a damaged or hostile file
        raise DatasetError(f"{path}: not a readable CIFAR-10 pickle (truncated or corrupt?): "
                           f"{type(e).__name__}: {str(e)[:limits.MAX_REPR_CHARS]}") from None

    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: a CIFAR-10 pickle holds a dict, this one a {type(obj).__name__}")
    data, labels = _key(obj, "data"), _key(obj, "labels")
    for name, value in (("data", data), ("labels", labels)):
        if value is None:
            raise DatasetError(f"{path}: the dict has no b'{name}' entry "
                               f"(keys: {', '.join(sorted(map(repr, obj)))})")
    if type(data) is not np.ndarray or data.dtype != np.uint8 or data.dtype.fields is not None:
        what = f"a {data.dtype} array" if isinstance(data, np.ndarray) else f"a {type(data).__name__}"
        raise DatasetError(f"{path}: b'data' must be a uint8 array, it is {what}")
    if data.ndim != 2 or data.shape[1] != IMAGE_BYTES or data.shape[0] == 0:
        raise DatasetError(f"{path}: b'data' must have shape [N, {IMAGE_BYTES}], it has {list(data.shape)}")
    n = data.shape[0]

    if isinstance(labels, (list, tuple)):
        if not all(type(v) is int for v in labels):
            raise DatasetError(f"{path}: b'labels' must be a list of ints")
    elif not (type(labels) is np.ndarray and labels.ndim == 1 and labels.dtype.kind in "iu"):
        raise DatasetError(f"{path}: b'labels' must be a list of ints, it is a {type(labels).__name__}")
    if len(labels) != n:
        raise DatasetError(f"{path}: corrupt: {len(labels)} labels for {n} images")
    _check_count(n, path, records_per_batch)
    bad = [i for i, v in enumerate(labels) if not 0 <= v < NUM_CLASSES]
    if bad:
        raise DatasetError(f"{path}: corrupt: record {bad[0]} has label {labels[bad[0]]}, "
                           f"labels must be 0..{NUM_CLASSES - 1} ({len(bad)} bad labels in all)")
    lab = np.array(labels, np.uint8)

    batch_label = _key(obj, "batch_label")
    if isinstance(batch_label, bytes):
        batch_label = batch_label.decode("latin-1")
    elif not isinstance(batch_label, str):
        batch_label = None
    return data, lab, batch_label


# --- the restricted unpickler ---------------------------------------------------

# numpy's own array reconstructor, whatever module it lives in (numpy.core / numpy._core)
_NP_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]

# Every global the official pickles (Python 2, numpy.core) and make_cifar10.py's
# (Python 3, protocol 2, numpy._core) reference, and nothing else.  Found with
# pickletools: GLOBAL opcodes of data_batch_*, test_batch and batches.meta.
ADMITTED_GLOBALS = (
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
)


class _NdarrayToken:
    """What ``numpy.ndarray`` unpickles to: a token only :meth:`_reconstruct` accepts."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        raise DatasetError("refused: the pickle calls numpy.ndarray itself; CIFAR-10 pickles only "
                           "hand it to numpy's _reconstruct")

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for the CIFAR-10 python batches, and nothing else.

    ``find_class`` admits exactly :data:`ADMITTED_GLOBALS` and refuses any
    other global with a :class:`DatasetError` before a single call is made.
    Even the admitted ones are not handed out raw; each is a guard admitting
    only the arguments these files use:

    * ``_reconstruct(numpy.ndarray, (0,), b'b')`` -> an empty uint8 array that
      the pickle's BUILD then fills from raw bytes (``ndarray.__setstate__``);
    * ``dtype('u1', align, copy)`` -> a fresh uint8 dtype (no object arrays);
    * ``numpy.ndarray`` -> a token only the ``_reconstruct`` guard accepts;
    * ``_codecs.encode(str, 'latin1')`` -> bytes (no other codec).

    Strings are read with ``encoding="bytes"``, as the official loader does.
    """

    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module, name):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): self._dtype,
            ("_codecs", "encode"): self._encode,
        }
        guard = allowed.get((module, name))
        if guard is None:
            raise DatasetError(
                f"{self._path}: refused to unpickle: it references the global "
                f"{str(module)[:100]}.{str(name)[:100]}, "
                f"which CIFAR-10 pickles never contain (admitted: "
                + ", ".join(f"{m}.{n}" for m, n in ADMITTED_GLOBALS) + ")")
        return guard

    def persistent_load(self, pid):
        raise DatasetError(f"{self._path}: refused to unpickle: it uses persistent ids")

    def _refuse(self, what):
        raise DatasetError(f"{self._path}: refused to unpickle: {what}")

    def _reconstruct(self, *args):
        if (len(args) != 3 or args[0] is not _NDARRAY or args[1] != (0,)
                or args[2] not in (b"b", "b")):
            self._refuse(f"numpy _reconstruct called with {bounded_repr(args)}; CIFAR-10 pickles only use "
                         f"(numpy.ndarray, (0,), b'b')")
        return _NP_RECONSTRUCT(np.ndarray, (0,), b"b")

    def _dtype(self, *args):
        if not 1 <= len(args) <= 3 or args[0] not in (b"u1", "u1"):
            self._refuse(f"numpy dtype{bounded_repr(args)}; CIFAR-10 pickles hold only uint8 ('u1') arrays")
        align = bool(args[1]) if len(args) > 1 else False
        return np.dtype("u1", align, True)  # copy=True: BUILD must not touch numpy's own uint8

    def _encode(self, *args):
        if len(args) != 2 or type(args[0]) is not str or args[1] not in ("latin1", "latin-1"):
            self._refuse(f"_codecs.encode called with {bounded_repr(args)}; CIFAR-10 pickles only use "
                         f"encode(str, 'latin1')")
        return args[0].encode("latin-1")


# --- download -----------------------------------------------------------------

def download_cifar10(root=None, layout="bin", url=None, md5=None, *, timeout=60.0):
    """Download and unpack the official CIFAR-10 archive of ``layout`` into ``root``.

    ``root`` resolves like :func:`load_cifar10`'s.  ``url`` and ``md5`` default
    to the official archive of the layout (:data:`OFFICIAL_SOURCES`); a
    custom ``url`` needs its ``md5``.  The archive is streamed to a temporary
    file beside the target and its MD5 checked (on a mismatch the file is
    deleted and :class:`DatasetError` raised); it is unpacked into a temporary
    folder, refusing absolute paths, ``..``, links and devices; and the
    layout folder is then renamed into place, so ``root/<layout dir>`` is
    either absent or complete.  Does nothing if that folder is already
    complete.  Returns its path.
    """
    _check_choice(layout, "layout", ("bin", "py"))
    if url is None:
        url, default_md5 = OFFICIAL_SOURCES[layout]
        md5 = md5 or default_md5
    if not isinstance(url, str):
        raise DatasetError(f"url must be a string, not {type(url).__name__}")
    if not md5:
        raise DatasetError(f"download_cifar10 needs the md5 of {url} to check it")
    if not isinstance(md5, str) or len(md5) != 32 or any(c not in "0123456789abcdefABCDEF" for c in md5):
        raise DatasetError(f"md5 must be 32 hex digits, not {bounded_repr(md5)}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise DatasetError(f"timeout must be a number of seconds in (0, 3600], not {bounded_repr(timeout)}")
    md5 = md5.lower()
    base = cifar10_root(root)
    if base.name in LAYOUT_DIRS.values():
        base = base.parent
    target = base / LAYOUT_DIRS[layout]
    if cifar10_available(target, layout):
        return target
    if target.exists():
        missing = [p.name for p in _files(target, layout, None) if not p.is_file()]
        raise DatasetError(f"{target} exists but is incomplete (missing {', '.join(missing)}); "
                           f"remove it and download again")

    try:
        base.mkdir(parents=True, exist_ok=True)
        fd, archive = tempfile.mkstemp(dir=base, prefix=".cifar10-download-", suffix=".tar.gz")
    except OSError as e:
        raise DatasetError(f"cannot create {base}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(url, out, timeout)
        if digest != md5:
            raise DatasetError(f"checksum mismatch for {url}: MD5 {digest}, expected {md5}; "
                               f"the download was deleted")
        workdir = tempfile.mkdtemp(dir=base, prefix=".cifar10-extract-")
        try:
            _safe_extract(archive, workdir, url)
            unpacked = Path(workdir) / LAYOUT_DIRS[layout]
            missing = [p.name for p in _files(unpacked, layout, None) if not p.is_file()]
            if missing:
                raise DatasetError(f"{url}: the archive lacks {LAYOUT_DIRS[layout]}/"
                                   + f", {LAYOUT_DIRS[layout]}/".join(missing))
            try:
                os.replace(unpacked, target)  # atomic: same file system
            except OSError as e:
                if not cifar10_available(target, layout):  # else someone else just finished
                    raise DatasetError(f"cannot move the data into {target}: {e.strerror or e}") from e
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        try:
            os.unlink(archive)
        except FileNotFoundError:
            pass
    return target


def _fetch(url, out, timeout, max_bytes=None, deadline_s=None):
    """Stream ``url`` into the open file ``out``; return the hex MD5 of what came.

    ``timeout`` bounds each network wait; ``deadline_s`` the whole download
    (default :data:`limits.DOWNLOAD_DEADLINE_S`), so a server dripping bytes
    cannot hold it forever; ``max_bytes`` (default
    :data:`limits.MAX_DOWNLOAD_BYTES`) what it may bring, so a server
    streaming forever cannot fill the disk.  The caller deletes the partial file.
    """
    max_bytes = limits.MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes
    deadline = time.monotonic() + (limits.DOWNLOAD_DEADLINE_S if deadline_s is None else deadline_s)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and int(expected) > max_bytes:
                raise DatasetError(f"{url} announces {expected} bytes, more than the limit of {max_bytes}")
            got = 0
            while True:
                chunk = response.read1(1 << 16) if hasattr(response, "read1") else response.read(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
                if got > max_bytes:
                    raise DatasetError(f"download of {url} exceeds the limit of {max_bytes} bytes; stopped")
                if time.monotonic() > deadline:
                    raise DatasetError(f"download of {url} did not finish within its deadline "
                                       f"({deadline_s or limits.DOWNLOAD_DEADLINE_S:g} s); stopped")
                digest.update(chunk)
                out.write(chunk)
    except DatasetError:
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise DatasetError(f"cannot download {url}: {reason}") from None
    if expected is not None and expected.isdigit() and int(expected) != got:
        raise DatasetError(f"download of {url} is truncated: {got} of {expected} bytes")
    return digest.hexdigest()


def _check_member(member, url):
    name = member.name
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise DatasetError(f"{url}: unsafe archive: member {name!r} has an absolute path")
    if ".." in PurePosixPath(posix).parts:
        raise DatasetError(f"{url}: unsafe archive: member {name!r} leads out of the folder (..)")
    if not (member.isfile() or member.isdir()):
        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                else "a device" if member.ischr() or member.isblk()
                else "a FIFO" if member.isfifo() else "not a regular file or folder")
        raise DatasetError(f"{url}: unsafe archive: member {name!r} is {kind}")


def _safe_extract(archive, dest, url):
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f"{url}: not a gzip-compressed tar archive: {e}") from e
    with tar:
        try:
            members = []
            total = 0
            for m in tar:  # one header at a time: a huge member list is refused before it is all read
                _check_member(m, url)
                members.append(m)
                total += m.size if m.isfile() else 0
                if len(members) > limits.MAX_EXTRACT_MEMBERS:
                    raise DatasetError(f"{url}: the archive has more than {limits.MAX_EXTRACT_MEMBERS} members")
                if total > limits.MAX_EXTRACT_BYTES:
                    raise DatasetError(f"{url}: the archive unpacks to more than {limits.MAX_EXTRACT_BYTES} bytes")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Pythons without extraction filters
                for m in members:  # what the data filter does to modes: no setuid, no world-write
                    m.mode = (m.mode & 0o755) | (0o700 if m.isdir() else 0o600)
                tar.extractall(dest, members=members)
        except DatasetError:
            raise
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DatasetError(f"{url}: cannot unpack the archive: {e}") from e
