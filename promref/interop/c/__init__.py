"""``promref export c``: a standalone C99 library of one PROM network (docs/deploy-c.md).

export.py writes it (emit.py the generated text, plan.py the arena, bounds.py
what is proved at generation); csrc/ holds the runtime kernels and the drivers;
toolchain.py compiles for the host and a Cortex-M and disassembles; run.py
runs the builds (host binary, QEMU) and splits their traces; conformance.py
speaks the conformance checker's subprocess protocol.
"""
from .bounds import CExportError
from .export import CExport, export_c

__all__ = ["CExport", "CExportError", "export_c"]
