"""Accuracy of an integer model on a labelled image set (e.g. CIFAR-10's test set)."""
import numpy as np

from .errors import ShapeError
from .preprocess import pixels_to_int8


def evaluate_model(model, images, labels, backend="numba", batch_size=500):
    """Top-1 accuracy and predictions of ``model`` on uint8 images [N, H, W, 3].

    The images must already have the model's input size (CIFAR-10 images for a
    CIFAR model are used as they are).  Returns (accuracy float, int64 [N]
    predicted classes); deterministic, so the figure is exact.
    """
    images = np.asarray(images)
    expected = (model.input.height, model.input.width, 3)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
        raise ShapeError(f"images must be uint8 [N, {expected[0]}, {expected[1]}, 3], got {images.dtype} {images.shape}")
    predictions = np.empty(len(images), np.int64)
    for start in range(0, len(images), batch_size):
        logits = model.forward(pixels_to_int8(images[start:start + batch_size]), backend=backend)
        # argmax takes the first maximum: ties go to the lower class index, as in predict()
        predictions[start:start + batch_size] = logits.argmax(axis=1)
    return float((predictions == np.asarray(labels)).mean()), predictions
