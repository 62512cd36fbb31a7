"""The package's layering (docs/architecture.md, "Who may import whom"), checked on the source.

Every module of ``promref`` is parsed with :mod:`ast` (nothing is imported), every import
statement -- at module level or inside a function -- is resolved to the promref module it
names, and the rules below are checked on that graph.  The rules are written against module
*names* and name prefixes (``promref.kernels``, ``promref.interop``, ``promref.train``), so
new modules and folders (``interop/onnx/``, ``interop/tosa/``, ``architectures.py``, ...) are
covered without editing this file.  A failure names the importing file, its line and the
rule it breaks.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "promref"

#: the core: what a model is, its file, its checks, its arithmetic and its execution
CORE = ("promref.arith", "promref.errors", "promref.architectures", "promref.model", "promref.format",
        "promref.validate", "promref.engine", "promref.kernels",
        # the bounded readers every loader shares (resource limits, regular files, strict JSON, zip)
        "promref.limits", "promref.fileio", "promref.npzread")
#: third-party packages that read or write a foreign model format or run a foreign runtime
FOREIGN = ("onnx", "onnxruntime", "tflite", "tflite_runtime", "tflite_micro", "ai_edge_litert", "tensorflow",
           "tosa", "tosa_tools", "serializer", "flatbuffers")
#: the names a part may take from the package face itself (``from promref import __version__``)
FACE_NAMES_FOR_PARTS = ("__version__",)


def module_name(path):
    """promref/kernels/fast/add.py -> 'promref.kernels.fast.add'; a package's __init__ -> the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name):
    """Whether ``name`` (dotted) is a module or package of promref's source tree."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def within(name, prefixes):
    """``name`` is one of ``prefixes`` or inside one of them (prefix match on dotted names)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imports_of(path):
    """[(line, imported name, what)] for every import in the file.

    ``what`` is 'module' for a promref module (resolved: ``from . import arith`` names
    ``promref.arith``; ``from .model import Layer`` names ``promref.model``), 'face-name' for a
    name taken from a package's ``__init__`` that is not a submodule (``from .. import
    __version__`` -> ``promref.__version__``), 'external' for anything outside promref.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                kind = "module" if within(alias.name, ("promref",)) else "external"
                found.append((node.lineno, alias.name, kind))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            if not within(source, ("promref",)):
                found.append((node.lineno, source, "external"))
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if is_module(full):
                    found.append((node.lineno, full, "module"))
                elif is_module(source) and (PACKAGE.parent.joinpath(*source.split(".")) / "__init__.py").is_file():
                    found.append((node.lineno, full, "face-name"))
                else:
                    found.append((node.lineno, source, "module"))
    return found


def all_modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


MODULES = all_modules()
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def promref_edges(name):
    """{promref module imported by ``name``} (face names count as their package)."""
    out = set()
    for _, target, kind in GRAPH[name]:
        if kind == "module":
            out.add(target)
        elif kind == "face-name":
            out.add(target.rsplit(".", 1)[0])
    return out


def reachable(name):
    """Every promref module that importing (and running) ``name`` can import, transitively."""
    seen, todo = set(), [name]
    while todo:
        for target in promref_edges(todo.pop()):
            if target not in seen and target in GRAPH:
                seen.add(target)
                todo.append(target)
    return seen


def is_face(name):
    """The package face: ``promref`` itself and the command-line fronts (``cli``, ``__main__``)."""
    return name == "promref" or name.rsplit(".", 1)[-1] in ("cli", "__main__")


def where(name, line):
    return f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}"


def violations(modules, bad):
    """['file:line imports X'] for every import of ``modules`` for which ``bad(target, kind)``."""
    return [f"{where(name, line)} imports {target}" for name in modules for line, target, kind in GRAPH[name]
            if bad(target, kind)]


# ------------------------------------------------------------------ the rules


def test_the_graph_is_read():
    """The parser sees the package (a rule over an empty graph could never fail)."""
    assert {"promref", "promref.arith", "promref.model", "promref.engine", "promref.format"} <= set(MODULES)
    assert "promref.arith" in promref_edges("promref.validate")
    assert any(within(m, ("promref.kernels",)) for m in MODULES)


def test_arithmetic_knows_no_architecture():
    """``promref.arith`` is integers only: it imports no promref module but the exception classes
    (so no model, no architecture, no layer, no backend)."""
    bad = violations(["promref.arith"], lambda t, k: k != "external" and t != "promref.errors")
    assert not bad, "arithmetic must not know models or architectures:\n" + "\n".join(bad)


def test_kernels_import_only_arithmetic():
    """A kernel reads the layer it is handed; it imports only arith, the errors and its own backends."""
    kernels = [m for m in MODULES if within(m, ("promref.kernels",))]
    allowed = ("promref.arith", "promref.errors", "promref.kernels")
    bad = violations(kernels, lambda t, k: k != "external" and not within(t, allowed))
    assert not bad, "kernels may import only promref.arith, promref.errors, promref.kernels.*:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m == "promref.engine"
                                        or within(m, ("promref.kernels",))))
def test_kernels_and_engine_never_reach_training(name):
    """Running a model never imports the trainer (not even through another module)."""
    reached = sorted(m for m in reachable(name) if within(m, ("promref.train", "promref.data")))
    assert not reached, f"{name} reaches training code: {reached}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if within(m, CORE)))
def test_core_knows_no_foreign_format(name):
    """The core (model, format, validate, engine, kernels, arith, architectures) imports only the
    core: no interop, conformance, training, energy, CLI, and no foreign-format package."""
    bad = violations([name], lambda t, k: (k != "external" and not within(t, CORE))
                     or (k == "external" and within(t, FOREIGN)))
    assert not bad, "the core may import only the core:\n" + "\n".join(bad)
    reached = sorted(m for m in reachable(name) if within(m, ("promref.interop",)))
    assert not reached, f"{name} reaches a foreign format: {reached}"


def test_parts_never_import_the_face():
    """The face (``promref/__init__``, the ``cli`` and ``__main__`` modules) imports the parts;
    a part imports no face (only ``promref.__version__`` may be read from it).  A package's
    ``__init__`` may forward to its own package's ``cli`` (``promref.energy.main``)."""
    offenders = []
    for name in MODULES:
        if is_face(name):
            continue
        for line, target, kind in GRAPH[name]:
            if kind == "face-name":
                package, attr = target.rsplit(".", 1)
                bad = package == "promref" and attr not in FACE_NAMES_FOR_PARTS
            else:
                bad = kind == "module" and is_face(target) and not (
                    MODULES[name].name == "__init__.py" and target == f"{name}.cli")
            if bad:
                offenders.append(f"{where(name, line)} imports {target}")
    assert not offenders, "parts must not import the package face:\n" + "\n".join(offenders)


def test_no_import_cycles():
    """Module-level imports between promref modules form no cycle (data and control flow one way)."""
    def top_level(name):
        tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
        lines = {n.lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
        out = set()
        for line, target, kind in GRAPH[name]:
            if line in lines and kind != "external":
                target = target if kind == "module" else target.rsplit(".", 1)[0]
                # a module importing its own package's __init__ (or a sibling through it) is not a cycle
                if target in GRAPH and not name.startswith(target + "."):
                    out.add(target)
        return out

    edges = {name: top_level(name) for name in MODULES}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name)


# --------------------------------------------- the checker itself can fail


def test_rules_catch_a_planted_violation(tmp_path, monkeypatch):
    """A kernel that imports the trainer, and arith importing the model, are reported."""
    graph = dict(GRAPH)
    modules = dict(MODULES)
    graph["promref.kernels.reference.bad"] = [(3, "promref.train.units", "module")]
    graph["promref.arith"] = GRAPH["promref.arith"] + [(7, "promref.model", "module")]
    modules["promref.kernels.reference.bad"] = PACKAGE / "kernels" / "reference" / "bad.py"
    monkeypatch.setitem(globals(), "GRAPH", graph)
    monkeypatch.setitem(globals(), "MODULES", modules)
    with pytest.raises(AssertionError, match="bad.py:3 imports promref.train.units"):
        test_kernels_import_only_arithmetic()
    with pytest.raises(AssertionError, match="reaches training code"):
        test_kernels_and_engine_never_reach_training("promref.kernels.reference.bad")
    with pytest.raises(AssertionError, match="arith.py:7 imports promref.model"):
        test_arithmetic_knows_no_architecture()


def test_resolution_of_relative_imports(tmp_path):
    """``from .. import arith`` names the module promref.arith, ``from .. import __version__`` the
    face's name, ``from .model import Layer`` the module promref.model."""
    got = {(t, k) for _, t, k in imports_of(PACKAGE / "validate.py")}
    assert ("promref.arith", "module") in got and ("promref.model", "module") in got
    assert ("numpy", "external") in got
    source = PACKAGE / "kernels" / "reference" / "add.py"
    assert ("promref.arith", "module") in {(t, k) for _, t, k in imports_of(source)}
