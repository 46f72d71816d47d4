"""The NB201 DARTS supernet: mixed ops, derivation, inherited-weight forward, HVP and sharpness."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from searchkd.spaces._nb201_net import InferCell  # noqa: E402
from searchkd.spaces.nb201 import OPS, NB201Space, parse_cell  # noqa: E402
from searchkd.supernets.nb201_supernet import (  # noqa: E402
    MixedCell, MixedOp, NB201Supernet, derive, dominant_eigenvalue, frozen_stats, hvp, second_order_alpha_grad)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.mark.parametrize("o", range(len(OPS)))
def test_mixed_op_with_one_hot_weights_is_the_chosen_op(o):
    torch.manual_seed(0)
    op = MixedOp(4).train()
    x = torch.randn(3, 4, 8, 8)
    w = torch.zeros(len(OPS))
    w[o] = 1.0
    assert torch.allclose(op(x, w), op.ops[o](x), atol=1e-6)
    assert torch.equal(op(x, index=o), op.ops[o](x))


def test_mixed_op_is_the_weighted_sum():
    torch.manual_seed(1)
    op = MixedOp(4)
    x = torch.randn(2, 4, 6, 6)
    w = torch.softmax(torch.randn(len(OPS)), 0)
    want = sum(w[i] * op.ops[i](x) for i in range(len(OPS)))
    assert torch.allclose(op(x, w), want, atol=1e-6)


def test_derive_picks_the_argmax_of_every_edge():
    a = torch.zeros(6, 5)
    picks = [3, 0, 4, 1, 2, 0]
    for k, o in enumerate(picks):
        a[k, o] = 1.0 + k
    cell = derive(a)
    assert parse_cell(cell) == picks
    assert cell == "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    assert NB201Space().validate(cell) == cell


def test_hard_forward_is_the_derived_cell_with_inherited_weights():
    torch.manual_seed(2)
    cell = MixedCell(4)
    ops = [3, 1, 2, 0, 4, 3]
    fixed = InferCell(ops, 4, affine=False, track=False)
    for k, o in enumerate(ops):  # copy the chosen op's weights over
        fixed.edges[k].load_state_dict(cell.edges[k].ops[o].state_dict())
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(cell(x, hard=ops), fixed(x), atol=1e-6)


def test_supernet_forward_shapes_and_alphas():
    torch.manual_seed(3)
    net = NB201Supernet(num_classes=7, C=4, N=1)
    assert tuple(net.alphas.shape) == (6, 5)
    assert all(p is not net.alphas for p in net.weights())
    x = torch.randn(2, 3, 16, 16)
    assert net(x).shape == (2, 7)
    assert net(x, hard=parse_cell(net.derive())).shape == (2, 7)


def test_batchnorm_layout_is_nb201s_tinynetworkdarts():
    """Mixed-op BNs: no learnt scale, no running statistics; the stem, last-activation and
    residual-block BNs: plain BatchNorm2d (scale and running statistics), as in NB201."""
    net = NB201Supernet(num_classes=10, C=4, N=2)
    bns = {n: m for n, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    mixed = {n for n in bns if ".edges." in n}
    plain = set(bns) - mixed
    assert len(mixed) == 3 * 2 * 6 * 2  # 3 stages × N cells × 6 edges × (1×1 and 3×3 conv)
    assert len(plain) == 1 + 1 + 2 * 2 and {"stem.1", "lastact.0"} <= plain  # stem, lastact, 2 blocks × 2
    for n in mixed:
        assert not bns[n].affine and not bns[n].track_running_stats, n
    for n in plain:
        assert bns[n].affine and bns[n].track_running_stats, n


def test_frozen_stats_leaves_the_running_statistics_alone():
    torch.manual_seed(7)
    net = NB201Supernet(num_classes=3, C=4, N=1).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with frozen_stats(net):
        net(torch.randn(4, 3, 8, 8))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert net.stem[1].momentum == 0.1
    net(torch.randn(4, 3, 8, 8))  # outside: they move again
    assert not torch.equal(net.stem[1].running_mean, before["stem.1.running_mean"])


def _unrolled_setup(seed: int = 8):
    torch.manual_seed(seed)
    net = NB201Supernet(num_classes=3, C=4, N=1).double().train()
    with torch.no_grad():
        net.alphas.normal_(0, 0.5)
    xt, yt = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    xv, yv = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.tensor([2, 1, 0, 2, 1, 0])
    return net, (xt, yt), (xv, yv)


def test_second_order_alpha_grad_matches_the_exact_unrolled_derivative():
    """DARTS-V2's finite-difference gradient against autograd through the unrolled SGD step:
    d/dα L_val(w − lr·(momentum·buf + ∇_w L_train(w, α) + wd·w), α). In float64 with a small ε
    the difference quotient is exact to rounding; DARTS's ε = 0.01/‖v‖ (the default, NB201's)
    is a coarser quotient on a network this small (ReLU kinks, BN over 6 images)."""
    from torch.func import functional_call

    net, (xt, yt), (xv, yv) = _unrolled_setup()
    ce = torch.nn.functional.cross_entropy
    names = [n for n, _ in net.named_parameters() if n != "alphas"]
    weights = net.weights()
    bufs = [0.1 * torch.randn_like(w) for w in weights]
    lr, wd, mom = 0.05, 5e-4, 0.9
    state = {k: v.clone() for k, v in net.state_dict().items()}
    got, loss = second_order_alpha_grad(net, net.alphas, weights, lambda: ce(net(xt), yt), lambda: ce(net(xv), yv),
                                        lr=lr, weight_decay=wd, momentum=mom, momentum_bufs=bufs, r=1e-6)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())  # weights and statistics restored

    with frozen_stats(net):
        g = torch.autograd.grad(ce(net(xt), yt), weights, create_graph=True)
        unrolled = {n: w - lr * (mom * b + gi + wd * w) for n, w, gi, b in zip(names, weights, g, bufs)}
        val = ce(functional_call(net, unrolled, (xv,)), yv)
        (want,) = torch.autograd.grad(val, net.alphas)
    assert loss == pytest.approx(float(val.detach()), rel=1e-10)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-10), (got - want).abs().max()
    import inspect

    assert inspect.signature(second_order_alpha_grad).parameters["r"].default == 1e-2


def test_second_order_differs_from_first_order():
    net, (xt, yt), (xv, yv) = _unrolled_setup(9)
    ce = torch.nn.functional.cross_entropy
    with frozen_stats(net):
        (first,) = torch.autograd.grad(ce(net(xv), yv), net.alphas)
    got, _ = second_order_alpha_grad(net, net.alphas, net.weights(), lambda: ce(net(xt), yt), lambda: ce(net(xv), yv),
                                     lr=0.05, weight_decay=0.0, momentum=0.9, momentum_bufs=[None] * len(net.weights()))
    assert not torch.allclose(got, first, rtol=1e-3)


def test_alphas_shared_by_all_cells_get_a_gradient():
    torch.manual_seed(4)
    net = NB201Supernet(num_classes=3, C=4, N=2)
    net(torch.randn(2, 3, 16, 16)).sum().backward()
    assert net.alphas.grad is not None and net.alphas.grad.abs().sum() > 0


def test_hvp_matches_finite_differences():
    torch.manual_seed(5)
    net = NB201Supernet(num_classes=3, C=4, N=1).double()
    with torch.no_grad():
        net.alphas.normal_(0, 0.5)
    x, y = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    loss = lambda: torch.nn.functional.cross_entropy(net(x), y)  # noqa: E731
    v = torch.randn(6, 5, dtype=torch.float64)

    def grad_at(a):
        with torch.no_grad():
            net.alphas.copy_(a)
        (g,) = torch.autograd.grad(loss(), net.alphas)
        return g

    a0, eps = net.alphas.detach().clone(), 1e-4
    fd = (grad_at(a0 + eps * v) - grad_at(a0 - eps * v)) / (2 * eps)
    with torch.no_grad():
        net.alphas.copy_(a0)
    hv = hvp(loss, net.alphas, v)
    assert torch.allclose(hv, fd, rtol=1e-5, atol=1e-8)


def test_dominant_eigenvalue_of_a_known_quadratic():
    torch.manual_seed(6)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    eig = torch.tensor([5.0, 2.0, 1.0, 0.5, -0.3, 0.1], dtype=torch.float64)
    h = q @ torch.diag(eig) @ q.T
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    lam = dominant_eigenvalue(lambda: 0.5 * x @ h @ x, x, iters=200, tol=1e-10)
    assert lam == pytest.approx(5.0, rel=1e-6)
