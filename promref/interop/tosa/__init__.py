"""TOSA: export a promref Model as a TOSA 1.0 flatbuffer and run it in the TOSA
reference model, bit for bit (docs/deploy-tosa.md).

Needs the ``tosa-tools`` package (its ``tosa_serializer`` and
``tosa_reference_model``); nothing else in promref imports this folder.

* :func:`build_tosa` / :func:`export_tosa` -- the writer (:mod:`.writer`);
* :func:`run_tosa` / :class:`TosaRunner` -- the runner (:mod:`.runner`);
* :mod:`.rescale` -- TOSA's ``apply_scale_32`` and how promref's
  requantization maps onto it (where the two are equal, where TOSA refuses).
"""
from .rescale import TosaExportError
from .runner import TosaRunner, run_flatbuffer, run_tosa
from .writer import build_tosa, export_tosa

__all__ = ["TosaExportError", "TosaRunner", "build_tosa", "export_tosa", "run_flatbuffer", "run_tosa"]
