"""Conformance: golden vectors and a checker for other PROM implementations.

    generate(outdir)                 write the suite (manifest.json + .npy files)
    check(suite_dir, implementation) run an implementation against it, 0 LSB tolerance

docs/conformance.md specifies the suite format and the subprocess protocol.
"""
from .check import CaseResult, PythonImplementation, Report, SubprocessImplementation, check
from .generate import DEFAULT_RANDOM_MODELS, generate
from .reference import RuleImplementation, forward_with_rule, half_even_implementation, reference_implementation
from .suite import SuiteError, load_manifest

__all__ = ["generate", "check", "Report", "CaseResult", "PythonImplementation", "SubprocessImplementation",
           "RuleImplementation", "reference_implementation", "half_even_implementation", "forward_with_rule",
           "load_manifest", "SuiteError", "DEFAULT_RANDOM_MODELS"]
