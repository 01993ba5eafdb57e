"""The NB201 network is a real, trainable network."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archgen.hardware import count_flops, count_parameters
from conftest import BEST_C10


def digits_32x32(seed=0):
    """scikit-learn's bundled 8x8 digits, upsampled to 32x32 RGB and split 80/20."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))
    return x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]


def test_published_parameter_counts(nb201):
    # NAS-Bench-201 reports 0.073 MB (all-none) to 1.531 MB (all conv3x3) for CIFAR-10
    assert count_parameters(nb201.to_module(nb201.format(["none"] * 6))) == 73306
    assert count_parameters(nb201.to_module(nb201.format(["nor_conv_3x3"] * 6))) == 1531546


def test_forward_shapes_and_flops(nb201):
    m = nb201.to_module(BEST_C10, num_classes=100)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    # 184.7 M multiply-adds for this cell at 32x32 with 100 classes
    assert count_flops(m, (1, 3, 32, 32)) / 2 == pytest.approx(184.73e6, rel=0.001)


def test_bad_module_options(nb201):
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        nb201.to_module(BEST_C10, num_classes=0)


def test_nb201_network_learns_digits(nb201):
    torch.manual_seed(0)
    xtr, ytr, xte, yte = digits_32x32()
    # the benchmark cell in a narrower, shallower network (C=8, N=1) to keep CPU time low
    model = nb201.to_module(BEST_C10, num_classes=10, channels=8, cells_per_stage=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    model.train()
    for step in range(300):
        idx = torch.randint(0, len(ytr), (64,), generator=g)
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    assert np.mean(losses[-30:]) < 0.5 * np.mean(losses[:30])
    assert acc > 0.7, f"test accuracy {acc:.3f} (chance is 0.1)"
