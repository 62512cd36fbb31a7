"""The shipped models by name: ``"mbv2_prom"`` -> its weights file and model card.

The models live in the repository's ``weights/`` folder.  A wheel carries them as
package data, ``promref/weights/NAME.npz`` and ``NAME.json`` (pyproject.toml and
setup.py map the folder), found here through :mod:`importlib.resources`; in a
checkout or an editable install they are read from ``weights/`` beside the package.
So ``promref.infer("mbv2_prom", image)``, ``promref infer mbv2_prom IMAGE`` and
``promref demo`` work the same everywhere.

Anything that is not a registered name is a path, as before:
``promref.infer("weights/mbv2_prom.npz", image)`` reads that file.  To read a file
that happens to be called like a model, write it as a path (``./mbv2_prom``).
"""
import atexit
import contextlib
import importlib.resources
import os
from pathlib import Path

from .errors import PromrefError

#: the registered models: name -> (weights file, what it is)
MODELS = {
    "mbv2_prom": ("mbv2_prom.npz", "PROM MobileNetV2 for CIFAR-10 (width 1.0), trained by promref's QAT trainer"),
}

#: the model ``promref demo`` runs
DEFAULT_MODEL = "mbv2_prom"

_CHECKOUT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
_EXTRACTED = contextlib.ExitStack()  # files copied out of a zipped install, removed at exit
atexit.register(_EXTRACTED.close)


def _packaged(filename):
    """A real path of ``filename`` in the installed package data, or None."""
    try:
        resource = importlib.resources.files("promref") / "weights" / filename
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - promref is always importable
        return None
    if not resource.is_file():
        return None
    if isinstance(resource, Path):
        return resource
    return _EXTRACTED.enter_context(importlib.resources.as_file(resource))  # a zip import: copy it out


def _find(filename):
    """Where a shipped file is: the package data (a wheel), else the checkout's weights/ folder."""
    packaged = _packaged(filename)
    if packaged is not None:
        return packaged
    candidate = _CHECKOUT_WEIGHTS / filename
    return candidate if candidate.is_file() else None


def available():
    """{name: description} of the registered models whose weights are present."""
    return {name: text for name, (filename, text) in MODELS.items() if _find(filename) is not None}


def model_path(name):
    """The weights file (a str path) of the registered model ``name``.

    Raises PromrefError for an unknown name (listing the known ones) or when the
    file is missing from this installation.
    """
    if name not in MODELS:
        raise PromrefError(f"{name!r} is not a registered model (known: {', '.join(sorted(MODELS))})")
    found = _find(MODELS[name][0])
    if found is None:
        raise PromrefError(f"model {name!r}: {MODELS[name][0]} is in neither the installed package data "
                           f"nor {_CHECKOUT_WEIGHTS}; reinstall promref, or pass a weights file")
    return str(found)


def card_path(weights_path):
    """The model card that goes with a weights file: the same name with ``.json``."""
    return os.path.splitext(os.fspath(weights_path))[0] + ".json"


def resolve(weights):
    """A weights argument -> what ``promref.load`` takes: a registered name gives its shipped
    file's path; anything else (a path, bytes, a file object) is passed on unchanged."""
    if isinstance(weights, str) and weights in MODELS:
        return model_path(weights)
    return weights
