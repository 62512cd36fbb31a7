"""Bridges between promref and other runtimes' model files.

:mod:`promref.interop.tflite` reads a quantized TFLite (LiteRT)
MobileNetV2 into a :class:`promref.Model` that reproduces LiteRT's reference
kernels bit for bit.  :mod:`promref.interop.onnx` writes a promref
model as an integer-only ONNX graph that ONNX Runtime runs bit for bit like
promref (``export_onnx``), or as ORT's conventional int8 QOperator graph for
speed comparisons (``export_onnx_qoperator``, not bit-exact).  They need the
optional ``tflite`` / ``onnx`` packages (``pip install promref[interop]``), each
imported only when used; nothing here is imported by the rest of promref.
"""
from .onnx import OnnxExportError, export_onnx, export_onnx_qoperator
from .tflite import TfliteImportError, import_tflite

__all__ = ["import_tflite", "TfliteImportError", "export_onnx", "export_onnx_qoperator", "OnnxExportError"]
