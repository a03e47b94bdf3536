"""The CNN's optimizer on the CPU: ``torch.optim.SGD(momentum=0.9, nesterov=True)``'s own update without its class.

PyTorch's optimizer classes import ``torch._dynamo`` on first use (their methods are wrapped to keep
``torch.compile`` out): 2.4-2.6 s of every training process on a 2-core CPU, more than a 4-s budget's
training would be without :func:`~digitlab.models.cnn_torch.ready_for_training`. :class:`NesterovSGD` calls
the same function the class calls (``torch.optim.sgd.sgd``), with the same defaults, and keeps the same
``param_groups``, so every step is the one ``torch.optim.SGD`` takes, to the bit (a test checks it). The CUDA
graph's fused, capturable SGD (:mod:`digitlab.models.cnn_graph`) keeps ``torch.optim.SGD``.

Examples
--------
>>> net = torch.nn.Linear(3, 2)
>>> optimizer = NesterovSGD([{"params": list(net.parameters()), "weight_decay": 0.0}], lr=0.1)
>>> net(torch.ones(1, 3)).sum().backward()
>>> optimizer.step(); optimizer.zero_grad(set_to_none=True)
>>> net.weight.grad is None, optimizer.param_groups[0]["lr"]
(True, 0.1)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.sgd import sgd

__all__ = ["NesterovSGD", "make_optimizer"]


class NesterovSGD:
    """SGD with Nesterov momentum over ``groups`` (dicts with ``params`` and ``weight_decay``; other keys, such
    as ``lr_scale``, are kept), each group's ``lr`` settable between steps as in ``torch.optim``."""

    def __init__(self, groups: list[dict], lr: float, momentum: float = 0.9):
        self.param_groups = [{"lr": lr, **group, "params": list(group["params"]), "momentum": momentum}
                             for group in groups]
        self.momentum_buffers: dict[torch.Tensor, torch.Tensor] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or zero it in place), as ``torch.optim.SGD.zero_grad``."""
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none:
                    param.grad = None
                elif param.grad is not None:
                    param.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One SGD step with Nesterov momentum for each parameter that has a gradient, at its group's ``lr``."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            buffers = [self.momentum_buffers.get(p) for p in params]
            sgd(params, [p.grad for p in params], buffers, any(p.grad.is_sparse for p in params),
                weight_decay=group["weight_decay"], momentum=group["momentum"], lr=group["lr"], dampening=0.0,
                nesterov=True, maximize=False)
            self.momentum_buffers.update(zip(params, buffers))


def make_optimizer(net: nn.Module, lr: float, weight_decay: float, *,
                   graphable: bool = False) -> NesterovSGD | torch.optim.SGD:
    """SGD with Nesterov momentum 0.9 (:class:`NesterovSGD`); weight decay on conv/linear weights
    only; a slower linear head.

    The head's learning rate is scaled by 16 / fan-in: one SGD step moves a logit by about
    lr x |features|², so a wide head (576 inputs at 28x28) would otherwise blow up the first
    steps. Each group keeps its ``lr_scale`` for :func:`~digitlab.models.cnn_torch.train_one_epoch`. ``graphable``: the fused
    kernel, each group's learning rate a tensor beside the weights (set with ``fill_``), as a CUDA
    graph needs (:mod:`digitlab.models.cnn_graph`).
    """
    conv, head, no_decay = [], [], []
    for name, param in net.named_parameters():
        if name.startswith("fc."):
            (head if param.ndim > 1 else no_decay).append(param)
        else:
            (conv if param.ndim > 1 else no_decay).append(param)
    groups = [
        {"params": conv, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"params": head, "weight_decay": weight_decay, "lr_scale": min(1.0, 16.0 / net.fc.in_features)},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
    ]
    if graphable:
        device = next(net.parameters()).device
        for group in groups:
            group["lr"] = torch.tensor(lr * group["lr_scale"], device=device)
    if graphable:
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, fused=True)
    return NesterovSGD(groups, lr)  # the same steps, without torch._dynamo's import
