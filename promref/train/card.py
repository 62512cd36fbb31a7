"""The model card a training run writes next to its ``.npz`` (``promref train --out``).

A card says what was trained and how well, so that a reader can reproduce and judge it:
the command (without this machine's paths), the configuration (recipe, seed, epochs), the
data set, the hardware, the training time summed over every resumed process, each epoch's
figures, and the accuracies with their 95 % Clopper-Pearson intervals
(:func:`promref.stats.accuracy_interval`).  Where the twins' predictions on the same test
images are at hand -- the float network the QAT phase started from (``--init-from``), other
trained models (``--compare-with``) -- it adds the exact McNemar test of each pair
(:func:`promref.stats.mcnemar`), so the card says whether a difference is real.
"""
import numpy as np

from ..stats import accuracy_interval, mcnemar

#: the significance level the cards' "differ" verdict uses
ALPHA = 0.05


def accuracy_record(correct, images):
    """{top1, correct, images, ci95: [low, high]} of ``correct`` right answers on ``images`` images."""
    interval = accuracy_interval(correct, images)
    return dict(top1=correct / images, correct=int(correct), images=int(images), ci95=[interval.low, interval.high])


def _correct(predictions, labels):
    return int((np.asarray(predictions) == np.asarray(labels)).sum())


def paired_record(name_a, predictions_a, name_b, predictions_b, labels):
    """The exact McNemar test of models A and B on the same images, as a card entry."""
    test = mcnemar(predictions_a, predictions_b, labels)
    return dict(a=name_a, b=name_b, only_a=test.only_a, only_b=test.only_b, both=test.both, neither=test.neither,
                p_value=test.p_value, differ=bool(test.p_value < ALPHA),
                test=f"exact McNemar (two-sided binomial on the discordant images), alpha {ALPHA}")


def model_card(model, config, run, labels, integer_predictions, float_predictions=None, twins=()):
    """The card (a JSON-ready dict) of a trained, exported ``model``.

    config: the TrainConfig as a dict; run: dict(command, dataset, history, wall_time_s,
    resumed_after_epoch, hardware, float_phase_from); labels int [N]; integer_predictions
    int [N] of ``model``; float_predictions int [N] of the float network the QAT phase
    started from, or None (then the float top-1 is the history's last float epoch's, without
    a paired test); twins: [(name, predictions int [N])] of other models on the same images.
    """
    history = run["history"]
    integer = accuracy_record(_correct(integer_predictions, labels), len(labels))
    name = f"{config['scheme']} integer"
    card = dict(model=model.name, scheme=config["scheme"], command=run["command"], config=config,
                seed=config["seed"], epochs=dict(float=config["epochs_float"], qat=config["epochs_qat"]),
                dataset=run["dataset"], test_images=len(labels), integer_top1=integer["top1"], integer=integer)
    if float_predictions is not None:
        card["float"] = accuracy_record(_correct(float_predictions, labels), len(labels))
        card["float_top1"] = card["float"]["top1"]
    else:  # the history's test accuracies are counts over the same test images
        float_acc = next((h["test_acc"] for h in reversed(history) if h["phase"] == "float"), None)
        card["float_top1"] = float_acc
        if float_acc is not None:
            card["float"] = accuracy_record(round(float_acc * len(labels)), len(labels))
    card["confidence_interval"] = "95 % Clopper-Pearson (exact binomial)"
    paired = [] if float_predictions is None else [paired_record(name, integer_predictions, "float twin",
                                                                 float_predictions, labels)]
    paired += [paired_record(name, integer_predictions, twin, predictions, labels) for twin, predictions in twins]
    card["paired_tests"] = paired
    card.update(float_phase_from=run.get("float_phase_from"),
                # a long run resumes across processes: the epochs' own training time is the total,
                # the wall time is this (last) process's, which started after `resumed_after_epoch`
                training_time_s=round(sum(h["seconds"] for h in history), 1),
                wall_time_s=run["wall_time_s"], resumed_after_epoch=run["resumed_after_epoch"],
                hardware=run["hardware"], history=history)
    return card
