"""A tiny NNI 3.0 model space searched by searchkd, results in runs/nni_example.

    python examples/nni_space.py [--budget 20] [--out runs/nni_example]
    searchkd search --space nni:examples/nni_space.py:TinySpace --proxy nwot --strategy evolution --budget 20 --out runs/nni
    PYTHONPATH=$PWD searchkd search --space nni:examples.nni_space:TinySpace ...   # the same, by module name

``TinySpace``: a 3×3 stem of 8 or 16 channels (one ``width`` choice shared by every
layer), then 1 to 3 residual blocks (``depth``), each a ``LayerChoice`` of a 3×3 conv, a
1×1 conv or the identity (``op0`` … ``op2``; ``op2`` exists only at depth 3), global
average pooling and a linear classifier: 78 distinct networks. Needs ``pip install
'searchkd[nni]'``.
"""

from __future__ import annotations

import argparse

import nni
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableBatchNorm2d, MutableConv2d, MutableLinear, Repeat
from torch import nn


def conv_bn_relu(width, kernel: int) -> nn.Module:
    return nn.Sequential(MutableConv2d(width, width, kernel, padding=kernel // 2, bias=False),
                         MutableBatchNorm2d(width), nn.ReLU())


class Block(nn.Module):
    """x + op(x), op chosen among a 3×3 conv, a 1×1 conv and the identity."""

    def __init__(self, width, label: str) -> None:
        super().__init__()
        self.op = LayerChoice({"conv3x3": conv_bn_relu(width, 3), "conv1x1": conv_bn_relu(width, 1),
                               "skip": nn.Identity()}, label=label)

    def forward(self, x):
        return x + self.op(x)


class TinySpace(ModelSpace):
    """Width {8, 16} × depth {1, 2, 3} × one op per block: 78 CIFAR-sized networks."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        width = nni.choice("width", [8, 16])
        self.stem = nn.Sequential(MutableConv2d(3, width, 3, padding=1, bias=False), MutableBatchNorm2d(width), nn.ReLU())
        self.blocks = Repeat(lambda i: Block(width, f"op{i}"), nni.choice("depth", [1, 2, 3]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = MutableLinear(width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


def main(argv: list[str] | None = None):
    import searchkd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--out", default="runs/nni_example")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    res = searchkd.search(space=f"nni:{__file__}:TinySpace", proxy="nwot", strategy="evolution", budget=args.budget,
                          seed=0, batch_size=args.batch_size, out=args.out, resume=True)
    print(f"best {res.best.arch}  nwot {res.best.scores['nwot']:.4f}  {res.best.params:.4f} M params")
    return res


if __name__ == "__main__":
    main()
