"""Accounting choices for energy and storage: every assumption is a named field.

An :class:`Accounting` says *what is counted and at which width*; an
:class:`~promref.energy.tables.EnergyTable` says *what an operation costs*.
docs/energy.md explains each field and what it does to MobileNetV2's numbers.
"""
import dataclasses
from dataclasses import dataclass

from .counts import POINTWISE_KINDS

_CHOICES = {
    "ternary_zeros": ("dense", "sparse"),
    "ternary_add": ("int8", "int32"),
    "accumulate": ("int32", "int8"),
    "requant": ("int8", "int32", "none"),
    "requant_layers": ("pointwise", "all"),
    "ternary_packing": ("2bit", "5trits"),
    "scales": ("none", "float32", "float16", "promref-file"),
}


@dataclass(frozen=True)
class Accounting:
    """How operations and bytes are counted.

    Which layers PROM makes ternary (layouts, and what-ifs on int8 models; a
    loaded PROM model's own ternary layers always win):

    last_conv_pointwise
        The last 1x1 conv (320 -> 1280) counts as pointwise, so PROM makes it
        ternary (promref's PROM scheme does).  False: it stays int8.
    classifier_pointwise
        The classifier (a 1x1 conv on the pooled features) counts as
        pointwise and is ternary too.  promref's scheme keeps it int8.

    Energy:

    ternary_zeros
        'dense': every ternary weight position costs an addition; 'sparse':
        zero weights are skipped (needs a loaded model's weights).
    ternary_add
        Width of a ternary layer's addition of an int8 input into the
        accumulator: 'int8' (the paper's "int8 additions") or 'int32' (the
        accumulator's width).
    accumulate
        Width of the addition that accumulates an int8 x int8 product:
        'int32' (the accumulator) or 'int8'.
    requant
        Price of one requantization multiply: 'int8' (an 8-bit multiplier),
        'int32' (the int32 x int32 multiply promref performs), or 'none'.
    requant_layers
        'pointwise': one requantization per output of the pointwise layers
        only (PROM.md's rough check); 'all': every requantization promref
        performs (each weighted layer's outputs, three per residual output
        element, one division per pooled channel).
    residual_and_pool
        Count the residual additions and the global pool's additions (in
        every configuration).
    zero_points
        Count the int8 layers' input zero-point subtractions as int8 additions.

    Storage:

    ternary_packing
        '2bit' (4 weights per byte, promref's file format) or '5trits'
        (5 weights per byte, 3**5 = 243 <= 256: 1.6 bits per weight).
    biases
        Count one bias per output channel (int32 in integer models, the
        float width in float models; with ``bn`` the float convs have none).
    scales
        Per-output-channel quantization constants of integer models:
        'none', 'float32' or 'float16' (one scale per output channel and per
        residual input/output), or 'promref-file' (what a promref .npz
        stores: int32 multiplier, int32 shift and float32 weight scale per
        channel; int32 multiplier and shift x 3 per residual add).
    bn
        Float models store batch norm unfolded: 4 parameters (gamma, beta,
        running mean and variance) per channel of every conv, at the float
        width.  Integer models always fold BN into biases and scales.
    """
    name: str = "custom"
    description: str = ""
    last_conv_pointwise: bool = True
    classifier_pointwise: bool = False
    ternary_zeros: str = "dense"
    ternary_add: str = "int8"
    accumulate: str = "int32"
    requant: str = "int8"
    requant_layers: str = "pointwise"
    residual_and_pool: bool = True
    zero_points: bool = False
    ternary_packing: str = "2bit"
    biases: bool = False
    scales: str = "none"
    bn: bool = False

    def __post_init__(self):
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                raise ValueError(f"accounting {self.name!r}: {key} must be one of {choices}, "
                                 f"got {getattr(self, key)!r}")
        for key in ("last_conv_pointwise", "classifier_pointwise", "residual_and_pool", "zero_points",
                    "biases", "bn"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"accounting {self.name!r}: {key} must be true or false, "
                                 f"got {getattr(self, key)!r}")

    @property
    def pointwise_kinds(self):
        """Layer kinds PROM makes ternary under this accounting."""
        kinds = tuple(k for k in POINTWISE_KINDS if k != "last_conv" or self.last_conv_pointwise)
        return kinds + (("classifier",) if self.classifier_pointwise else ())

    def replace(self, **changes):
        """A copy with some fields changed (values may be strings, as from the CLI)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        parsed = {}
        for key, value in changes.items():
            if key not in fields:
                raise ValueError(f"unknown accounting option {key!r}; expected one of {tuple(fields)}")
            if fields[key].type in (bool, "bool") and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"accounting option {key} must be true or false, got {value!r}")
                value = value.lower() in ("true", "1", "yes")
            parsed[key] = value
        return dataclasses.replace(self, **parsed)

    def options(self):
        """The choices as a dict (without name and description)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("name", "description")}

    def to_dict(self):
        return dataclasses.asdict(self)


def _preset(name, description, **fields):
    return Accounting(name=name, description=description, **fields)


#: named accountings; ``DEFAULT`` is the one the CLI and API use unless told otherwise
PRESETS = {a.name: a for a in (
    _preset("paper",
            "promref's reading of the paper: every 1x1 conv ternary (int8 additions, zeros included), "
            "other layers int8 multiply + int32 add, one int8 multiply per pointwise output to requantize; "
            "storage: weights only, ternary at 2 bits"),
    _preset("paper-requant-all",
            "as 'paper', but every requantization promref performs costs an int8 multiply",
            requant_layers="all"),
    _preset("zero-points",
            "as 'paper', plus the int8 layers' input zero-point subtractions (as the reference computes "
            "them) at an int8 addition each",
            zero_points=True),
    _preset("no-requant",
            "as 'paper', without requantization",
            requant="none"),
    _preset("int32-requant",
            "as 'paper-requant-all', each requantization an int32 x int32 multiply (what promref computes)",
            requant="int32", requant_layers="all"),
    _preset("int32-ternary-adds",
            "as 'paper', ternary additions at the accumulator's width (int32)",
            ternary_add="int32"),
    _preset("last-conv-int8",
            "as 'paper', the last 1x1 conv (320 -> 1280) kept int8",
            last_conv_pointwise=False),
    _preset("classifier-ternary",
            "as 'paper', the classifier ternary too",
            classifier_pointwise=True),
    _preset("trits-1.6bit",
            "as 'paper', ternary weights packed 5 per byte (1.6 bits)",
            ternary_packing="5trits"),
    _preset("with-biases-scales",
            "as 'paper', storage with int32 biases and float32 per-channel scales (float models: folded "
            "biases at the float width)",
            biases=True, scales="float32"),
    _preset("with-bn",
            "as 'with-biases-scales', float models storing batch norm unfolded (4 parameters per channel)",
            biases=True, scales="float32", bn=True),
    _preset("promref-file",
            "what a promref .npz holds: 2-bit ternary, int8, int32 bias, int32 multiplier and shift, "
            "float32 weight scale per channel; energy: every requantization an int32 multiply, "
            "zero-point subtractions counted",
            biases=True, scales="promref-file", requant="int32", requant_layers="all", zero_points=True),
)}
DEFAULT = PRESETS["paper"]


def accounting(spec=None, **overrides):
    """An :class:`Accounting` from a preset name, an Accounting or None (the
    default), with ``overrides`` applied (the name then says 'custom')."""
    if spec is None:
        base = DEFAULT
    elif isinstance(spec, Accounting):
        base = spec
    elif isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown accounting {spec!r}; expected one of {tuple(PRESETS)}")
        base = PRESETS[spec]
    else:
        raise TypeError(f"cannot make an accounting from {type(spec).__name__}")
    if overrides:
        changed = {k: v for k, v in overrides.items() if k not in ("name", "description")}
        name = overrides.get("name", f"{base.name}+" + ",".join(f"{k}={v}" for k, v in changed.items()))
        base = base.replace(**changed).replace(name=name, description=overrides.get(
            "description", base.description + " (modified: " + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")"))
    return base
