"""The model registry: bundled ImageNet model on real samples, torchvision weights through the cache."""

from __future__ import annotations

import pytest
import torch

from advlens.images import gallery, load_image
from advlens.models import REGISTRY, ModelUnavailable, get_spec, load_model
from attacks import ead

# Measured: EfficientNet-Lite0 gets 17 of foolbox's 20 bundled ImageNet samples right (see README).
EFFICIENTNET_SAMPLES_CORRECT = 17


def test_registry_names_and_facts():
    assert {"mnist-cnn", "efficientnet-lite0", "resnet50", "inception-v3"} <= set(REGISTRY)
    assert get_spec("inception-v3").input_size == (299, 299)
    assert get_spec("mnist-cnn").channels == 1 and get_spec("mnist-cnn").num_classes == 10
    assert get_spec("efficientnet-lite0").num_classes == 1000
    with pytest.raises(ModelUnavailable, match="Unknown model"):
        get_spec("vgg-nonexistent")


def test_efficientnet_classifies_the_bundled_imagenet_samples(efficientnet):
    spec = get_spec("efficientnet-lite0")
    samples = [g for g in gallery("imagenet") if g.label is not None][:20]
    x = torch.cat([load_image(g.ref, spec).tensor for g in samples])
    labels = torch.tensor([g.label for g in samples])
    with torch.no_grad():
        correct = (efficientnet(x).argmax(1) == labels).sum().item()
    assert correct >= EFFICIENTNET_SAMPLES_CORRECT


def test_ead_on_an_imagenet_sample_succeeds_on_cpu(efficientnet):
    spec = get_spec("efficientnet-lite0")
    image = load_image("imagenet:7", spec)
    label = torch.tensor([image.label])
    target = torch.tensor([(image.label + 500) % 1000])
    # Reduced budget for CPU: a large initial c and few iterations (the EAD authors' tip for speed).
    result = ead(efficientnet, image.tensor, label, target, binary_search_steps=2, steps=60, initial_const=1.0)
    assert result.success.all()
    assert efficientnet(result.adversarial).argmax(1).item() == target.item()


def test_torchvision_weights_load_from_the_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    file = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    file.parent.mkdir(parents=True)
    reference = torchvision.models.resnet50()
    torch.save(reference.state_dict(), file)
    model = load_model("resnet50")
    x = torch.rand(1, 3, 224, 224)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        # NHWC and NCHW convolutions round differently: logits of up to ~50 agree to ~1e-5 relative.
        assert torch.allclose(model(x), reference.eval()((x - mean) / std), rtol=1e-4, atol=1e-4)


def test_missing_torchvision_weights_name_the_file_to_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    try:
        load_model("inception-v3")
    except ModelUnavailable as err:
        message = str(err)
        assert "inception_v3_google-" in message and str(tmp_path) in message and "\n" not in message
    else:  # a machine with the network downloads them: then the model must work
        assert (tmp_path / "hub" / "checkpoints").exists()
