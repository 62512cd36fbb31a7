"""Energy and storage of one architecture in four configurations, per layer.

The configurations share the geometry of the source (a loaded model or a
layout) and differ in the format of the weighted layers:

=========== ================================================================
float32     float32 weights and activations; a MAC is a float32 multiply + add
float16     the same in float16 (the paper's baseline)
int8        every weighted layer int8 (int8 x int8 products, int32 accumulator)
prom        the 1x1 layers ternary (int8 additions only), the rest int8
=========== ================================================================

For a loaded PROM model the ``prom`` configuration is the model itself (its
own ternary layers and their real zeros); otherwise the ternary layers are
the pointwise kinds of the :class:`~promref.energy.accounting.Accounting`.

Everything is per image.  Energy is in picojoules, storage in bytes.
"""
import itertools
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from ..format import load, member_nbytes
from ..architectures import mobilenetv2_layout
from ..model import Model
from .accounting import PRESETS, Accounting, accounting as make_accounting
from .counts import LayerGeometry, float_ops, format_table, geometry, integer_ops
from .tables import DESCRIPTIONS, OPERATIONS, EnergyTable, energy_table

CONFIGS = ("float32", "float16", "int8", "prom")
BASELINE = "float16"
FLOAT_BYTES = {"float32": 4, "float16": 2}
FLOAT_KEY = {"float32": "fp32", "float16": "fp16"}

#: the paper's headline reductions for MobileNetV2 1.0/224 on ImageNet, against float16
PAPER = {"energy": 23.9, "storage": 2.7}


# ------------------------------------------------------------ one layer


def layer_formats(g, own_prom, acct):
    """{config: weight format} of layer ``g`` ('none' for unweighted layers).

    own_prom: the source is a loaded PROM model, so its own formats are the
    prom configuration."""
    if not g.weighted:
        return {c: "none" for c in CONFIGS}
    if own_prom:
        prom = g.weight_format
    else:
        prom = "ternary" if (g.kind in acct.pointwise_kinds and g.kernel == 1) else "int8"
    return {"float32": "float32", "float16": "float16", "int8": "int8", "prom": prom}


#: what each priced operation does, in report order
ROLES = ("MAC multiply", "MAC add", "ternary add", "requantization", "residual add", "pool add",
         "pool division", "zero point")


def priced_ops(g, config, fmt, acct, pointwise_kinds=None):
    """Counter {(role, energy table key): count} of layer ``g`` in ``config``
    (one image); roles are :data:`ROLES`.  ``pointwise_kinds``: the kinds whose
    outputs ``requant_layers='pointwise'`` requantizes (default: the accounting's)."""
    priced = Counter()
    if config in FLOAT_KEY:
        if not acct.residual_and_pool and not g.weighted:
            return priced
        ops = float_ops(g)
        key = FLOAT_KEY[config]
        if g.weighted:
            priced[("MAC multiply", f"mul_{key}")] = ops["fmul"]
            priced[("MAC add", f"add_{key}")] = ops["fadd"]
        elif g.op == "add":
            priced[("residual add", f"add_{key}")] = ops["fadd"]
        else:
            priced[("pool add", f"add_{key}")] = ops["fadd"]
            priced[("pool division", f"mul_{key}")] = ops["fmul"]
        return +priced
    ops = integer_ops(g, fmt if g.weighted else None, acct.ternary_zeros if fmt == "ternary" else "dense")
    priced[("MAC multiply", "mul_int8")] = ops["mul_int8"]
    priced[("MAC add", f"add_{acct.accumulate}")] = ops["acc_add"]
    priced[("ternary add", f"add_{acct.ternary_add}")] = ops["ternary_add"]
    if acct.residual_and_pool:
        priced[("residual add", "add_int32")] = ops["residual_add"]
        priced[("pool add", "add_int32")] = ops["pool_add"]
    if acct.zero_points:
        priced[("zero point", "add_int8")] = ops["zero_point_sub"]
    if acct.requant != "none":
        if acct.requant_layers == "all":
            priced[("requantization", f"mul_{acct.requant}")] = ops["requant"] + ops["rescale"]
            if acct.residual_and_pool:
                priced[("pool division", f"mul_{acct.requant}")] = ops["pool_div"]
        elif g.kind in (acct.pointwise_kinds if pointwise_kinds is None else pointwise_kinds):
            priced[("requantization", f"mul_{acct.requant}")] = ops["requant"]
    return +priced


def layer_storage(g, config, fmt, acct, has_weight_scale=True):
    """{part: bytes} of layer ``g`` in ``config``: weights, biases, scales, bn."""
    parts = dict(weights=0.0, biases=0.0, scales=0.0, bn=0.0)
    if config in FLOAT_BYTES:
        width = FLOAT_BYTES[config]
        if g.weighted:
            parts["weights"] = g.params * width
            if acct.bn and g.has_bn:
                parts["bn"] = 4 * g.out_channels * width
            if acct.biases and not (acct.bn and g.has_bn):
                parts["biases"] = g.out_channels * width
        return parts
    if g.weighted:
        if fmt == "ternary":
            per_byte = 4 if acct.ternary_packing == "2bit" else 5
            parts["weights"] = math.ceil(g.params / per_byte)
        else:
            parts["weights"] = g.params
        if acct.biases:
            parts["biases"] = 4 * g.out_channels
        if acct.scales == "promref-file":
            parts["scales"] = (8 + (4 if has_weight_scale else 0)) * g.out_channels
        elif acct.scales != "none":
            parts["scales"] = (4 if acct.scales == "float32" else 2) * g.out_channels
    elif g.op == "add":
        if acct.scales == "promref-file":
            parts["scales"] = 24
        elif acct.scales != "none":
            parts["scales"] = 3 * (4 if acct.scales == "float32" else 2)
    return parts


@dataclass
class LayerReport:
    """One layer in every configuration."""
    geometry: LayerGeometry
    formats: dict      # config -> weight format
    ops: dict          # config -> Counter {(role, energy table key): count}
    energy_pj: dict    # config -> pJ
    storage: dict      # config -> {part: bytes}

    @property
    def name(self):
        return self.geometry.name

    @property
    def kind(self):
        return self.geometry.kind

    def storage_bytes(self, config):
        return sum(self.storage[config].values())

    def to_dict(self):
        g = self.geometry
        return dict(name=g.name, kind=g.kind, op=g.op, output=[g.out_hw[0], g.out_hw[1], g.out_channels],
                    params=g.params, macs=g.macs, outputs=g.outputs, nonzero=g.nonzero, formats=self.formats,
                    ops={c: {f"{role}: {key}": n for (role, key), n in v.items()} for c, v in self.ops.items()},
                    energy_pj=self.energy_pj,
                    storage_bytes={c: self.storage_bytes(c) for c in CONFIGS},
                    storage={c: dict(v) for c, v in self.storage.items()})


@dataclass
class Report:
    """Energy and storage of a source in the four configurations.  All numbers
    per image; energy in pJ, storage in bytes."""
    source: str
    arch: dict
    accounting: Accounting
    table: EnergyTable
    layers: list
    own_config: Optional[str] = None     # the configuration a loaded model is in
    file: Optional[dict] = None          # a weights file: path, size on disk and what it holds
    notes: list = field(default_factory=list)

    def energy_pj(self, config):
        return float(sum(layer.energy_pj[config] for layer in self.layers))

    def storage_bytes(self, config):
        return float(sum(layer.storage_bytes(config) for layer in self.layers))

    def ops(self, config):
        """Counter {(role, energy table key): count} summed over layers."""
        total = Counter()
        for layer in self.layers:
            total.update(layer.ops[config])
        return total

    def energy_ratio(self, config, baseline=BASELINE):
        """How many times less energy ``config`` needs than ``baseline``."""
        return self.energy_pj(baseline) / self.energy_pj(config)

    def storage_ratio(self, config, baseline=BASELINE):
        return self.storage_bytes(baseline) / self.storage_bytes(config)

    def by_kind(self, metric, config):
        """{layer kind: total} of 'energy' (pJ), 'storage' (bytes) or 'macs', in layer order."""
        out = {}
        for layer in self.layers:
            value = {"energy": lambda: layer.energy_pj[config], "storage": lambda: layer.storage_bytes(config),
                     "macs": lambda: layer.geometry.macs}[metric]()
            out[layer.kind] = out.get(layer.kind, 0) + value
        return out

    def totals(self):
        """{config: {energy_pj, energy_ratio, storage_bytes, storage_ratio, ops}}."""
        return {c: dict(energy_pj=self.energy_pj(c), energy_ratio=self.energy_ratio(c),
                        storage_bytes=self.storage_bytes(c), storage_ratio=self.storage_ratio(c),
                        ops={f"{role}: {key}": n for (role, key), n in self.ops(c).items()})
                for c in CONFIGS}

    def to_dict(self):
        return dict(source=self.source, arch=self.arch, accounting=self.accounting.to_dict(),
                    energy_table=self.table.to_dict(), own_config=self.own_config, file=self.file,
                    notes=list(self.notes), totals=self.totals(), layers=[layer.to_dict() for layer in self.layers])


# ------------------------------------------------------------- reports


def _build(source_name, arch, geoms, acct, table, own_prom, weight_scales=None):
    layers = []
    # a PROM model's pointwise layers are its ternary ones
    kinds = {g.kind for g in geoms if g.weight_format == "ternary"} if own_prom else None
    for g in geoms:
        formats = layer_formats(g, own_prom, acct)
        ops = {c: priced_ops(g, c, formats[c], acct, kinds) for c in CONFIGS}
        energy = {c: float(sum(n * table[key] for (_, key), n in ops[c].items())) for c in CONFIGS}
        has_scale = True if weight_scales is None else weight_scales.get(g.name, True)
        storage = {c: layer_storage(g, c, formats[c], acct, has_scale) for c in CONFIGS}
        layers.append(LayerReport(g, formats, ops, energy, storage))
    return Report(source=source_name, arch=arch, accounting=acct, table=table, layers=layers)


def file_contents(path):
    """What a promref .npz holds: {path, size (bytes on disk), arrays (bytes of
    the weight arrays), meta (bytes of the JSON member), overhead (.npy headers
    and zip directory)}."""
    path = os.fspath(path)
    sizes = member_nbytes(path)  # bounded and pickle-free, as load(); WeightsFormatError for a bad file
    size = os.path.getsize(path)
    members, meta = len(sizes), sizes.get("meta", 0)
    arrays = sum(n for name, n in sizes.items() if name != "meta")
    return dict(path=path, size=size, arrays=arrays, meta=meta, overhead=size - arrays - meta,
                members=members)


def report(source, accounting=None, table=None, **overrides):
    """Energy and storage report of ``source`` in the four configurations.

    source: a path to a promref .npz, a loaded :class:`~promref.model.Model`,
    a layout (``mobilenetv2_layout(...)``), or a dict of ``mobilenetv2_layout``
    arguments (``dict(config="imagenet", width=1.0)``).  accounting: a preset
    name (see :data:`~promref.energy.accounting.PRESETS`) or an Accounting;
    ``overrides`` change single options.  table: an EnergyTable, a dict of
    overrides, a table name, or a JSON path (default Horowitz 2014).
    """
    acct = make_accounting(accounting, **overrides)
    tbl = energy_table(table)
    file_info, name, notes = None, None, []
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        source = load(name)   # first: it names the problem with a missing or bad file
        file_info = file_contents(name)
    if isinstance(source, Model):
        name = name or source.name
        arch = dict(source.arch)
        geoms = geometry(source)
        own_prom = any(layer.op == "pointwise_ternary" for layer in source.layers)
        own = "prom" if own_prom else "int8"
        weight_scales = {layer.name: layer.weight_scale is not None for layer in source.layers}
        if own_prom and acct.pointwise_kinds != ("expand", "project", "last_conv"):
            notes.append("the model's own ternary layers define the prom configuration and the pointwise "
                         "layers; last_conv_pointwise / classifier_pointwise do not apply to a loaded PROM model")
    else:
        if isinstance(source, dict):
            args = {"config": "cifar", "width": 1.0, "scheme": "prom", **source}
            name = "mobilenetv2 {config} width {width} ({scheme} layout, no weights)".format(**args)
            arch = dict(name="mobilenetv2", **args)
            source = mobilenetv2_layout(**args)
        else:
            name, arch = "layout", {}
        geoms = geometry(source)
        own_prom, own, weight_scales = False, None, None
    if acct.ternary_zeros == "sparse" and not own_prom:
        raise ValueError("sparse ternary counts need a loaded PROM model's ternary weights "
                         "(a layout or an int8 model has none); use ternary_zeros='dense'")
    rep = _build(name, arch, geoms, acct, tbl, own_prom, weight_scales)
    if file_info is not None:  # what the file's arrays should hold, by the accounting of the format
        as_file = _build(name, arch, geoms, PRESETS["promref-file"], tbl, own_prom, weight_scales)
        file_info["computed_arrays"] = int(as_file.storage_bytes(own))
    rep.own_config, rep.file, rep.notes = own, file_info, notes
    return rep


def twin_accuracies(cards):
    """{config: {"top1", "ci95", "card"}} from the model cards of one float run's twins.

    cards: card dicts as ``promref train --out`` writes them (``weights/mbv2_prom.json``,
    ``weights/mbv2_int8.json``): each gives its scheme's integer top-1 ('prom' or 'int8'), and
    its float twin's top-1 gives 'float32' (the float network is trained and evaluated in
    float32).  A card of scheme 'float' gives 'float32' alone.  The cards must agree on the data
    set, the test images and the float twin's figure (one float run), else ValueError.
    """
    out, seen = {}, {}
    for i, card in enumerate(cards):
        if not isinstance(card, dict) or card.get("scheme") not in ("prom", "int8", "float"):
            raise ValueError(f"card {i}: not a model card with a 'scheme' of prom, int8 or float")
        for key in ("dataset", "test_images"):
            if seen.setdefault(key, card.get(key)) != card.get(key):
                raise ValueError(f"card {i}: {key} {card.get(key)!r} differs from the other cards' {seen[key]!r}")
        parts = [("float32", card.get("float"))]
        if card["scheme"] != "float":
            parts.append((card["scheme"], card.get("integer")))
        for config, record in parts:
            if not isinstance(record, dict) or not isinstance(record.get("top1"), (int, float)):
                if config == "float32" and card["scheme"] != "float":
                    continue  # a card without its float twin's figure
                raise ValueError(f"card {i}: no {config} accuracy record (top1, ci95)")
            entry = dict(top1=float(record["top1"]), ci95=list(record.get("ci95") or []), card=i)
            if config in out and out[config]["top1"] != entry["top1"]:
                raise ValueError(f"cards {out[config]['card']} and {i} disagree on the {config} top-1 "
                                 f"({out[config]['top1']} vs {entry['top1']}): not twins of one float run")
            out.setdefault(config, entry)
    if not out:
        raise ValueError("no model card given")
    return out


def format_twins(rep, accuracies):
    """Energy per image, its reduction against float16 and the top-1 (95 % interval) of each twin."""
    lines = [f"{'twin':<8} {'energy/image':>13} {'vs float16':>11}  top-1 (95 % Clopper-Pearson interval)"]
    for config in CONFIGS:
        if config in accuracies:
            a = accuracies[config]
            ci = f" ({100 * a['ci95'][0]:.2f}-{100 * a['ci95'][1]:.2f}%)" if len(a["ci95"]) == 2 else ""
            lines.append(f"{config:<8} {_uj(rep.energy_pj(config)):>13} {rep.energy_ratio(config):>10.1f}x  "
                         f"{100 * a['top1']:.2f}%{ci}")
    return "\n".join(lines)


def mobilenetv2_report(config="imagenet", width=1.0, scheme="prom", accounting=None, table=None, **overrides):
    """:func:`report` of the MobileNetV2 layout (no weights)."""
    return report(dict(config=config, width=width, scheme=scheme), accounting, table, **overrides)


def paper_comparison(accountings=None, table=None):
    """MobileNetV2 1.0/224 (ImageNet) under each accounting: list of dicts with
    the PROM and float16 energy (pJ) and storage (bytes) and their ratios,
    next to the paper's 23.9x and 2.7x."""
    rows = []
    for spec in accountings or PRESETS.values():
        acct = make_accounting(spec)
        if acct.ternary_zeros == "sparse":
            continue
        rep = mobilenetv2_report("imagenet", 1.0, "prom", acct, table)
        rows.append(dict(accounting=acct.name, description=acct.description,
                         float16_energy_pj=rep.energy_pj("float16"), prom_energy_pj=rep.energy_pj("prom"),
                         energy_ratio=rep.energy_ratio("prom"),
                         float16_storage_bytes=rep.storage_bytes("float16"),
                         prom_storage_bytes=rep.storage_bytes("prom"), storage_ratio=rep.storage_ratio("prom"),
                         int8_energy_ratio=rep.energy_ratio("int8"), int8_storage_ratio=rep.storage_ratio("int8")))
    return rows


def option_grid(source, options, accounting=None, table=None):
    """Ratios against float16 for every combination of accounting options.

    options: {option: [values]} (values may be strings, as from the CLI).
    Returns a list of dicts: the options, then energy_ratio, storage_ratio
    (PROM vs float16), prom_energy_pj, prom_storage_bytes."""
    base = make_accounting(accounting)
    keys = list(options)
    if isinstance(source, (str, os.PathLike)):
        source = load(os.fspath(source))
    rows = []
    for values in itertools.product(*(options[k] for k in keys)):
        changes = dict(zip(keys, values))
        rep = report(source, base.replace(**changes), table)
        rows.append(dict(**{k: getattr(rep.accounting, k) for k in keys},
                         energy_ratio=rep.energy_ratio("prom"), storage_ratio=rep.storage_ratio("prom"),
                         prom_energy_pj=rep.energy_pj("prom"), prom_storage_bytes=rep.storage_bytes("prom")))
    return rows


def format_grid(rows):
    keys = [k for k in rows[0] if k not in ("energy_ratio", "storage_ratio", "prom_energy_pj",
                                            "prom_storage_bytes")]
    header = keys + ["PROM uJ", "energy", "PROM MB", "storage"]
    body = [[str(r[k]) for k in keys] + [_uj(r["prom_energy_pj"]), f"{r['energy_ratio']:.2f}x",
                                         _mb(r["prom_storage_bytes"]), f"{r['storage_ratio']:.2f}x"]
            for r in rows]
    return format_table(header, body, right=range(len(keys), len(header)))


# ---------------------------------------------------------- formatting


def _uj(pj):
    return f"{pj * 1e-6:.3f}"


def _mb(nbytes):
    return f"{nbytes / 1e6:.4f}"


def format_layers(rep):
    """Per-layer table: geometry, formats and energy / storage per configuration."""
    header = ["layer", "kind", "prom fmt", "output", "params", "MACs"]
    header += [f"{c} nJ" for c in CONFIGS] + [f"{c} kB" for c in CONFIGS]
    rows = []
    for layer in rep.layers:
        g = layer.geometry
        rows.append([g.name, g.kind, layer.formats["prom"], f"{g.out_hw[0]}x{g.out_hw[1]}x{g.out_channels}",
                     f"{g.params:,}", f"{g.macs:,}"]
                    + [f"{layer.energy_pj[c] / 1e3:.1f}" for c in CONFIGS]
                    + [f"{layer.storage_bytes(c) / 1e3:.2f}" for c in CONFIGS])
    rows.append(["total", "", "", "", f"{sum(x.geometry.params for x in rep.layers):,}",
                 f"{sum(x.geometry.macs for x in rep.layers):,}"]
                + [f"{rep.energy_pj(c) / 1e3:.1f}" for c in CONFIGS]
                + [f"{rep.storage_bytes(c) / 1e3:.2f}" for c in CONFIGS])
    return format_table(header, rows, right=range(4, len(header)))


def format_kinds(rep):
    """Energy (uJ) and share by layer kind, per configuration."""
    kinds = list(rep.by_kind("macs", "prom"))
    header = ["kind", "MACs"] + [f"{c} uJ" for c in CONFIGS] + [f"{c} %" for c in CONFIGS]
    rows = []
    macs = rep.by_kind("macs", "prom")
    energy = {c: rep.by_kind("energy", c) for c in CONFIGS}
    for kind in kinds:
        rows.append([kind, f"{macs[kind]:,}"] + [_uj(energy[c][kind]) for c in CONFIGS]
                    + [f"{100 * energy[c][kind] / rep.energy_pj(c):.1f}" for c in CONFIGS])
    return format_table(header, rows, right=range(1, len(header)))


def format_ops(rep):
    """Operation counts x energy per operation = energy, per configuration."""
    header = ["config", "role", "operation", "count", "pJ each", "uJ"]
    rows = []
    for c in CONFIGS:
        ops = rep.ops(c)
        for role in ROLES:
            for key in OPERATIONS:
                n = ops.get((role, key))
                if n:
                    rows.append([c, role, DESCRIPTIONS[key], f"{n:,}", f"{rep.table[key]:g}", _uj(n * rep.table[key])])
        rows.append([c, "total", "", "", "", _uj(rep.energy_pj(c))])
    return format_table(header, rows, right=(3, 4, 5))


def format_totals(rep):
    """Totals per configuration and the reductions against float16."""
    header = ["config", "energy uJ", "vs float16", "storage MB", "vs float16"]
    rows = [[c, _uj(rep.energy_pj(c)), f"{rep.energy_ratio(c):.2f}x", _mb(rep.storage_bytes(c)),
             f"{rep.storage_ratio(c):.2f}x"] for c in CONFIGS]
    return format_table(header, rows, right=range(1, 5))


def format_storage_parts(rep):
    """Storage by part (weights, biases, scales, BN) per configuration, bytes."""
    parts = ("weights", "biases", "scales", "bn")
    header = ["config"] + list(parts) + ["total"]
    rows = []
    for c in CONFIGS:
        sums = {p: sum(layer.storage[c][p] for layer in rep.layers) for p in parts}
        rows.append([c] + [f"{int(sums[p]):,}" for p in parts] + [f"{int(rep.storage_bytes(c)):,}"])
    return format_table(header, rows, right=range(1, len(header)))


def format_accounting(acct):
    lines = [f"accounting: {acct.name}"]
    if acct.description:
        lines.append(f"  {acct.description}")
    lines += [f"  {k} = {v}" for k, v in acct.options().items()]
    return "\n".join(lines)


def format_paper(rows):
    header = ["accounting", "fp16 uJ", "PROM uJ", "energy", "fp16 MB", "PROM MB", "storage"]
    body = [[r["accounting"], _uj(r["float16_energy_pj"]), _uj(r["prom_energy_pj"]), f"{r['energy_ratio']:.2f}x",
             _mb(r["float16_storage_bytes"]), _mb(r["prom_storage_bytes"]), f"{r['storage_ratio']:.2f}x"]
            for r in rows]
    body.append(["paper (arXiv 2505.03254)", "", "", f"{PAPER['energy']}x", "", "", f"{PAPER['storage']}x"])
    return format_table(header, body, right=range(1, len(header)))


def format_report(rep, layers=True, paper=None):
    """The full text report: source, accounting, tables.  ``paper``: also the
    paper comparison (default: for MobileNetV2 ImageNet width 1.0)."""
    out = [f"source: {rep.source}"]
    if rep.arch:
        out.append("arch: " + ", ".join(f"{k}={v}" for k, v in rep.arch.items()))
    if rep.own_config:
        out.append(f"the model itself is the {rep.own_config!r} configuration")
    out.append(format_accounting(rep.accounting))
    out.append(f"energy table: {rep.table.name} ({rep.table.source})")
    out.append("  " + ", ".join(f"{k}={rep.table[k]:g} pJ" for k in OPERATIONS))
    out.extend(f"note: {n}" for n in rep.notes)
    if layers:
        out += ["", "per layer (energy in nJ per image, storage in kB):", format_layers(rep)]
    out += ["", "by layer kind (energy per image):", format_kinds(rep)]
    out += ["", "operations per image x energy per operation:", format_ops(rep)]
    out += ["", "storage by part (bytes):", format_storage_parts(rep)]
    out += ["", "totals (per image):", format_totals(rep)]
    if rep.file:
        f = rep.file
        own = rep.own_config
        out += ["", f"file {f['path']}: {f['size']:,} bytes on disk = {f['arrays']:,} bytes of arrays "
                    f"+ {f['meta']:,} bytes of JSON meta + {f['overhead']:,} bytes of .npy headers and zip "
                    f"directory ({f['members']} members)",
                f"computed storage of the {own} configuration: {int(rep.storage_bytes(own)):,} bytes under "
                f"{rep.accounting.name!r}; {f['computed_arrays']:,} bytes under 'promref-file' "
                f"({'equal to' if f['computed_arrays'] == f['arrays'] else 'NOT equal to'} the arrays in the file)"]
    if paper is None:
        paper = rep.arch.get("name") == "mobilenetv2" and rep.arch.get("config") == "imagenet" \
            and float(rep.arch.get("width", 0)) == 1.0
    if paper:
        out += ["", "the paper's figures: MobileNetV2 1.0/224, PROM vs float16, under each accounting "
                    f"(energy table {rep.table.name}):", format_paper(paper_comparison(table=rep.table))]
    return "\n".join(out)
