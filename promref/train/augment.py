"""Training augmentation: random crop with padding and horizontal flip, seeded."""
import numpy as np


def crop_flip(images, rng, pad=4, fill=128):
    """uint8 [N, H, W, 3] -> same shape: pad by ``pad`` with ``fill`` (the real value 0
    of the network's input), take a random HxW crop, flip half the images."""
    n, h, w, c = images.shape
    padded = np.full((n, h + 2 * pad, w + 2 * pad, c), fill, np.uint8)
    padded[:, pad:pad + h, pad:pad + w] = images
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(images)
    for i in range(n):
        crop = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop[:, ::-1] if flip[i] else crop
    return out
