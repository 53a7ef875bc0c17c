"""S_β of eq. (9) and the explainer's worked examples."""

import torch

from attacks import project_shrink
from attacks.ead import elastic_net


def eq9_literal(z: torch.Tensor, x0: torch.Tensor, beta: float) -> torch.Tensor:
    out = torch.empty_like(z)
    for i in range(z.numel()):
        zi, xi = z.view(-1)[i].item(), x0.view(-1)[i].item()
        if zi - xi > beta:
            out.view(-1)[i] = min(zi - beta, 1.0)
        elif zi - xi < -beta:
            out.view(-1)[i] = max(zi + beta, 0.0)
        else:
            out.view(-1)[i] = xi
    return out


def test_shrinkage_matches_eq9_elementwise_including_box_edges():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4000, generator=g, dtype=torch.float64)
    x0[:500] = 0.0  # pixels at the box edges
    x0[500:1000] = 1.0
    z = x0 + (torch.rand(4000, generator=g, dtype=torch.float64) - 0.5) * 0.6  # steps that leave the box too
    for beta in (0.0, 1e-3, 0.05, 0.2):
        expected = eq9_literal(z, x0, beta)
        assert torch.equal(project_shrink(z, x0, beta), expected), beta


def test_worked_example_penalties():
    # Explainer, worked example 1: equal squared ℓ2, different ℓ1.
    l1_a, l2sq_a, _ = elastic_net(torch.tensor([[0.1, 0.1, 0.1, 0.1]], dtype=torch.float64), beta=0.0)
    l1_b, l2sq_b, _ = elastic_net(torch.tensor([[0.2, 0.0, 0.0, 0.0]], dtype=torch.float64), beta=0.0)
    assert torch.allclose(l1_a, torch.tensor([0.4], dtype=torch.float64))
    assert torch.allclose(l1_b, torch.tensor([0.2], dtype=torch.float64))
    assert torch.allclose(l2sq_a, torch.tensor([0.04], dtype=torch.float64))
    assert torch.allclose(l2sq_b, l2sq_a)


def test_worked_example_soft_threshold_step():
    # Explainer, worked example 2: x = 0.50, z = 0.57, threshold 0.03 → 0.54.
    out = project_shrink(torch.tensor([0.57], dtype=torch.float64), torch.tensor([0.50], dtype=torch.float64), 0.03)
    assert abs(out.item() - 0.54) < 1e-12
    # Within the threshold the pixel snaps back to the clean value exactly.
    out = project_shrink(torch.tensor([0.52]), torch.tensor([0.50]), 0.03)
    assert out.item() == 0.5
