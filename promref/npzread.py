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


class NpzReader:
    """An open ``.npz``: ``names`` (member keys without ``.npy``), ``read(key)`` -> ndarray.

    ``source`` is a path (str, bytes, os.PathLike) or a binary file object
    with ``read`` and ``seek``.  ``error`` is the exception class raised for
    every problem, with ``where`` (the file's name) in front of the message.
    Use as a context manager.
    """

    def __init__(self, source, error, *, what, max_members, max_member_bytes, max_total_bytes):
        self.error, self.max_member_bytes = error, max_member_bytes
        self.where = describe(source)
        if isinstance(source, (str, bytes, os.PathLike)):
            self._file = open_regular(source, error, what)
            self._owned = True
        elif callable(getattr(source, "read", None)) and callable(getattr(source, "seek", None)):
            self._file, self._owned = source, False
        else:
            raise error(f"cannot read a {what} from a {type(source).__name__}: expected a path "
                        f"(str, bytes, os.PathLike) or a binary file object")
        try:
            self._open_archive(what, max_members, max_total_bytes)
        except BaseException:
            self.close()
            raise

    def _fail(self, message):
        raise self.error(f"{self.where}: {message}")

    def _open_archive(self, what, max_members, max_total_bytes):
        try:
            head = self._file.read(4)
            if not isinstance(head, bytes):
                self._fail(f"the file object returned {type(head).__name__}, not bytes (open it in 'rb' mode)")
            if head != b"PK\x03\x04":  # zipfile would accept data prepended to an archive
                self._fail(f"not a {what} (.npz): it does not start with a zip header")
            self._file.seek(0)
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except self.error:
            raise
        except zipfile.BadZipFile as e:
            self._fail(f"not a valid .npz (zip) file: {e}")
        except _ZIP_ERRORS as e:
            self._fail(f"unreadable zip structure (truncated or damaged?): {e}")
        if len(infos) > max_members:
            self._fail(f"{len(infos)} members, more than the limit of {max_members}")
        total, self._infos = 0, {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                self._fail(f"member {info.filename[:200]!r} is not an .npy array")
            key = info.filename[:-4]
            if key in self._infos:
                self._fail(f"member {info.filename[:200]!r} appears twice (readers may disagree on which counts)")
            if info.file_size > self.max_member_bytes:
                self._fail(f"member {info.filename[:200]!r} unpacks to {info.file_size} bytes "
                           f"(limit {self.max_member_bytes} per member)")
            total += info.file_size
            self._infos[key] = info
        if total > max_total_bytes:
            self._fail(f"members unpack to {total} bytes in all (limit {max_total_bytes})")

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
        info = self._infos[key]
        where = f"member {info.filename[:200]!r}"
        try:
            with self._zip.open(info) as f:
                shape, fortran_order, dtype = self._header(f, where)
                count = 1
                for n in shape:
                    count *= n
                data_bytes = info.file_size - f.tell()
                if count * dtype.itemsize != data_bytes:
                    self._fail(f"{where}: header declares {shape} {dtype} ({count * dtype.itemsize} bytes) "
                               f"but the member holds {data_bytes} bytes")
                data = f.read(data_bytes)  # zipfile never returns more than the declared size
        except self.error:
            raise
        except _ZIP_ERRORS as e:
            self._fail(f"{where}: corrupt or truncated: {e}")
        if len(data) != data_bytes:
            self._fail(f"{where}: truncated ({len(data)} of {data_bytes} bytes)")
        array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
        return array.copy(order="C")

    def _header(self, f, where):
        try:
            version = np.lib.format.read_magic(f)
            read_header = _NPY_HEADERS.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran_order, dtype = read_header(f)
        except Exception as e:  # numpy raises ValueError, SyntaxError, TokenError... on bad headers
            self._fail(f"{where}: corrupt .npy header: {str(e)[:200]}")
        if dtype.hasobject:
            self._fail(f"{where}: contains pickled (object) data, which promref never loads")
        if dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
            self._fail(f"{where}: dtype {str(dtype)[:100]} is not a plain numeric type")
        return shape, fortran_order, dtype

    def close(self):
        zf = getattr(self, "_zip", None)
        if zf is not None:
            zf.close()
        if self._owned:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
