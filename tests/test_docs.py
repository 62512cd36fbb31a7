"""Figures the documents repeat from the code agree with the code."""
import pathlib
import re

from promref.train.cli import DEMO, build_parser

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_demo_subset_size_is_stated_as_the_code_has_it():
    """``promref train --demo``: its help, docs/training.md and the README name DEMO's subset."""
    size = f"{DEMO['train_subset']:,}"
    help_text = build_parser().format_help()
    assert re.search(rf"{size}-image\s+subset", help_text)
    training = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    assert f"the demo: a small depthwise-separable net on a {size}-image subset" in training
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    demo_line = next(line for line in readme.splitlines() if line.startswith("promref train --demo"))
    assert f"{size} CIFAR-10 images" in demo_line
    for text in (help_text, training, readme):
        other = {f"{n:,}-image" for n in (10_000, 20_000, 50_000)} - {f"{size}-image"}
        assert not any(o in text for o in other)
