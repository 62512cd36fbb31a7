"""Progress bars for the long jobs (training, evaluation, conformance, agreement scripts).

One rule, here: a bar is drawn on stderr only when stderr is a terminal, and never with
``quiet``; otherwise :func:`bar` returns a bar that draws nothing, so the jobs' own log
lines stay the record in files and CI logs.  A bar only counts and displays: it never
touches what a job computes.
"""
import sys

from tqdm.auto import tqdm


def bar(total, desc, unit="img", quiet=False, **kwargs):
    """A tqdm bar over ``total`` units, or a silent one (``quiet``, or stderr not a terminal)."""
    disabled = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(total=total, desc=desc, unit=unit, disable=disabled, file=sys.stderr, dynamic_ncols=True,
                leave=False, **kwargs)
