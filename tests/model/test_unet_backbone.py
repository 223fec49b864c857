"""UNet sizes and shapes, feature extractors' torchvision-compatible layout, weight loading."""

import pytest
import torch

from ddad_edge.config_presets import model_preset
from ddad_edge.errors import DdadError
from ddad_edge.model.backbone import FeatureExtractor, load_backbone
from ddad_edge.model.flops import model_costs
from ddad_edge.model.unet import UNet, count_parameters


def test_ddad_s_size_and_cost_at_256():
    costs = model_costs("ddad-s", 256, backbone="none", steps=10)
    assert 8.0e6 <= costs["unet_params"] <= 8.5e6
    assert costs["gflops_per_call"] == pytest.approx(36.5, rel=0.02)


def test_ddad_is_larger_than_ddad_s():
    assert count_parameters(UNet(model_preset("ddad", 256))) > 3 * count_parameters(UNet(model_preset("ddad-s", 256)))


@pytest.mark.parametrize("size", [32, 64])
def test_tiny_unet_shapes_and_zero_init(size):
    unet = UNet(model_preset("tiny", size)).eval()
    x = torch.randn(2, 3, size, size)
    out = unet(x, torch.tensor([10.0, 900.0]))
    assert out.shape == x.shape
    # The output convolution starts at zero, so an untrained network predicts no noise at all.
    assert out.abs().max() == 0


def test_unet_depends_on_time():
    torch.manual_seed(0)
    unet = UNet(model_preset("tiny", 32)).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        x = torch.randn(1, 3, 32, 32)
        a, b = unet(x, torch.tensor([5.0])), unet(x, torch.tensor([500.0]))
    assert (a - b).abs().max() > 1e-4


def test_resnet18_matches_torchvision_layout():
    ext = FeatureExtractor("resnet18")
    # torchvision's resnet18 has 11,689,512 parameters; layer4 holds 8,393,728 and fc 513,000.
    assert count_parameters(ext) == 11_689_512 - 8_393_728 - 513_000
    keys = set(ext.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer3.1.bn2.num_batches_tracked"} <= keys
    assert not any(k.startswith(("layer4", "fc")) for k in keys)


@pytest.mark.parametrize("name,channels", [("resnet18", (64, 128, 256)), ("wide_resnet50_2", (256, 512, 1024))])
def test_feature_shapes(name, channels):
    f1, f2, f3 = FeatureExtractor(name).eval()(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in (f1, f2, f3)] == list(channels)
    assert [f.shape[-1] for f in (f1, f2, f3)] == [16, 8, 4]


def test_weights_from_file_ignore_layer4_and_fc(tmp_path):
    src = FeatureExtractor("resnet18")
    with torch.no_grad():
        src.conv1.weight.fill_(0.5)
    state = dict(src.state_dict())
    state["layer4.0.conv1.weight"] = torch.zeros(1)
    state["fc.weight"] = torch.zeros(1)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    loaded = load_backbone("resnet18", str(path))
    assert torch.all(loaded.conv1.weight == 0.5)


def test_weights_of_another_backbone_are_one_line(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(FeatureExtractor("resnet50").state_dict(), path)
    with pytest.raises(DdadError, match="do not fit resnet18"):
        load_backbone("resnet18", str(path))
    with pytest.raises(DdadError, match="not found"):
        load_backbone("resnet18", str(tmp_path / "missing.pth"))


def test_random_weights_warn():
    with pytest.warns(UserWarning, match="random weights"):
        load_backbone("resnet18", "none")


def test_random_backbone_weights_are_the_same_in_every_stage():
    import warnings

    from ddad_edge.model.backbone import load_backbone

    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = load_backbone("resnet18", "none").state_dict()
        after_first = torch.rand(1)
        torch.manual_seed(1)
        torch.rand(5)  # another global state: the same network still
        b = load_backbone("resnet18", "none").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(1), after_first)  # the caller's random stream is left alone
