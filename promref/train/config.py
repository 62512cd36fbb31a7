"""A training run's configuration (recorded in checkpoints and model cards) and the network it builds."""
from dataclasses import dataclass, field

from ..architectures import dsnet_layout, mobilenetv2_layout
from .network import Network


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in checkpoints and model cards)."""
    arch: str = "mobilenetv2"          # or "dsnet" (the small demo net)
    width: float = 1.0
    scheme: str = "prom"               # "prom" or "int8"
    epochs_float: int = 100            # the round-3 recipe: docs/training.md
    epochs_qat: int = 15
    batch_size: int = 128
    lr: float = 0.1
    lr_qat: float = 0.001             # 0.01 collapses MobileNetV2 QAT (frozen BN): docs/training.md
    batch_stats_epochs_qat: int = 0    # QAT epochs folding batch statistics before BN is frozen: docs/training.md
    momentum: float = 0.9
    nesterov: bool = True
    label_smoothing: float = 0.1
    weight_decay: float = 5e-4
    weight_decay_qat: float = 5e-5
    warmup_epochs: int = 2
    bn_recalibration_batches: int = 100
    train_subset: int = 0              # 0: all training images
    seed: int = 0
    rounding: str = "double"           # LiteRT's; with multipliers "tflite" the model exports to TFLite exactly
    multipliers: str = "tflite"        # or "float64" (the round-1/2 rule): units.MULTIPLIER_RULES, docs/training.md
    backend: str = "numba"
    dsnet_channels: tuple = field(default=(32, 64, 128))

    def layout(self):
        if self.arch == "dsnet":
            return dsnet_layout(tuple(self.dsnet_channels))
        return mobilenetv2_layout("cifar", self.width, self.scheme)


def build_network(config):
    arch = dict(name=config.arch, config="cifar", width=config.width)
    return Network(config.layout(), scheme=config.scheme, seed=config.seed, rounding=config.rounding, arch=arch,
                   multipliers=config.multipliers)
