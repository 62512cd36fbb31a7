"""Tests of promref.data.cifar10: both official layouts, the restricted unpickler, download.

Unit tests run on tiny batches written here.  The tests on the real data use
``$PROMREF_CIFAR10`` when it holds both layouts, else build them once into the
git-ignored ``local/cifar10`` with ``../shared/data/cifar10/make_cifar10.py``
(about 10 s), and skip when neither is there.
"""

import hashlib
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promref.data import cifar10
from promref.data.cifar10 import (CIFAR10_CLASSES, ENV_VAR, LAYOUT_DIRS, SPLIT_STEMS,
                                  DatasetError, cifar10_available, cifar10_root,
                                  download_cifar10, find_cifar10, load_cifar10)
from promref.errors import PromrefError

REPO = Path(__file__).resolve().parent.parent
LOCAL_CIFAR10 = REPO / "local" / "cifar10"


def shared_cifar10_dir():
    """Where this repo's real CIFAR-10 (the JPEG copy and make_cifar10.py) lives: ../shared/data/cifar10."""
    return REPO.parent / "shared" / "data" / "cifar10"


# --- tiny fixtures ---------------------------------------------------------------

def fake_split(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, n, dtype=np.uint8))


def planar(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))


def write_bin_batch(path, x, y):
    path.write_bytes(np.concatenate([y[:, None], planar(x)], axis=1).tobytes())


class Py2StylePickler(pickle._Pickler):
    """Writes pickles the way Python 2's cPickle wrote the official CIFAR-10 files:
    every string as BINSTRING (read back as bytes with encoding="bytes"), and numpy's
    reconstructor under its old module name numpy.core.multiarray."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(data)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj, name=None):
        module = {"numpy._core.multiarray": "numpy.core.multiarray"}.get(obj.__module__, obj.__module__)
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def write_py_batch(path, x, y, label="fake batch", py2=False):
    batch = {b"batch_label": label.encode(), b"labels": [int(v) for v in y],
             b"data": planar(x), b"filenames": [f"img_{i}.png".encode() for i in range(len(x))]}
    with open(path, "wb") as f:
        (Py2StylePickler(f, 2) if py2 else pickle.Pickler(f, 2)).dump(batch)


def fake_cifar(root, layouts=("bin", "py"), n=3, py2=False, label="fake batch"):
    """Write both splits (5 train batches and a test batch of n records each); return the arrays."""
    data = {"train": fake_split(5 * n, 1), "test": fake_split(n, 2)}
    for lay in layouts:
        d = root / LAYOUT_DIRS[lay]
        d.mkdir(parents=True)
        for split, stems in SPLIT_STEMS.items():
            x, y = data[split]
            for k, stem in enumerate(stems):
                sl = slice(k * n, (k + 1) * n)
                if lay == "bin":
                    write_bin_batch(d / (stem + ".bin"), x[sl], y[sl])
                else:
                    write_py_batch(d / stem, x[sl], y[sl], label=f"{stem} ({label})", py2=py2)
    return data


def globals_of(path):
    return {arg for op, arg, _ in pickletools.genops(Path(path).read_bytes())
            if op.name in ("GLOBAL", "STACK_GLOBAL", "INST")}


@pytest.fixture
def tiny_cifar(tmp_path):
    return tmp_path, fake_cifar(tmp_path)


def load(split, root, layout="auto", **kw):
    return load_cifar10(split, root, layout, records_per_batch=None, **kw)


# --- the formats ---------------------------------------------------------------

def test_classes():
    assert CIFAR10_CLASSES == ("airplane", "automobile", "bird", "cat", "deer",
                               "dog", "frog", "horse", "ship", "truck")
    assert issubclass(DatasetError, PromrefError) and issubclass(DatasetError, ValueError)


def test_bin_record_planar_to_nhwc_exact(tmp_path):
    """One record written byte by byte: label, 1024 R, 1024 G, 1024 B, each row-major."""
    i = np.arange(1024)
    r, g, b = i % 256, (i // 4) % 256, (255 - i * 7) % 256
    d = tmp_path / LAYOUT_DIRS["bin"]
    d.mkdir()
    (d / "test_batch.bin").write_bytes(bytes([7]) + bytes(r.tolist()) + bytes(g.tolist()) + bytes(b.tolist()))
    x, y = load("test", tmp_path, "bin")
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert y.tolist() == [7]
    for row, col in [(0, 0), (0, 1), (1, 0), (5, 17), (31, 31)]:
        k = row * 32 + col
        assert x[0, row, col].tolist() == [r[k], g[k], b[k]]
    assert (x[0, :, :, 0] == r.reshape(32, 32)).all()
    assert (x[0, :, :, 1] == g.reshape(32, 32)).all()
    assert (x[0, :, :, 2] == b.reshape(32, 32)).all()


@pytest.mark.parametrize("layout", ["bin", "py"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_round_trip(tiny_cifar, layout, split):
    root, data = tiny_cifar
    x, y, src = load(split, root, layout, return_source=True)
    assert x.dtype == np.uint8 and y.dtype == np.uint8 and x.flags.c_contiguous
    assert x.shape == (15 if split == "train" else 3, 32, 32, 3)
    np.testing.assert_array_equal(x, data[split][0])
    np.testing.assert_array_equal(y, data[split][1])
    assert src.layout == layout and src.split == split and src.directory == root / LAYOUT_DIRS[layout]
    assert [p.name for p in src.files] == [s + (".bin" if layout == "bin" else "") for s in SPLIT_STEMS[split]]
    assert src.name == "CIFAR-10" and not src.jpeg_copy


def test_python2_style_official_pickles(tmp_path):
    """The official python pickles were written by Python 2: BINSTRINGs and numpy.core."""
    data = fake_cifar(tmp_path, layouts=("py",), py2=True)
    path = tmp_path / LAYOUT_DIRS["py"] / "test_batch"
    assert globals_of(path) == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    for split in ("train", "test"):
        x, y = load(split, tmp_path, "py")
        np.testing.assert_array_equal(x, data[split][0])
        np.testing.assert_array_equal(y, data[split][1])


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 4), seed=st.integers(0, 2 ** 32 - 1))
def test_layouts_agree_property(n, seed):
    x, y = fake_split(n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for lay in ("bin", "py"):
            (root / LAYOUT_DIRS[lay]).mkdir()
        write_bin_batch(root / LAYOUT_DIRS["bin"] / "test_batch.bin", x, y)
        write_py_batch(root / LAYOUT_DIRS["py"] / "test_batch", x, y, py2=bool(seed % 2))
        for lay in ("bin", "py"):
            xl, yl = load("test", root, lay)
            np.testing.assert_array_equal(xl, x)
            np.testing.assert_array_equal(yl, y)


def test_jpeg_copy_is_labelled(tmp_path):
    fake_cifar(tmp_path, label="JPEG copy")
    for lay in ("bin", "py"):  # the binary layout is recognised through its python sibling
        *_, src = load("test", tmp_path, lay, return_source=True)
        assert src.jpeg_copy and src.name == "CIFAR-10 (JPEG copy)"
    *_, src = load("test", tmp_path, "py", return_source=True)
    assert src.batch_labels == ("test_batch (JPEG copy)",)


def test_official_record_count_enforced(tiny_cifar):
    root, _ = tiny_cifar
    for lay in ("bin", "py"):
        with pytest.raises(DatasetError, match=r"test_batch.*wrong record count: 3 records.*10000"):
            load_cifar10("test", root, lay)


# --- root resolution -------------------------------------------------------------

def test_root_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cifar10_root() == tmp_path / "home" / ".cache" / "promref" / "cifar10"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert cifar10_root() == tmp_path / "env"
    assert cifar10_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert cifar10_root("~/x") == tmp_path / "home" / "x"
    monkeypatch.setenv(ENV_VAR, "")
    assert cifar10_root() == tmp_path / "home" / ".cache" / "promref" / "cifar10"


def test_env_var_is_used(tmp_path, monkeypatch):
    data = fake_cifar(tmp_path / "data", layouts=("py",))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "data"))
    x, y = load_cifar10("test", records_per_batch=None)
    np.testing.assert_array_equal(x, data["test"][0])
    assert cifar10_available() and not cifar10_available(layout="bin")
    with pytest.raises(DatasetError, match="given as root"):   # an explicit root wins
        load_cifar10("test", tmp_path / "elsewhere")


def test_default_root_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not cifar10_available()
    fake_cifar(tmp_path / ".cache" / "promref" / "cifar10", layouts=("bin",))
    assert cifar10_available() and load_cifar10("test", records_per_batch=None)[0].shape == (3, 32, 32, 3)


def test_root_may_be_the_layout_folder(tiny_cifar, tmp_path):
    root, data = tiny_cifar
    for lay in ("bin", "py"):
        d = root / LAYOUT_DIRS[lay]
        assert find_cifar10(d) == (lay, d)
        np.testing.assert_array_equal(load("test", d)[0], data["test"][0])
    renamed = tmp_path / "my-cifar-copy"
    (root / LAYOUT_DIRS["py"]).rename(renamed)
    assert find_cifar10(renamed) == ("py", renamed)
    np.testing.assert_array_equal(load("train", renamed)[1], data["train"][1])


def test_auto_prefers_complete_layout(tiny_cifar):
    root, _ = tiny_cifar
    assert find_cifar10(root) == ("bin", root / LAYOUT_DIRS["bin"])
    (root / LAYOUT_DIRS["bin"] / "data_batch_3.bin").unlink()
    assert find_cifar10(root, split="test")[0] == "bin"
    assert find_cifar10(root, split="train")[0] == "py"
    assert find_cifar10(root)[0] == "py"
    assert not cifar10_available(root, "bin") and cifar10_available(root, "bin", "test")


def test_not_found_messages(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(DatasetError) as e:
        load_cifar10("train", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-batches-bin") in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "no such directory" in msg and ENV_VAR in msg and "download=True" in msg
    fake_cifar(tmp_path, layouts=("bin",))
    (tmp_path / LAYOUT_DIRS["bin"] / "data_batch_2.bin").unlink()
    (tmp_path / LAYOUT_DIRS["bin"] / "data_batch_5.bin").unlink()
    with pytest.raises(DatasetError, match=r"cifar-10-batches-bin: missing data_batch_2\.bin, data_batch_5\.bin"):
        load("train", tmp_path, "bin")
    with pytest.raises(DatasetError, match="split must be one of"):
        load_cifar10("validation", tmp_path)
    with pytest.raises(DatasetError, match="layout must be one of"):
        load_cifar10("test", tmp_path, layout="jpeg")


# --- damaged files ---------------------------------------------------------------

def test_bin_truncated(tiny_cifar):
    root, _ = tiny_cifar
    path = root / LAYOUT_DIRS["bin"] / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match=r"test_batch\.bin: truncated or corrupt: .*9218 bytes.*3073"):
        load("test", root, "bin")
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="truncated"):
        load("test", root, "bin")


def test_bin_bad_label(tiny_cifar):
    root, data = tiny_cifar
    path = root / LAYOUT_DIRS["bin"] / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[3073] = 10
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"test_batch\.bin: corrupt: record 1 has label 10, labels must be 0\.\.9"):
        load("test", root, "bin")


def py_path(root):
    return root / LAYOUT_DIRS["py"] / "test_batch"


def dump(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))


def good_batch(n=2):
    x, y = fake_split(n, 5)
    return {b"batch_label": b"b", b"labels": [int(v) for v in y], b"data": planar(x),
            b"filenames": [b"f"] * n}


@pytest.mark.parametrize("change, message", [
    (lambda b: b.pop(b"data"), r"no b'data' entry"),
    (lambda b: b.pop(b"labels"), r"no b'labels' entry"),
    (lambda b: b.__setitem__(b"labels", b[b"labels"] + [1]), r"corrupt: 3 labels for 2 images"),
    (lambda b: b.__setitem__(b"labels", [3, 10]), r"record 1 has label 10, labels must be 0\.\.9"),
    (lambda b: b.__setitem__(b"labels", [3, -1]), r"record 1 has label -1"),
    (lambda b: b.__setitem__(b"labels", [3, "x"]), r"b'labels' must be a list of ints"),
    (lambda b: b.__setitem__(b"labels", b"ab"), r"b'labels' must be a list of ints, it is a bytes"),
    (lambda b: b.__setitem__(b"data", b[b"data"][:, :100].copy()), r"shape \[N, 3072\], it has \[2, 100\]"),
    (lambda b: b.__setitem__(b"data", b[b"data"].reshape(-1)), r"shape \[N, 3072\], it has \[6144\]"),
    (lambda b: b.__setitem__(b"data", b[b"data"].tolist()), r"b'data' must be a uint8 array, it is a list"),
])
def test_py_bad_contents(tiny_cifar, change, message):
    root, _ = tiny_cifar
    batch = good_batch()
    change(batch)
    dump(py_path(root), batch)
    with pytest.raises(DatasetError, match=r"test_batch.*" + message):
        load("test", root, "py")


def test_py_wrong_dtype_refused_inside_the_unpickler(tiny_cifar):
    root, _ = tiny_cifar
    batch = good_batch()
    batch[b"data"] = batch[b"data"].astype(np.int64)
    dump(py_path(root), batch)
    with pytest.raises(DatasetError, match=r"test_batch: refused to unpickle: numpy dtype.*only uint8"):
        load("test", root, "py")


def test_py_not_a_dict(tiny_cifar):
    root, _ = tiny_cifar
    dump(py_path(root), [1, 2, 3])
    with pytest.raises(DatasetError, match="holds a dict, this one a list"):
        load("test", root, "py")


@pytest.mark.parametrize("cut", [0, 1, 100, -1])
def test_py_truncated(tiny_cifar, cut):
    root, _ = tiny_cifar
    path = py_path(root)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut] if cut >= 0 else raw[:len(raw) // 2])
    with pytest.raises(DatasetError, match=r"test_batch: not a readable CIFAR-10 pickle"):
        load("test", root, "py")


# --- the restricted unpickler ------------------------------------------------------

class Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_unpickler_refuses_os_system_before_running_it(tiny_cifar):
    root, _ = tiny_cifar
    marker = root / "pwned"
    path = py_path(root)
    batch = good_batch()
    batch[b"data"] = Evil(f"touch {marker}")
    for payload in (pickle.dumps(batch, protocol=2), pickle.dumps(Evil(f"touch {marker}"), protocol=5),
                    b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."):
        path.write_bytes(payload)
        with pytest.raises(DatasetError, match=r"test_batch: refused to unpickle: it references the "
                                               r"global (os|posix|nt)\.system"):
            load("test", root, "py")
        assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("__builtin__", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"),
    ("numpy", "load"), ("numpy.core.multiarray", "scalar"), ("numpy.testing._private.utils", "runstring"),
    ("_codecs", "decode"), ("copyreg", "_reconstructor"), ("__builtin__", "bytes"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy", "array"),
])
def test_unpickler_refuses_other_globals(tiny_cifar, module, name):
    root, _ = tiny_cifar
    py_path(root).write_bytes(b"c" + f"{module}\n{name}\n".encode() + b")R.")
    with pytest.raises(DatasetError, match=rf"refused to unpickle: it references the global {module}\.{name},"):
        load("test", root, "py")


@pytest.mark.parametrize("payload, message", [
    (b"c_codecs\nencode\n(Vabc\nVzlib_codec\ntR.", r"_codecs\.encode called with"),
    (b"c_codecs\nencode\n(Vabc\nVrot13\ntR.", r"_codecs\.encode called with"),
    (b"c_codecs\nencode\n(Vabc\ntR.", r"_codecs\.encode called with"),
    (b"cnumpy\ndtype\n(VO\nI00\nI01\ntR.", r"numpy dtype.*only uint8"),
    (b"cnumpy\ndtype\n(Vf8\nI00\nI01\ntR.", r"numpy dtype.*only uint8"),
    (b"cnumpy\nndarray\n(I5\ntR.", r"calls numpy\.ndarray itself"),
    (b"cnumpy._core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I5\ntVb\ntR.", r"_reconstruct called with"),
    (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\ndtype\n(I0\ntVb\ntR.", r"_reconstruct called with"),
    (b"(I1\nP1\ntR.", r"persistent"),
])
def test_unpickler_guards_the_admitted_globals(tiny_cifar, payload, message):
    root, _ = tiny_cifar
    py_path(root).write_bytes(payload)
    with pytest.raises(DatasetError, match=r"test_batch: .*" + message):
        load("test", root, "py")


def test_admitted_globals_are_what_the_files_contain(tmp_path):
    fake_cifar(tmp_path, layouts=("py",))
    found = globals_of(py_path(tmp_path))
    assert found == {"_codecs encode", f"{np.ndarray((0,)).__reduce__()[0].__module__} _reconstruct",
                     "numpy ndarray", "numpy dtype"}
    admitted = {f"{m} {n}" for m, n in cifar10.ADMITTED_GLOBALS}
    assert found <= admitted
    assert admitted == found | {"numpy.core.multiarray _reconstruct", "numpy._core.multiarray _reconstruct"}


# --- download ------------------------------------------------------------------------

def make_archive(tmp_path, layout="bin", n=2, extra=(), top=None):
    """A .tar.gz like the official one (top folder cifar-10-batches-<layout>) of tiny_cifar batches.

    ``extra``: TarInfo objects (with optional data) to add, for unsafe members."""
    src = tmp_path / "src"
    data = fake_cifar(src, layouts=(layout,), n=n)
    (src / LAYOUT_DIRS[layout] / "readme.html").write_text("<html></html>")
    archive = tmp_path / f"cifar-10-{layout}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / LAYOUT_DIRS[layout], arcname=top or LAYOUT_DIRS[layout])
        for info, payload in extra:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return archive.as_uri(), hashlib.md5(archive.read_bytes()).hexdigest(), data


@pytest.mark.parametrize("layout", ["bin", "py"])
def test_download_file_url(tmp_path, layout):
    url, md5, data = make_archive(tmp_path, layout)
    root = tmp_path / "root"
    target = download_cifar10(root, layout=layout, url=url, md5=md5.upper())
    assert target == root / LAYOUT_DIRS[layout]
    assert sorted(p.name for p in root.iterdir()) == [LAYOUT_DIRS[layout]]  # no temporary files left
    x, y = load("train", root, layout)
    np.testing.assert_array_equal(x, data["train"][0])
    np.testing.assert_array_equal(y, data["train"][1])
    # already there: nothing is fetched (the url would fail)
    assert download_cifar10(root, layout=layout, url="file:///nonexistent.tar.gz", md5=md5) == target


def test_download_into_layout_folder_root(tmp_path):
    url, md5, _ = make_archive(tmp_path)
    root = tmp_path / "r" / LAYOUT_DIRS["bin"]
    assert download_cifar10(root, url=url, md5=md5) == root
    assert cifar10_available(root)


def test_download_bad_checksum(tmp_path):
    url, md5, _ = make_archive(tmp_path)
    root = tmp_path / "root"
    wrong = "0" * 32
    with pytest.raises(DatasetError, match=rf"checksum mismatch for {url}: MD5 {md5}, expected {wrong}"):
        download_cifar10(root, url=url, md5=wrong)
    assert list(root.iterdir()) == []  # the partial download is deleted, nothing unpacked


def test_download_needs_md5_and_reachable_url(tmp_path):
    url, _, _ = make_archive(tmp_path)
    with pytest.raises(DatasetError, match="needs the md5"):
        download_cifar10(tmp_path / "root", url=url)
    with pytest.raises(DatasetError, match="cannot download file:///nonexistent"):
        download_cifar10(tmp_path / "root", url="file:///nonexistent/cifar.tar.gz", md5="0" * 32)
    assert list((tmp_path / "root").iterdir()) == []


def test_download_not_an_archive_or_wrong_contents(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file at all")
    md5 = hashlib.md5(junk.read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match="not a gzip-compressed tar archive"):
        download_cifar10(tmp_path / "root", url=junk.as_uri(), md5=md5)
    url, md5, _ = make_archive(tmp_path, top="something-else")
    with pytest.raises(DatasetError, match=r"the archive lacks cifar-10-batches-bin/data_batch_1\.bin"):
        download_cifar10(tmp_path / "root", url=url, md5=md5)
    assert list((tmp_path / "root").iterdir()) == []


def tar_member(name, kind=tarfile.REGTYPE, payload=b"x", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(payload) if kind == tarfile.REGTYPE else 0
    return info, payload if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize("member, message", [
    (tar_member("../evil.txt"), r"leads out of the folder"),
    (tar_member("cifar-10-batches-bin/../../evil.txt"), r"leads out of the folder"),
    (tar_member("/tmp/promref-evil.txt"), r"has an absolute path"),
    (tar_member("cifar-10-batches-bin/link", tarfile.SYMTYPE, linkname="/etc/passwd"), r"is a symbolic link"),
    (tar_member("cifar-10-batches-bin/hard", tarfile.LNKTYPE, linkname="cifar-10-batches-bin/readme.html"),
     r"is a hard link"),
    (tar_member("cifar-10-batches-bin/dev", tarfile.CHRTYPE), r"is a device"),
    (tar_member("cifar-10-batches-bin/blk", tarfile.BLKTYPE), r"is a device"),
    (tar_member("cifar-10-batches-bin/fifo", tarfile.FIFOTYPE), r"is a FIFO"),
])
def test_download_refuses_unsafe_members(tmp_path, member, message):
    url, md5, _ = make_archive(tmp_path, extra=[member])
    root = tmp_path / "a" / "root"
    with pytest.raises(DatasetError, match=r"unsafe archive: member '.*' " + message):
        download_cifar10(root, url=url, md5=md5)
    assert list(root.iterdir()) == []
    assert not (tmp_path / "a" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/promref-evil.txt").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_download_without_tarfile_filters(tmp_path, monkeypatch):
    """Pythons before the extraction filters (3.8.17/3.9.17/3.10.12/3.11.4) rely on the member checks."""
    monkeypatch.delattr(tarfile, "data_filter")
    url, md5, data = make_archive(tmp_path)
    root = download_cifar10(tmp_path / "root", url=url, md5=md5)
    np.testing.assert_array_equal(load("test", root)[0], data["test"][0])
    url, md5, _ = make_archive(tmp_path / "evil", extra=[tar_member("../evil.txt")])
    with pytest.raises(DatasetError, match="leads out of the folder"):
        download_cifar10(tmp_path / "root2", url=url, md5=md5)
    assert not (tmp_path / "evil.txt").exists()


def test_download_refuses_incomplete_target(tmp_path):
    url, md5, _ = make_archive(tmp_path)
    root = tmp_path / "root"
    (root / LAYOUT_DIRS["bin"]).mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"exists but is incomplete \(missing data_batch_1\.bin"):
        download_cifar10(root, url=url, md5=md5)


def test_load_with_download(tmp_path, monkeypatch):
    url, md5, data = make_archive(tmp_path)
    monkeypatch.setitem(cifar10.OFFICIAL_SOURCES, "bin", (url, md5))
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match="not found"):
        load("test", root)
    x, y = load("test", root, download=True)
    np.testing.assert_array_equal(x, data["test"][0])
    assert cifar10_available(root, "bin")


def test_official_sources():
    assert cifar10.OFFICIAL_SOURCES == {
        "bin": ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),
        "py": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    }


# --- the real data ---------------------------------------------------------------------

def _both_layouts(root):
    return cifar10_available(root, "bin") and cifar10_available(root, "py")


@pytest.fixture(scope="session")
def real_cifar10_root():
    """$PROMREF_CIFAR10 if it holds both layouts, else local/cifar10 (built once from ../shared)."""
    env = os.environ.get(ENV_VAR)
    if env and _both_layouts(Path(env)):
        return Path(env)
    if not (LOCAL_CIFAR10 / ".complete").exists() or not _both_layouts(LOCAL_CIFAR10):
        script = shared_cifar10_dir() / "make_cifar10.py"
        if not script.is_file():
            pytest.skip(f"real CIFAR-10 absent: ${ENV_VAR} does not hold both layouts and "
                        f"{script} (to build {LOCAL_CIFAR10}) does not exist")
        subprocess.run([sys.executable, str(script), str(LOCAL_CIFAR10)], check=True, timeout=900)
    return LOCAL_CIFAR10


@pytest.fixture(scope="module")
def real(real_cifar10_root):
    return {(lay, split): load_cifar10(split, real_cifar10_root, lay, return_source=True)
            for lay in ("bin", "py") for split in ("train", "test")}


@pytest.mark.parametrize("split, n", [("train", 50000), ("test", 10000)])
def test_real_layouts_agree(real, split, n):
    xb, yb, sb = real["bin", split]
    xp, yp, sp = real["py", split]
    assert xb.shape == (n, 32, 32, 3) and yb.shape == (n,)
    assert np.array_equal(xb, xp) and np.array_equal(yb, yp)
    assert np.bincount(yb, minlength=10).tolist() == [n // 10] * 10
    for src in (sb, sp):  # ../shared holds the JPEG copy, and says so
        assert src.name == "CIFAR-10 (JPEG copy)"


def test_real_pixel_statistics(real):
    def channel_means(a):  # summing whole images first is ten times faster than a [-1, 3] reduction
        return a.reshape(len(a), -1).sum(axis=0, dtype=np.int64).reshape(-1, 3).sum(axis=0) / (a.size / 3) / 255

    x = real["bin", "train"][0]
    mean = channel_means(x)
    np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=0.002)  # JPEG copy, per README
    np.testing.assert_allclose(channel_means(real["bin", "test"][0]), mean, atol=0.01)
    first = x[0].astype(np.float64)
    assert first.std() > 5 and 0.05 < first.mean() / 255 < 0.95
    assert len({tuple(p) for p in x[0].reshape(-1, 3)}) > 50  # a picture, not a flat field
    assert not np.array_equal(x[0], x[1])
