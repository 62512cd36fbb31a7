"""Pictures of an energy report, with matplotlib (an optional extra: imported
only inside these functions; ``pip install matplotlib``).

Both functions draw on a new :class:`matplotlib.figure.Figure` (no pyplot,
so no GUI backend is needed) or on an ``ax`` you pass, and return the figure::

    from promref.energy import report
    from promref.energy.plot import energy_accuracy_plot, cost_split_plot
    rep = report("weights/mbv2_prom.npz")
    energy_accuracy_plot(rep, model_card).savefig("energy_accuracy.png")
    cost_split_plot(rep).savefig("cost_split.png")
"""
from .report import CONFIGS, twin_accuracies

#: colours of the layer kinds in the cost split
KIND_COLOURS = {"stem": "#8c564b", "expand": "#1f77b4", "depthwise": "#ff7f0e", "project": "#2ca02c",
                "last_conv": "#17becf", "add": "#7f7f7f", "pool": "#bcbd22", "classifier": "#9467bd"}
LABELS = {"float32": "float32", "float16": "float16", "int8": "int8", "prom": "PROM"}


def _matplotlib():
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("promref.energy.plot needs matplotlib: pip install matplotlib") from None
    return Figure


def _axes(ax, size):
    if ax is not None:
        return ax.figure, ax
    Figure = _matplotlib()
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def accuracies_from(model_card):
    """{config: accuracy} from a model card dict: either that mapping itself or
    a card with an ``"accuracy"`` mapping (config names as in CONFIGS; 'PROM'
    is accepted for 'prom'); or from a list of the twins' training cards
    (:func:`~promref.energy.report.twin_accuracies`), in percent."""
    if isinstance(model_card, (list, tuple)):
        return {c: 100 * a["top1"] for c, a in twin_accuracies(model_card).items()}
    acc = model_card.get("accuracy", model_card) if isinstance(model_card, dict) else None
    if not isinstance(acc, dict):
        raise ValueError("model card must be a dict of {config: accuracy} or have an 'accuracy' dict")
    out = {}
    for name, value in acc.items():
        key = str(name).lower()
        if key in CONFIGS and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    if not out:
        raise ValueError(f"model card has no accuracy for any of {CONFIGS}")
    return out


def energy_accuracy_plot(report, model_card, configs=CONFIGS, ax=None, title=None):
    """Energy per image (log scale) against accuracy, one point per configuration
    that the model card has an accuracy for -> Figure.  ``model_card``: see
    :func:`accuracies_from`; with the twins' cards each point carries its 95 %
    interval as an error bar."""
    acc = accuracies_from(model_card)
    intervals = twin_accuracies(model_card) if isinstance(model_card, (list, tuple)) else {}
    fig, ax = _axes(ax, (5, 3.6))
    points = [(c, report.energy_pj(c) * 1e-6, acc[c]) for c in configs if c in acc]
    if not points:
        raise ValueError(f"model card has no accuracy for any of {configs}")
    for config, energy, accuracy in points:
        ax.scatter([energy], [accuracy], s=50, zorder=3, label=LABELS.get(config, config))
        ci = intervals.get(config, {}).get("ci95", [])
        if len(ci) == 2:
            ax.errorbar([energy], [accuracy], yerr=[[accuracy - 100 * ci[0]], [100 * ci[1] - accuracy]],
                        fmt="none", ecolor="0.4", capsize=3, zorder=2)
        ratio = report.energy_ratio(config)
        ax.annotate(f"{LABELS.get(config, config)}  ({ratio:.1f}x less than float16)" if config != "float16"
                    else "float16", (energy, accuracy), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if len(points) > 1:
        ordered = sorted(points, key=lambda p: p[1])
        ax.plot([p[1] for p in ordered], [p[2] for p in ordered], color="0.7", lw=1, zorder=1)
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.15)
    ax.set_xlabel(f"arithmetic energy per image [uJ] ({report.table.name})")
    ax.set_ylabel("top-1 accuracy [%]" if intervals else "top-1 accuracy")
    ax.set_title(title or f"energy vs accuracy ({report.accounting.name} accounting)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def cost_split_plot(report, configs=("float16", "int8", "prom"), metric="energy", relative=True, ax=None,
                    title=None):
    """Stacked bar per configuration of ``metric`` ('energy' or 'storage') by
    layer kind; ``relative``: shares in percent (absolute totals written on
    top) -> Figure."""
    if metric not in ("energy", "storage"):
        raise ValueError(f"metric must be 'energy' or 'storage', got {metric!r}")
    fig, ax = _axes(ax, (5, 3.6))
    split = {c: report.by_kind(metric, c) for c in configs}
    kinds = list(split[configs[0]])
    totals = {c: sum(split[c].values()) for c in configs}
    bottoms = [0.0] * len(configs)
    xs = range(len(configs))
    for kind in kinds:
        # shares in percent, or pJ -> uJ and bytes -> MB
        values = [split[c][kind] / totals[c] * 100 if relative else split[c][kind] * 1e-6 for c in configs]
        ax.bar(xs, values, bottom=bottoms, color=KIND_COLOURS.get(kind), label=kind, width=0.6)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    unit = "uJ" if metric == "energy" else "MB"
    for x, c, top in zip(xs, configs, bottoms):
        ax.annotate(f"{totals[c] * 1e-6:.3g} {unit}", (x, top), textcoords="offset points", xytext=(0, 2),
                    ha="center", fontsize=8)
    ax.set_xticks(list(xs), [LABELS.get(c, c) for c in configs])
    ax.set_ylabel(f"share of {metric} [%]" if relative else f"{metric} per image [{unit}]")
    if relative:
        ax.set_ylim(0, 110)
    ax.set_title(title or f"{metric} by layer kind ({report.accounting.name} accounting)", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()  # legend top to bottom as the stack
    ax.legend(handles[::-1], labels[::-1], fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig
