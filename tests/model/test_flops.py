"""`model-info`: sizes, step counts and backbones it cannot count are one line, not a traceback or a
silently different model."""

import pytest

from ddad_edge.cli import main


@pytest.mark.parametrize("args, words", [
    (("--preset", "tiny", "--image-size", "30"), "--image-size 30 does not fit preset tiny"),
    (("--preset", "tiny", "--image-size", "6"), "--image-size 6 does not fit preset tiny"),
    (("--preset", "tiny", "--image-size", "0"), "--image-size 0"),
    (("--preset", "ddad-s", "--image-size", "0"), "--image-size 0"),
    (("--preset", "tiny", "--steps", "-2"), "--steps -2"),
    (("--preset", "tiny", "--steps", "0"), "--steps 0"),
    (("--preset", "tiny", "--backbone", "vgg16"), "--backbone 'vgg16'"),
])
def test_model_info_refuses_what_it_cannot_count_in_one_line(capsys, args, words):
    code = main(["model-info", *args])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1 and words in err, err
    assert captured.out == ""
