"""Datasets for promref: loaders for the official file formats, read safely.

The data itself is never shipped: it is read from a folder the user names (or
an environment variable), or downloaded from the official source and checked.
"""
from .cifar10 import (CIFAR10_CLASSES, Cifar10Source, DatasetError, cifar10_available,
                      cifar10_root, download_cifar10, find_cifar10, load_cifar10)

__all__ = ["CIFAR10_CLASSES", "Cifar10Source", "DatasetError", "cifar10_available",
           "cifar10_root", "download_cifar10", "find_cifar10", "load_cifar10"]
