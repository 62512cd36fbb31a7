"""Autograd-free quantization-aware training for PROM networks on CIFAR-10.

Every layer's backward pass is written out by hand (units.py); the QAT
forward runs the integer engine's own kernels, so the trained network and its
export agree bit for bit.
"""
from .loop import TrainConfig, evaluate, train
from ..architectures import dsnet_layout
from .network import Network

__all__ = ["TrainConfig", "train", "evaluate", "Network", "dsnet_layout"]
