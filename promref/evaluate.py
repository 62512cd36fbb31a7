"""Accuracy of an integer model on a labelled image set (e.g. CIFAR-10's test set)."""
import numpy as np

from .errors import PromrefError, ShapeError
from .preprocess import pixels_to_int8
from .progress import bar


def evaluate_model(model, images, labels, backend="numba", batch_size=500, quiet=True):
    """Top-1 accuracy and predictions of ``model`` on uint8 images [N, H, W, 3].

    The images must already have the model's input size (CIFAR-10 images for a
    CIFAR model are used as they are).  Returns (accuracy float, int64 [N]
    predicted classes); deterministic, so the figure is exact.  ``quiet=False`` draws a
    progress bar on a terminal.
    """
    images = np.asarray(images)
    expected = (model.input.height, model.input.width, 3)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
        raise ShapeError(f"images must be uint8 [N, {expected[0]}, {expected[1]}, 3], got {images.dtype} {images.shape}")
    predictions = np.empty(len(images), np.int64)
    with bar(len(images), f"evaluate {model.name}", quiet=quiet) as progress:
        for start in range(0, len(images), batch_size):
            logits = model.forward(pixels_to_int8(images[start:start + batch_size]), backend=backend)
            # argmax takes the first maximum: ties go to the lower class index, as in predict()
            predictions[start:start + batch_size] = logits.argmax(axis=1)
            progress.update(len(logits))
    return float((predictions == np.asarray(labels)).mean()), predictions


def compare_with_card(card, accuracy, test_images, dataset):
    """Compare a measured CIFAR-10 top-1 with a model card's recorded figure.

    ``card`` is the card's dict (``weights/mbv2_prom.json``); ``accuracy`` the
    measured top-1 (float, as :func:`evaluate_model` returns it) on
    ``test_images`` images of ``dataset`` (e.g. "CIFAR-10 (JPEG copy)").
    Inference is deterministic, so the comparison is exact equality, not a
    tolerance.  Returns ``(same: bool, message: str)``; ``same`` is None when the
    card's figure is for another image count or data set, so nothing can be
    compared.
    """
    if not isinstance(card, dict) or not isinstance(card.get("integer_top1"), (int, float)):
        raise PromrefError("the model card has no numeric 'integer_top1' field")
    recorded, recorded_n, recorded_dataset = card["integer_top1"], card.get("test_images"), card.get("dataset")
    if recorded_n != test_images or recorded_dataset != dataset:
        return None, (f"model card: {100 * recorded:.2f}% on {recorded_n} images of {recorded_dataset}; "
                      f"not comparable with {test_images} images of {dataset}")
    if accuracy == recorded:
        return True, f"model card: integer_top1 {recorded!r}: reproduced exactly"
    return False, f"model card: integer_top1 {recorded!r}, measured {accuracy!r}: DIFFERENT"
