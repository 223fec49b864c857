"""The README's account of the demo names the adaptation steps the demo really runs (adapt --max-steps is
exact, so the number the demo passes is the number it gets). Cheap: nothing is trained here."""

from __future__ import annotations

import re
from pathlib import Path

from ddad_edge.demo import ADAPT_STEPS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_gives_the_demos_adaptation_steps():
    text = README.read_text()
    said = [int(n) for n in re.findall(r"(\d+) adaptation steps", text)]
    said += [int(n) for n in re.findall(r"after `ddad-edge adapt` \((\d+) steps\)", text)]
    assert len(said) >= 2, "the README no longer says how many steps the demo adapts for"
    assert set(said) == {ADAPT_STEPS}, (said, ADAPT_STEPS)
