"""A trainable network: units in execution order, forward/backward over the graph,
state (parameters, batch-norm statistics, activation ranges) and export.

The graph is the same flat list the engine runs (``LayerShape`` records from
:func:`promref.architectures.mobilenetv2_layout` or :func:`~promref.architectures.dsnet_layout`).  Inputs are
uint8 images [N, H, W, 3]; the network sees ``q = pixel - 128`` as the real
value ``q / 128`` (input scale 1/128, zero point 0).
"""
import numpy as np

from .. import arith
from ..kernels import fast
from ..preprocess import pixels_to_int8
from ..architectures import CIFAR10_LABELS, SCHEMES
from ..model import InputSpec, Model
from ..validate import validate
from .units import CHANNEL_MAJOR, AddUnit, ConvUnit, LinearUnit, PoolUnit, QTensor, qat_kernels

INPUT_SCALE = 1.0 / 128.0
INPUT_ZERO_POINT = 0


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """Mean cross-entropy of float logits [N, K] against int labels [N] -> (loss,
    dlogits float32 [N, K], correct count).

    With ``label_smoothing`` e the target is (1 - e) * one_hot + e / K (as in
    PyTorch's ``CrossEntropyLoss(label_smoothing=e)``).
    """
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    total = p.sum(axis=1, keepdims=True)
    p /= total
    n = labels.shape[0]
    log_total = np.log(total[:, 0])
    loss = (log_total - z[np.arange(n), labels]).mean()  # logsumexp(z) - z[label]
    if label_smoothing:
        e, k = float(label_smoothing), logits.shape[1]
        loss = (1.0 - e) * loss + e * (log_total - z.mean(axis=1)).mean()  # + e * mean_k(-log p_k)
        p -= e / k
        p[np.arange(n), labels] -= 1.0 - e
    else:
        p[np.arange(n), labels] -= 1.0
    correct = int((logits.argmax(axis=1) == labels).sum())
    return float(loss), (p / n).astype(np.float32), correct


class Network:
    """Units built from a layout; ``scheme`` ('prom' or 'int8') picks the ternary kinds."""

    def __init__(self, layout, scheme="prom", seed=0, labels=CIFAR10_LABELS, rounding=arith.DEFAULT_ROUNDING,
                 arch=None, multipliers="float64"):
        rng = np.random.default_rng(seed)
        ternary = SCHEMES[scheme]
        self.layout, self.scheme, self.labels, self.rounding = layout, scheme, tuple(labels), rounding
        self.arch = dict(arch or {}, scheme=scheme)
        self.size = (layout[0].in_size, layout[0].in_size)
        self.units = []
        for shape in layout:
            if shape.op in ("conv2d", "depthwise_conv2d", "pointwise_ternary"):
                self.units.append(ConvUnit(shape, shape.kind in ternary and shape.kernel == 1, rng))
            elif shape.op == "add":
                self.units.append(AddUnit(shape))
            elif shape.op == "global_avgpool":
                self.units.append(PoolUnit(shape))
            else:
                self.units.append(LinearUnit(shape, rng))
        for unit in self.units:
            unit.multipliers = multipliers  # units.MULTIPLIER_RULES

    # -- running ---------------------------------------------------------------

    def forward(self, images, mode="float", training=False, backend="numba", quantized_weights=False):
        """uint8 images [N, H, W, 3] -> real-valued logits float32 [N, K].

        mode 'float' or 'qat'; in 'qat' the int8 logits are kept in ``self.int8_logits``.
        """
        q = pixels_to_int8(images)
        ops = None   # the integer kernels, QAT mode only
        if mode == "float":
            tensors = {"input": q.astype(np.float32) * np.float32(INPUT_SCALE)}
        else:
            ops, layout = qat_kernels(backend)
            codes = fast.to_channel_major(q) if layout == CHANNEL_MAJOR else q
            tensors = {"input": QTensor(codes, INPUT_SCALE, INPUT_ZERO_POINT, layout)}
        for unit in self.units:
            inputs = [tensors[name] for name in unit.inputs]
            tensors[unit.name] = unit.forward(inputs, mode, training, ops, self.rounding, quantized_weights)
        out = tensors[self.units[-1].name]
        if mode == "float":
            return out
        self.int8_logits = out.q
        return out.real()

    def backward(self, dlogits, mode="float"):
        """Accumulate parameter gradients from dL/dlogits [N, K] (after a training forward)."""
        grads = {self.units[-1].name: dlogits}
        for unit in reversed(self.units):
            dy = grads.pop(unit.name)
            dxs = unit.backward(dy, mode, need_dx=unit.inputs[0] != "input")
            for name, dx in zip(unit.inputs, dxs):
                if name == "input":
                    continue
                grads[name] = grads[name] + dx if name in grads else dx

    def use_batch_statistics(self, on):
        """QAT training steps fold each batch's statistics (``on``) or the running ones (ConvUnit.forward_qat)."""
        for unit in self.units:
            unit.use_batch_statistics(on)

    def zero_grad(self):
        for unit in self.units:
            unit.zero_grad()

    # -- state -----------------------------------------------------------------

    def parameters(self):
        """[(key, array, is_weight)] of every trainable array (weights get weight decay)."""
        return [(f"{u.name}/{k}", v, k == "w") for u in self.units for k, v in u.params.items()]

    def gradients(self):
        return {f"{u.name}/{k}": u.grads[k] for u in self.units for k in u.params}

    def state_dict(self):
        """Every array that defines the network (params, BN buffers, ranges)."""
        state = {}
        for u in self.units:
            for k, v in u.params.items():
                state[f"{u.name}/param/{k}"] = v
            for k, v in u.buffers.items():
                state[f"{u.name}/buffer/{k}"] = v
            if hasattr(u, "observer"):
                state[f"{u.name}/observer"] = u.observer.state()
        return state

    def load_state_dict(self, state):
        for u in self.units:
            for k in u.params:
                u.params[k][...] = state[f"{u.name}/param/{k}"]
            for k in u.buffers:
                u.buffers[k][...] = state[f"{u.name}/buffer/{k}"]
            if hasattr(u, "observer"):
                u.observer.load(state[f"{u.name}/observer"])

    # -- export ----------------------------------------------------------------

    def export(self, name, metadata=None, backend="numba"):
        """The integer :class:`~promref.model.Model` this network stands for.

        Runs one QAT forward in eval mode and collects the Layer records the
        units built for it: export and the QAT forward share every integer.
        """
        h, w = self.size
        self.forward(np.zeros((1, h, w, 3), np.uint8), mode="qat", training=False, backend=backend)
        layers = [unit.layer for unit in self.units]
        spec = InputSpec(height=h, width=w, resize=h, resample="bilinear", scale=INPUT_SCALE,
                         zero_point=INPUT_ZERO_POINT, mean=(128 / 255,) * 3, std=(128 / 255,) * 3)
        model = Model(name=name, input=spec, layers=layers, labels=self.labels, rounding=self.rounding,
                      arch=self.arch, metadata=dict(metadata or {}))
        return validate(model)
