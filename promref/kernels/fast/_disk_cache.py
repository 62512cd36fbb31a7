"""Numba's on-disk cache, made to notice edits to any file the kernels compile in.

Numba's cache (``cache=True``) is invalidated only when the source file of the
jitted function itself changes -- not when a function it calls from another
file does.  The kernels compile in ``arith`` and the helper modules of this
package, so an edit to the arithmetic would otherwise leave stale machine code
on disk that no longer agrees with the reference.  The locators below are
Numba's own, with a source stamp that also covers every file of this package
and arith.py.  Imported (once) by ``_options`` before any kernel is defined.
"""
import hashlib
import os
import warnings

from numba.core import caching

from ... import arith

_HERE = os.path.dirname(os.path.abspath(__file__))
_SOURCES = sorted(os.path.join(_HERE, name) for name in os.listdir(_HERE) if name.endswith(".py"))
_SOURCES.append(os.path.abspath(arith.__file__))


def _sources_digest():
    digest = hashlib.sha256()
    for path in _SOURCES:
        try:
            with open(path, "rb") as f:
                digest.update(f.read())
        except OSError:                      # e.g. a frozen install without sources
            digest.update(path.encode())
    return digest.hexdigest()


class _StampAllSources:
    """Mixin for Numba's file-backed cache locators, applied to this package's kernels only."""
    _digest = None

    def get_source_stamp(self):
        if _StampAllSources._digest is None:
            _StampAllSources._digest = _sources_digest()
        return (super().get_source_stamp(), _StampAllSources._digest)

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None                      # not ours: Numba's usual locators handle it
        return super().from_function(py_func, py_file)


def _install_cache_locators():
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    bases = [getattr(caching, name, None) or getattr(caching, "_" + name, None)
             for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")]
    if impl is None or None in bases or not isinstance(getattr(impl, "_locator_classes", None), list):
        warnings.warn("promref: unknown Numba cache internals; the kernels' on-disk cache will not notice "
                      "edits to promref/arith.py (delete promref/kernels/fast/__pycache__ after such edits)")
        return
    if any(getattr(cls, "_promref", False) for cls in impl._locator_classes):
        return
    ours = [type("Promref" + base.__name__.lstrip("_"), (_StampAllSources, base),
                 {"_promref": True, "__module__": __name__}) for base in bases]
    impl._locator_classes[:0] = ours


_install_cache_locators()
