"""Kinds and names of imported layers, told from the graph's shape.

The op handlers emit records with a *role* (what the TFLite operator is:
``conv``, ``conv1x1``, ``depthwise``, ``mean``, ``fc``, ``add``, ``pool``) and
a provisional name ``L<i>``.  promref's layer kinds (``stem``, ``expand``,
``project``, ``last_conv``, ...) depend on where a layer sits: a 1x1
convolution fed by a depthwise is a projection, one feeding a depthwise is an
expansion.  These functions tell the kinds from the producer/consumer
relations, then give the layers MobileNetV2's block names (``b3.expand``).
"""
from .prepare import TfliteImportError

__all__ = ["layer_kinds", "layer_names"]


def _kind_of(record, by_name, consumers):
    role = record["role"]
    if role == "conv":
        if record["inputs"] != ("input",):
            raise TfliteImportError("only the stem (the first convolution) may have a kernel > 1")
        return "stem"
    if role == "conv1x1":
        src = by_name.get(record["inputs"][0])
        if src is not None and src["role"] == "depthwise":
            return "project"
        if any(c["role"] == "depthwise" for c in consumers[record["name"]]):
            return "expand"
        if any(c["role"] in ("pool", "mean") for c in consumers[record["name"]]):
            return "last_conv"
        raise TfliteImportError(f"cannot tell the role of 1x1 convolution {record['name']}")
    if role == "mean":
        return "depthwise"  # MEAN is imported as an all-ones depthwise (see the importer's docstring)
    if role == "fc":
        return "classifier"
    return role  # depthwise, add, pool


def layer_kinds(records):
    """Records (dicts with ``name``, ``role``, ``inputs``, in graph order) -> [promref kind], one each."""
    by_name = {r["name"]: r for r in records}
    consumers = {r["name"]: [] for r in records}
    for r in records:
        for i in r["inputs"]:
            if i in consumers:
                consumers[i].append(r)
    return [_kind_of(r, by_name, consumers) for r in records]


def layer_names(records, kinds):
    """Records and their kinds -> {provisional name: block name}, ``"input"`` mapped to itself.

    A block starts at each expansion, or at a depthwise that no expansion
    feeds (MobileNetV2's first block has none).  Names that would repeat get
    the provisional name appended, so the mapping is always one to one.
    """
    kind_of = {r["name"]: k for r, k in zip(records, kinds)}
    block, rename = 0, {"input": "input"}
    for r, kind in zip(records, kinds):
        if kind == "expand" or (kind == "depthwise" and r["role"] == "depthwise"
                                and kind_of.get(r["inputs"][0]) != "expand"):
            block += 1
        if kind in ("expand", "depthwise", "project", "add") and r["role"] != "mean":
            new = f"b{block}.{kind}"
        elif r["role"] == "mean":
            new = "pool.mean"
        else:
            new = kind
        if new in rename.values():
            new = f"{new}.{r['name']}"
        rename[r["name"]] = new
    return rename
