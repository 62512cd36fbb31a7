"""A bounded, pickle-free reader of ``.npz`` files (weights files and training checkpoints).

Never ``np.load``: the zip is read directly, every member must be a plain
``.npy`` array, and every limit is checked from the zip directory *before*
a member is inflated: member count, duplicate names, per-member and total
uncompressed bytes.  A member is read only when asked for, so a caller can
refuse unknown members before spending anything on them.
"""
import os
import zipfile

import numpy as np

from .fileio import open_regular

_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}
_ZIP_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, RuntimeError,
               ValueError, NotImplementedError, OverflowError)


def describe(source):
    """A short name for a path or file object, for error messages."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return os.fsdecode(source)
    return getattr(source, "name", None) if isinstance(getattr(source, "name", None), str) \
        else f"<{type(source).__name__}>"


def open_source(source, error, what):
    """A path or a binary file object -> (file, owned): ``owned`` files are closed by the reader."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return open_regular(source, error, what), True
    if callable(getattr(source, "read", None)) and callable(getattr(source, "seek", None)):
        return source, False
    raise error(f"cannot read a {what} from a {type(source).__name__}: expected a path "
                f"(str, bytes, os.PathLike) or a binary file object")


def _open_zip(file, fail, what):
    """The file -> (ZipFile, its infolist); refuses anything that is not a zip from its first byte."""
    head = file.read(4)
    if not isinstance(head, bytes):
        fail(f"the file object returned {type(head).__name__}, not bytes (open it in 'rb' mode)")
    if head != b"PK\x03\x04":  # zipfile would accept data prepended to an archive
        fail(f"not a {what} (.npz): it does not start with a zip header")
    file.seek(0)
    archive = zipfile.ZipFile(file)
    return archive, archive.infolist()


def check_directory(infos, fail, *, max_members, max_member_bytes, max_total_bytes):
    """The zip directory's entries -> {key: ZipInfo}, after every limit is checked on declared sizes.

    Nothing is inflated here: member count, ``.npy`` names, duplicates and the
    per-member and total uncompressed bytes all come from the directory.
    """
    if len(infos) > max_members:
        fail(f"{len(infos)} members, more than the limit of {max_members}")
    total, by_key = 0, {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            fail(f"member {info.filename[:200]!r} is not an .npy array")
        key = info.filename[:-4]
        if key in by_key:
            fail(f"member {info.filename[:200]!r} appears twice (readers may disagree on which counts)")
        if info.file_size > max_member_bytes:
            fail(f"member {info.filename[:200]!r} unpacks to {info.file_size} bytes "
                 f"(limit {max_member_bytes} per member)")
        total += info.file_size
        by_key[key] = info
    if total > max_total_bytes:
        fail(f"members unpack to {total} bytes in all (limit {max_total_bytes})")
    return by_key


def _npy_header(f, fail, where):
    """An open ``.npy`` stream -> (shape, fortran_order, dtype); plain numeric dtypes only."""
    try:
        version = np.lib.format.read_magic(f)
        read_header = _NPY_HEADERS.get(version)
        if read_header is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran_order, dtype = read_header(f)
    except Exception as e:  # numpy raises ValueError, SyntaxError, TokenError... on bad headers
        fail(f"{where}: corrupt .npy header: {str(e)[:200]}")
    if dtype.hasobject:
        fail(f"{where}: contains pickled (object) data, which promref never loads")
    if dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
        fail(f"{where}: dtype {str(dtype)[:100]} is not a plain numeric type")
    return shape, fortran_order, dtype


def _open_member(archive, info, fail):
    """Open one ``.npy`` member past its header -> (stream, shape, fortran_order, dtype, data bytes).

    The header's shape and dtype must account for exactly the member's
    declared bytes, so any read is bounded by the directory's size, which
    :func:`check_directory` has already limited.
    """
    where = f"member {info.filename[:200]!r}"
    f = archive.open(info)
    try:
        shape, fortran_order, dtype = _npy_header(f, fail, where)
        count = 1
        for n in shape:
            count *= n
        data_bytes = info.file_size - f.tell()
        if count * dtype.itemsize != data_bytes:
            fail(f"{where}: header declares {shape} {dtype} ({count * dtype.itemsize} bytes) "
                 f"but the member holds {data_bytes} bytes")
    except BaseException:
        f.close()
        raise
    return f, shape, fortran_order, dtype, data_bytes


def _guarded(fail, error, where, action):
    """``action()``, with the zip module's exceptions turned into ``error`` naming ``where``."""
    try:
        return action()
    except error:
        raise
    except _ZIP_ERRORS as e:
        fail(f"{where}: corrupt or truncated: {e}")


def member_nbytes(archive, info, fail, error):
    """Bytes of one ``.npy`` member's array, from its header (the data is not inflated)."""
    def header():
        f, _, _, _, data_bytes = _open_member(archive, info, fail)
        f.close()
        return data_bytes
    return _guarded(fail, error, f"member {info.filename[:200]!r}", header)


def read_member(archive, info, fail, error):
    """One ``.npy`` member -> a writable C-ordered ndarray (0-d stays 0-d)."""
    where = f"member {info.filename[:200]!r}"

    def inflate():
        f, shape, fortran_order, dtype, data_bytes = _open_member(archive, info, fail)
        with f:
            return shape, fortran_order, dtype, data_bytes, f.read(data_bytes)  # never more than declared

    shape, fortran_order, dtype, data_bytes, data = _guarded(fail, error, where, inflate)
    if len(data) != data_bytes:
        fail(f"{where}: truncated ({len(data)} of {data_bytes} bytes)")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    return array.copy(order="C")


class NpzReader:
    """An open ``.npz``: ``names`` (member keys without ``.npy``), ``read(key)`` -> ndarray.

    ``source`` is a path (str, bytes, os.PathLike) or a binary file object
    with ``read`` and ``seek``.  ``error`` is the exception class raised for
    every problem, with ``where`` (the file's name) in front of the message.
    Use as a context manager.
    """

    def __init__(self, source, error, *, what, max_members, max_member_bytes, max_total_bytes):
        self.error = error
        self.where = describe(source)
        self._zip = None
        self._file, self._owned = open_source(source, error, what)
        try:
            try:
                self._zip, infos = _open_zip(self._file, self._fail, what)
            except error:
                raise
            except zipfile.BadZipFile as e:
                self._fail(f"not a valid .npz (zip) file: {e}")
            except _ZIP_ERRORS as e:
                self._fail(f"unreadable zip structure (truncated or damaged?): {e}")
            self._infos = check_directory(infos, self._fail, max_members=max_members,
                                          max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes)
        except BaseException:
            self.close()
            raise

    def _fail(self, message):
        raise self.error(f"{self.where}: {message}")

    @property
    def names(self):
        return list(self._infos)

    def __contains__(self, key):
        return key in self._infos

    def size(self, key):
        """Uncompressed bytes of member ``key`` as the zip directory declares them."""
        return self._infos[key].file_size

    def read(self, key):
        """Member ``key`` as a writable C-ordered ndarray (0-d stays 0-d)."""
        return read_member(self._zip, self._infos[key], self._fail, self.error)

    def nbytes(self, key):
        """Bytes of member ``key``'s array (``read(key).nbytes``), read from its header alone."""
        return member_nbytes(self._zip, self._infos[key], self._fail, self.error)

    def close(self):
        if self._zip is not None:
            self._zip.close()
        if self._owned:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
