"""A thin shim: the metadata is in pyproject.toml (PEP 621).

What pyproject.toml cannot say declaratively is here: every package that find_packages
sees, plus ``promref.weights``, which has no folder inside promref/ -- it is the
repository's own ``weights/`` folder, mapped so that the shipped models and their cards
travel inside the wheel as ``promref/weights/*.npz|json`` (promref/registry.py finds them
through importlib.resources, and in a checkout in ``weights/`` itself).
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["promref", "promref.*"]) + ["promref.weights"],
    package_dir={"promref.weights": "weights"},
    package_data={"promref.weights": ["*.npz", "*.json"],
                  "promref.interop.c": ["csrc/*.c", "csrc/*.h", "csrc/Makefile", "csrc/*/*.c", "csrc/*/*.h",
                                        "csrc/*/*.ld"]},
)
