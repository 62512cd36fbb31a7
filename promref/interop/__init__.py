"""Bridges between promref and other runtimes' model files.

:mod:`promref.interop.tflite_import` reads a quantized TFLite (LiteRT)
MobileNetV2 into a :class:`promref.Model` that reproduces LiteRT's reference
kernels bit for bit.  It needs the optional ``tflite`` package (the flatbuffer
schema); nothing here is imported by the rest of promref.
"""
from .tflite_import import TfliteImportError, import_tflite

__all__ = ["import_tflite", "TfliteImportError"]
