"""Training layout: channels_last, except the 1x1 strided convolutions oneDNN's CPU kernel breaks on."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch
from torch import nn

from trtprune.train.layout import breaks_onednn, training_layout


def _net(narrow: int) -> nn.Sequential:
    """A pruned ResNet shortcut in small: ``narrow`` channels into a 1x1 convolution at stride 2."""
    return nn.Sequential(
        nn.Conv2d(3, narrow, 3, padding=1), nn.ReLU(), nn.Conv2d(narrow, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8)
    )


def test_only_narrow_strided_1x1_convolutions_keep_nchw_and_only_on_the_cpu():
    assert breaks_onednn(nn.Conv2d(15, 8, 1, stride=2)) and breaks_onednn(nn.Conv2d(4, 8, 1, stride=(2, 1)))
    assert not breaks_onednn(nn.Conv2d(16, 8, 1, stride=2)) and not breaks_onednn(nn.Conv2d(4, 8, 1))
    assert not breaks_onednn(nn.Conv2d(4, 8, 3, stride=2))
    net = _net(4)
    with training_layout(net, torch.device("cpu")) as kept:
        assert kept == [net[2]] and net[2].weight.stride() == (4, 1, 1, 1)  # NCHW, not the ambiguous 1x1 strides
        assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
        seen = []
        net[2].register_forward_pre_hook(lambda _m, args: seen.append(args[0].stride()))
        net(torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last))
        assert seen == [(4 * 64, 64, 8, 1)]  # its input arrives in NCHW
    assert len(net[2]._forward_pre_hooks) == 1  # ours is gone on exit, the test's own is left
    with training_layout(_net(4), torch.device("cuda")) as kept:  # no GPU needed: nothing moves
        assert kept == []


def test_a_narrow_strided_shortcut_trains_on_two_threads_with_the_gradients_of_nchw():
    """In channels_last this hangs with 2 threads, aborts with 1 and gives wrong weight gradients
    elsewhere (oneDNN#6035); in a child process so a hang fails the test instead of the suite."""
    script = textwrap.dedent(
        """
        import copy, torch
        from tests.train.test_layout import _net
        from trtprune.train.layout import training_layout
        torch.manual_seed(0)
        torch.set_num_threads(2)
        net = _net(4)
        ref, x, w = copy.deepcopy(net), torch.randn(32, 3, 32, 32), torch.randn(32, 8, 16, 16)
        with training_layout(net, torch.device("cpu")):
            for _ in range(30):
                net.zero_grad()
                net(x.contiguous(memory_format=torch.channels_last)).mul(w).mean().backward()
        ref(x).mul(w).mean().backward()  # not .square(): after batch norm its gradients to the convolutions are ~0
        for a, b in zip(net.parameters(), ref.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
        print("same gradients")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "same gradients" in run.stdout, run.stderr[-2000:]
