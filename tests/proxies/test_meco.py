"""meco against numpy eigenvalues of explicitly built channel correlations."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _nets import Small as SmallBN
from torch import nn

from searchkd.proxies import Scorer, get_proxy
from searchkd.proxies.meco import min_eig_corr
from searchkd.spaces._net import ClassifierNet


class Small(ClassifierNet):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
        self.classifier = nn.Linear(5, 3)

    def forward_features(self, x):
        return self.body(x)


def np_min_eig(fmap):
    f = fmap.reshape(fmap.shape[0], -1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(f)
    corr[~np.isfinite(corr)] = 0.0
    return float(np.min(np.real(np.linalg.eig(corr)[0])))


def test_meco_sums_min_eigenvalue_of_every_module_output():
    torch.manual_seed(0)
    net = Small()
    with torch.no_grad():
        net.body[0].weight[2].zero_()  # a constant channel: NaN correlations become 0
    x = torch.randn(4, 3, 6, 6)
    with torch.no_grad():
        conv = net.body[0](x[:1])[0].numpy()
    relu = np.maximum(conv, 0)
    # modules: the net (logits: not a map → 0), body (= relu output), conv, relu, classifier (→ 0)
    expected = np_min_eig(conv) + 2 * np_min_eig(relu)
    value = get_proxy("meco").fn(copy.deepcopy(net), (x, torch.zeros(4, dtype=torch.long)), None)
    assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("net_cls", [Small, SmallBN], ids=["no_bn", "bn"])
def test_meco_uses_only_the_first_image(net_cls):
    torch.manual_seed(1)
    net = net_cls()
    x = torch.randn(4, 3, 6, 6)
    y = x.clone()
    y[1:] = torch.randn(3, 3, 6, 6)
    fn = get_proxy("meco").fn
    assert fn(copy.deepcopy(net), (x, None), None) == fn(copy.deepcopy(net), (y, None), None)


def test_meco_forwards_the_first_image_alone_through_batchnorm():
    # in train mode BN normalises with the statistics of what it is given, so the first
    # image's maps differ when it is forwarded alone (MeCo's batch of one) and when the whole
    # batch is forwarded and its first row kept; the ReLU after BN makes MeCo see the difference
    torch.manual_seed(2)
    net = SmallBN()
    x = torch.randn(4, 3, 6, 6)

    def first_maps(images):
        n = copy.deepcopy(net).train()
        with torch.no_grad():
            conv1 = n.conv1(images)
            bn1 = n.bn1(conv1)
            conv2 = n.conv2(F.relu(bn1))
        return [m[0].numpy() for m in (conv1, bn1, conv2)]

    # modules: the net and the classifier give logits (not maps → 0), then conv1, bn1, conv2
    alone = sum(np_min_eig(m) for m in first_maps(x[:1]))
    in_batch = sum(np_min_eig(m) for m in first_maps(x))
    assert not math.isclose(alone, in_batch, rel_tol=1e-3)
    value = get_proxy("meco").fn(copy.deepcopy(net), (x, torch.zeros(4, dtype=torch.long)), None)
    assert math.isclose(value, alone, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.gpu
def test_meco_scores_on_cuda_equal_those_on_cpu():
    from searchkd.spaces import get_space
    from searchkd.spaces.nb201 import BEST_CIFAR10_CELL

    torch.manual_seed(3)
    net = SmallBN()
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(4, 3, 32, 32, generator=g), torch.arange(4) % 3)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # TF32 rounds to 10 bits
    try:
        scores = {}
        for device in ("cpu", "cuda"):
            scorer = Scorer(["meco"], batch, num_classes=3, seed=0, device=device)
            # a module moved to the device, and an arch built under the seed then moved
            arch = scorer.score_arch(get_space("nb201"), BEST_CIFAR10_CELL)["scores"]["meco"]
            scores[device] = (scorer.score_net(net)["meco"], arch)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert scores["cuda"] == pytest.approx(scores["cpu"], rel=1e-4, abs=1e-5)


def test_min_eig_corr_matches_eigvalsh():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(6, 20))
    assert math.isclose(min_eig_corr(torch.from_numpy(f)), float(np.linalg.eigvalsh(np.corrcoef(f))[0]), rel_tol=1e-10)
    assert min_eig_corr(torch.zeros(4, 3, 3)) == 0.0
