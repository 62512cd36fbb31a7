"""ONNX (ONNX Runtime) as a peer: :mod:`.export` maps a promref model to an
integer-only ONNX graph that ONNX Runtime runs bit for bit like promref (or to
ORT's int8 QOperator graph, not bit-exact), runs it and compares;
:mod:`.ops` holds promref's arithmetic as ONNX node blocks.  Needs the
optional ``onnx`` / ``onnxruntime`` packages, imported only when used.

Command line: ``python -m promref.interop.onnx WEIGHTS.npz OUT.onnx [--every-layer] [--qoperator]``.
"""
from .export import OnnxExportError, export_onnx, export_onnx_qoperator

__all__ = ["export_onnx", "export_onnx_qoperator", "OnnxExportError"]
