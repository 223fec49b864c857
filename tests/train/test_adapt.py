"""Domain adaptation: DDAD's loss, and an adapted extractor that the run then uses."""

import copy
import dataclasses
import shutil

import torch
import torch.nn.functional as F

from ddad_edge.model.backbone import FeatureExtractor
from ddad_edge.model.checkpoint import load_run_extractor, open_run
from ddad_edge.train.adapt import adapt_extractor, adaptation_loss


def test_loss_matches_the_formula():
    torch.manual_seed(0)
    frozen = FeatureExtractor("resnet18").eval()  # randomly initialised
    adapted = copy.deepcopy(frozen)
    with torch.no_grad():
        for p in adapted.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x0, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    lam = 0.1

    def d(a, b):
        return (1 - F.cosine_similarity(a, b, dim=1)).mean()

    want = 0
    with torch.no_grad():
        for ax0, ay, fx0, fy in zip(adapted(x0), adapted(y), frozen(x0), frozen(y)):
            want = want + d(ax0, ay) + lam * d(ay, fy) + lam * d(ax0, fx0)
        got = adaptation_loss(adapted, frozen, x0, y, lam)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_adapt_writes_an_extractor_the_run_uses(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    run = open_run(run_dir)
    before = load_run_extractor(run)
    run.cfg = dataclasses.replace(run.cfg, adapt=dataclasses.replace(run.cfg.adapt, max_steps=3, batch_size=8))
    result = adapt_extractor(run, device="cpu", show_progress=False)
    assert result.path == run_dir / "backbone.pt" and result.steps == 3
    after = load_run_extractor(open_run(run_dir))
    diffs = [float((a - b).abs().max()) for a, b in zip(before.parameters(), after.parameters())]
    assert max(diffs) > 0


def _adapt(run_dir, **changes):
    run = open_run(run_dir)
    run.cfg = dataclasses.replace(run.cfg, adapt=dataclasses.replace(run.cfg.adapt, **changes))
    return adapt_extractor(run, device="cpu", show_progress=False)


def test_adapting_again_starts_from_the_original_weights_not_from_backbone_pt(tiny_run, tmp_path):
    import torch as _torch

    from ddad_edge.model.checkpoint import load_checkpoint

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    _adapt(run_dir, max_steps=2, batch_size=8, lr=1e-3)
    first = load_checkpoint(run_dir / "backbone.pt")["state_dict"]
    _adapt(run_dir, max_steps=2, batch_size=8, lr=1e-3)
    second = load_checkpoint(run_dir / "backbone.pt")["state_dict"]
    # The same start, anchor, images and seed: the same result. Compounding moved it on (old code: the
    # second run started from, and was anchored to, the first one's backbone.pt).
    for key in first:
        _torch.testing.assert_close(second[key], first[key], rtol=1e-5, atol=1e-6, msg=key)


def test_max_steps_is_the_exact_number_of_steps(tiny_run, tmp_path):
    from ddad_edge.model.checkpoint import load_checkpoint

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    # 32 training images in batches of 16: 2 steps an epoch, so one epoch alone would stop at 2
    result = _adapt(run_dir, epochs=1, max_steps=3, batch_size=16)
    assert result.steps == 3 and len(load_checkpoint(result.path)["losses"]) == 3


def test_adapt_refuses_negative_steps_in_one_line(tiny_run, tmp_path, capsys):
    from ddad_edge.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    code = main(["adapt", "--run", str(run_dir), "--max-steps", "-1", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "adapt.max_steps" in err and len(err.splitlines()) == 1
    assert not (run_dir / "backbone.pt").exists()
