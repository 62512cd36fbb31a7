"""Generate docs/api.md, the API reference, from the docstrings of promref's public API.

    python tools/make_api_docs.py            # rewrite docs/api.md
    python tools/make_api_docs.py --check    # exit 1 if docs/api.md is not what this writes

The public API is: the names in each listed module's ``__all__``; for modules
without ``__all__``, the functions and classes defined in the module and its
top-level UPPER_CASE constants (documented by a ``#:`` comment above them).
Each entry gets its signature (``inspect.signature``) and its docstring; a
class also gets its public methods and properties.  An object listed by
several modules is documented once, in the section of the module that
defines it (else the first that lists it), and linked from the others.

Docstrings are reStructuredText-flavoured plain text; they are copied as
they are, with two small translations so that they read well as Markdown:
Sphinx roles (``:func:`x```) become code spans, and ``====`` tables become
code blocks.  tests/test_tutorials.py checks that docs/api.md is up to date.
"""
import ast
import importlib
import inspect
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "docs", "api.md")

#: (module, what it is for), in the order of the page
MODULES = (
    ("promref", "the top-level API: classify images, load and save models"),
    ("promref.arith", "integer arithmetic: rounding, requantization, weight quantizers, ternary packing"),
    ("promref.architectures", "what an architecture is: MobileNetV2 and the demo net's layer lists, schemes, labels"),
    ("promref.model", "what a model is: layer records, input spec, the forward pass"),
    ("promref.format", "the .npz weights format: load (validated) and save"),
    ("promref.engine", "runs a model's layer list on a backend"),
    ("promref.preprocess", "image file -> int8 input tensor"),
    ("promref.evaluate", "top-1 accuracy of an integer model and the model-card check"),
    ("promref.energy", "operation counts, energy and storage accounting"),
    ("promref.train", "quantization-aware training without autograd"),
    ("promref.conformance", "golden vectors and the conformance checker"),
    ("promref.data", "CIFAR-10 loaders"),
    ("promref.interop", "bridges to other runtimes (TFLite import)"),
)

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const|ref):`(~?)([^`<]+?)(?:\s*<[^`]*>)?`")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_TABLE_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


# ----------------------------------------------------------------- text


def _escape(text):
    """Escape ``<`` (an HTML tag to Markdown) and ``**`` (Python's power, bold to Markdown)
    outside code spans."""
    out, pos = [], 0

    def plain(part):
        return part.replace("<", "&lt;").replace("**", "\\*\\*")
    for m in _CODE_SPAN.finditer(text):
        out.append(plain(text[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(plain(text[pos:]))
    return "".join(out)


def _roles(text):
    """Sphinx roles -> code spans: ``:func:`~a.b``` -> ```b```, ``:class:`a.B``` -> ```a.B```."""
    return _ROLE.sub(lambda m: "`" + (m.group(2).split(".")[-1] if m.group(1) else m.group(2)) + "`", text)


def _text_line(line):
    return _escape(_roles(line))


def docstring_markdown(doc):
    """A cleaned docstring as Markdown (see the module docstring for what is translated)."""
    if not doc:
        return ""
    out, rules, in_code, previous_blank = [], 0, False, True
    for line in inspect.cleandoc(doc).splitlines():
        if rules or (_TABLE_RULE.match(line) and not in_code):
            # an RST simple table: three rule lines (top, under the header, bottom) -> a code block
            if not rules:
                out.append("```")
            out.append(line)
            rules += bool(_TABLE_RULE.match(line))
            if rules == 3:
                out.append("```")
                rules = 0
            continue
        if not line.strip():
            out.append("")
            previous_blank = True
            continue
        if line.startswith("    ") and (previous_blank or in_code):
            in_code = True
            out.append(line)            # an indented code block: copied as it is
        else:
            in_code = False
            out.append(_text_line(line))
        previous_blank = False
    if rules:
        out.append("```")
    return "\n".join(out).strip("\n")


def value_text(value):
    """A short, machine-independent description of a constant's value."""
    text = _ADDRESS.sub("", repr(value))
    if isinstance(value, dict) and len(text) > 300:
        keys = ", ".join(repr(k) for k in value)
        if len(keys) < 300:
            return f"{{...}}  # a dict with keys {keys}"
        return f"{{...}}  # a dict of {len(value)} entries"
    return text if len(text) <= 300 else f"{type(value).__name__}(...)  # {text[:150]}..."


class _Literal:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _default_text(value):
    try:
        import numpy as np
        if isinstance(value, np.generic):
            return repr(value.item())
    except ImportError:  # pragma: no cover
        pass
    if inspect.isfunction(value) or inspect.isclass(value):
        return value.__qualname__
    return _ADDRESS.sub("", repr(value))


def signature_text(obj, name):
    """``name(params) -> annotation``, or None where Python cannot tell (e.g. builtin bases)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [p.replace(default=_Literal(_default_text(p.default))) if p.default is not p.empty else p
              for p in sig.parameters.values()]
    return name + str(sig.replace(parameters=params))


# ---------------------------------------------------------- what is public


def _constant_docs(paths):
    """{NAME: doc} from ``#:`` comments above top-level assignments in the files ``paths``."""
    docs = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        lines = source.splitlines()
        for node in ast.parse(source).body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            names = []
            for target in targets:
                names += target.elts if isinstance(target, ast.Tuple) else [target]
            for target in names:
                if not isinstance(target, ast.Name):
                    continue
                comment, i = [], node.lineno - 2
                while i >= 0 and lines[i].lstrip().startswith("#:"):
                    comment.insert(0, lines[i].lstrip()[2:].strip())
                    i -= 1
                if comment or target.id not in docs:
                    docs[target.id] = " ".join(comment)
    return docs


def _module_files(module):
    """The module's source file, and for a package every .py file below it."""
    path = module.__file__
    if os.path.basename(path) != "__init__.py":
        return [path]
    files = []
    for folder, _, names in os.walk(os.path.dirname(path)):
        files += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    return sorted(files)


def _source_line(obj):
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 0


def public_names(module):
    """The public names of ``module``, in page order."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    defined = [(name, obj) for name, obj in vars(module).items()
               if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
               and getattr(obj, "__module__", None) == module.__name__]
    constants = [name for name in _constant_docs([module.__file__])
                 if name.isupper() and not name.startswith("_") and name in vars(module)]
    return constants + [name for name, obj in sorted(defined, key=lambda item: _source_line(item[1]))]


def _anchor(*parts):
    return ".".join(parts)


# ------------------------------------------------------------- rendering


def _first_line(doc):
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ") if doc else ""


def render_class(cls, name):
    out = []
    sig = signature_text(cls, name)
    bases = [b.__name__ for b in cls.__bases__ if b is not object]
    header = f"class {sig or name}" + (f"  # bases: {', '.join(bases)}" if bases and not sig else "")
    if bases and sig:
        header += f"  # bases: {', '.join(bases)}"
    out += ["```python", header, "```", "", docstring_markdown(cls.__doc__)]
    for member_name, member in vars(cls).items():
        if member_name.startswith("_"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            doc = member.fget.__doc__ if member.fget else None
            out += ["", f"#### `{name}.{member_name}` (property)", "", docstring_markdown(doc) or "_undocumented_"]
        elif inspect.isfunction(member):
            sig = signature_text(member, f"{name}.{member_name}")
            out += ["", f"#### `{name}.{member_name}`", "", "```python", sig or member_name, "```", "",
                    docstring_markdown(member.__doc__) or "_undocumented_"]
    return out


def render(modules=MODULES):
    """The whole page, as a string."""
    loaded = [(importlib.import_module(name), purpose) for name, purpose in modules]
    listed = {}
    for module, _ in loaded:
        for name in public_names(module):
            listed.setdefault(id(getattr(module, name)), []).append((module.__name__, name))
    homes = {}
    for module, _ in loaded:
        for name in public_names(module):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue                      # constants are documented where they are listed
            owners = [m for m, _ in listed[id(obj)]]
            defining = getattr(obj, "__module__", "")
            home = next((m for m in owners if m == defining), None) or next(
                (m for m in owners if defining.startswith(m + ".")), owners[0])
            homes.setdefault(id(obj), (home, name))

    out = ["# promref API reference", "",
           "Generated from the docstrings by `python tools/make_api_docs.py`; do not edit by hand "
           "(tests/test_tutorials.py checks that it is up to date). The integer semantics are specified "
           "in [spec.md](spec.md); this page is the reference for the Python names.", ""]
    for module, purpose in loaded:
        out.append(f"- [`{module.__name__}`](#{_anchor(module.__name__)}): {purpose}")
    for module, purpose in loaded:
        mname = module.__name__
        out += ["", f'<a id="{_anchor(mname)}"></a>', "", f"## `{mname}`", "", f"_{purpose}_", "",
                docstring_markdown(module.__doc__)]
        constant_docs = _constant_docs(_module_files(module))
        for name in public_names(module):
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                home, home_name = homes[id(obj)]
                if home != mname:
                    out += ["", f"### `{name}`", "",
                            f"{_text_line(_first_line(obj.__doc__))} "
                            f"See [`{home}.{home_name}`](#{_anchor(home, home_name)})."]
                    continue
                out += ["", f'<a id="{_anchor(mname, name)}"></a>', "", f"### `{name}`", ""]
                if inspect.isclass(obj):
                    out += render_class(obj, name)
                else:
                    out += ["```python", signature_text(obj, name) or name, "```", "",
                            docstring_markdown(obj.__doc__) or "_undocumented_"]
            elif inspect.ismodule(obj):
                continue
            else:
                doc = constant_docs.get(name, "")
                out += ["", f'<a id="{_anchor(mname, name)}"></a>', "", f"### `{name}`", "",
                        "```python", f"{name} = {value_text(obj)}", "```"]
                if doc:
                    out += ["", _text_line(doc)]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        current = open(OUT, encoding="utf-8").read() if os.path.exists(OUT) else None
        if current != text:
            print(f"{os.path.relpath(OUT)} is out of date: run python tools/make_api_docs.py", file=sys.stderr)
            return 1
        return 0
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print("wrote", os.path.relpath(OUT), f"({len(text):,} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
