"""SGD with (optionally Nesterov) momentum and classic L2 weight decay, and a cosine schedule."""
import math

import numpy as np


def cosine_lr(base_lr, step, total_steps, warmup_steps=0, final_lr=0.0):
    """Learning rate at ``step``: linear warm-up, then cosine from base_lr to final_lr."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * min(t, 1.0)))


class SGD:
    """PyTorch's SGD (dampening 0): d = g + wd * w;  v = momentum * v + d;
    w -= lr * v, or with ``nesterov`` w -= lr * (d + momentum * v).

    Weight decay applies to conv/linear weights only, not to batch-norm
    parameters or biases.
    """

    def __init__(self, parameters, momentum=0.9, weight_decay=5e-4, nesterov=False):
        self.parameters = parameters  # [(key, array, is_weight)]
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.velocity = {key: np.zeros_like(p) for key, p, _ in parameters}

    def step(self, gradients, lr):
        for key, p, is_weight in self.parameters:
            g = gradients[key]
            if is_weight and self.weight_decay:
                g = g + np.float32(self.weight_decay) * p
            v = self.velocity[key]
            v *= np.float32(self.momentum)
            v += g
            if self.nesterov:  # look ahead along the updated velocity
                p -= np.float32(lr) * (g + np.float32(self.momentum) * v)
            else:
                p -= np.float32(lr) * v

    def state_dict(self):
        return {f"velocity/{k}": v for k, v in self.velocity.items()}

    def load_state_dict(self, state):
        for k, v in self.velocity.items():
            v[...] = state[f"velocity/{k}"]
