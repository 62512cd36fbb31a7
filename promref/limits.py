"""Every resource limit promref enforces on its inputs, in one place.

Each limit is checked *before* the memory or time it guards is spent, so a
small hostile file can never make promref allocate gigabytes, run for
minutes or fill a disk.  docs/format.md ("Resource limits") lists them with
the reasons for each number; tests/test_hostile_limits.py tries each one.

The numbers are generous for every real model and data set promref handles
(MobileNetV2 at 224 x 224 needs ~3.5 M weights, 14 MB; CIFAR-10's archives
unpack to ~180 MB) and small enough that a 24 GiB machine survives any
input that passes them.
"""
import reprlib

import numpy as np

MIB = 1 << 20

# ---- weights files (.npz) -------------------------------------------------------------------
#: uncompressed bytes of one member (a 1000 x 250k int8 classifier still fits)
MAX_MEMBER_BYTES = 256 * MIB
#: uncompressed bytes of all members together, as the zip directory declares them
MAX_TOTAL_BYTES = 512 * MIB
#: members in one file (MobileNetV2: ~260)
MAX_MEMBERS = 8192
#: bytes of the ``meta`` JSON member
MAX_META_BYTES = 16 * MIB
#: nesting depth of any JSON value promref reads (meta, model cards, energy tables, manifests)
MAX_JSON_DEPTH = 64
#: decimal digits of any JSON integer; longer ones are refused before conversion (Python's own
#: limit, 4300, raises a bare ValueError; 1000 digits still let a field check name its field)
MAX_JSON_INT_DIGITS = 1000
#: layers in one model (MobileNetV2: ~90)
MAX_LAYERS = 4096
#: characters in one class label
MAX_LABEL_CHARS = 256
#: elements of any one activation tensor (one image); int8, and int32 accumulators of that size
MAX_ACTIVATION_ELEMENTS = 1 << 26

# ---- images -----------------------------------------------------------------------------------
#: input tensor height and width, and the ``resize`` target (ImageNet uses 224 and 256)
MAX_INPUT_SIDE = 2048
#: pixels of an image file or array before resizing (a 64-megapixel photo fits)
MAX_IMAGE_PIXELS = 1 << 26
#: pixels of the image after resizing its shorter side to ``resize``, before the crop
MAX_RESIZED_PIXELS = 1 << 24
#: longer side / shorter side of an image that is resized (a 1 x 1,000,000 strip is refused)
MAX_ASPECT_RATIO = 64

# ---- data sets and downloads -------------------------------------------------------------------
#: bytes a download may bring (CIFAR-10's archives are ~163 MB)
MAX_DOWNLOAD_BYTES = 256 * MIB
#: seconds a whole download may take, however slowly the server sends
DOWNLOAD_DEADLINE_S = 3600.0
#: bytes an archive may unpack to, summed over its members (CIFAR-10: ~180 MB)
MAX_EXTRACT_BYTES = 512 * MIB
#: members of an archive (CIFAR-10: 8 or 9)
MAX_EXTRACT_MEMBERS = 64
#: characters of a refused argument quoted in an error message
MAX_REPR_CHARS = 200

# ---- training checkpoints ------------------------------------------------------------------------
#: members of a checkpoint (network state + optimizer state + meta)
MAX_CHECKPOINT_MEMBERS = 8192
#: uncompressed bytes of one checkpoint member / of all of them
MAX_CHECKPOINT_MEMBER_BYTES = 256 * MIB
MAX_CHECKPOINT_TOTAL_BYTES = 2048 * MIB

# ---- conformance suites and checker ---------------------------------------------------------------
#: bytes of a suite's manifest.json
MAX_MANIFEST_BYTES = 64 * MIB
#: cases in one suite
MAX_SUITE_CASES = 100_000
#: bytes of one tensor file of a suite or of an implementation's output
MAX_TENSOR_FILE_BYTES = 256 * MIB
#: bytes of stdout + stderr kept from an implementation (it is killed if it prints more)
MAX_CHECKER_OUTPUT_BYTES = 8 * MIB


class _BoundedRepr(reprlib.Repr):
    """reprlib with limits on strings, bytes, containers and ints (never formats a huge int)."""

    def __init__(self, limit):
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, limit // 2, limit // 2, 40
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 8

    def repr_int(self, x, level):
        if x.bit_length() > 128:
            return f"<int of {x.bit_length()} bits>"
        return super().repr_int(x, level)

    def repr_bytes(self, x, level):
        return self.repr_str(x, level) if len(x) <= self.maxstring else repr(x[:self.maxstring]) + f"...({len(x)} bytes)"

    repr_bytearray = repr_bytes

    def repr_instance(self, x, level):
        if isinstance(x, (float, complex, bool, type(None), np.generic)):
            return repr(x)
        if isinstance(x, np.ndarray):
            return f"<{x.dtype} array of shape {x.shape}>"
        return f"<{type(x).__name__} object>"  # a foreign __repr__ may be unbounded


def bounded_repr(value, limit=MAX_REPR_CHARS):
    """``repr(value)`` in at most about ``limit`` characters, never formatting more than that.

    Long strings and bytes are cut, containers show their first items, huge
    ints their bit length, other objects only their type: a refused argument
    from a hostile file never gets formatted in full.
    """
    text = _BoundedRepr(limit).repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def printable_tail(text, limit=MAX_REPR_CHARS):
    """The last ``limit`` characters of text an outside program printed, safe to show on one line.

    Every character that is not printable (newlines, escape sequences that
    would move the cursor or recolour the terminal, lone surrogates) is shown
    as its backslash escape, so a program under test can neither forge report
    lines nor reach the user's terminal.
    """
    tail = text[-limit:]
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in tail)
