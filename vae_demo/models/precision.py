"""Serving a network in bfloat16 behind a float32 interface, where the CPU multiplies bf16 natively
(vae_demo/device.py: serve_in_bf16). Its input is cast down and its output back up, so the code around it (the
losses, the metrics, the pictures) works in float32 as everywhere else; only the network's own arithmetic and the bytes
of weights it reads change. Used by the serving registry on VAEs whose config sets `serve_bf16` and by the face reader
in the app; training and the documented figures never see it."""

import copy

import torch
from torch import nn


class InBF16(nn.Module):
    """`net` in bfloat16: (float32 in) -> bf16 forward -> float32 out. With `channels_last`, the input is also laid out
    as the network's weights are (the face reader's, models/classifier.py for_inference)."""

    def __init__(self, net: nn.Module, channels_last: bool = False):
        super().__init__()
        self.net = net.to(torch.bfloat16)
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.config = getattr(net, "config", None)  # a classifier's config, for the code that reads it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(torch.bfloat16, memory_format=self.layout)).float()


def vae_in_bf16(vae: nn.Module) -> nn.Module:
    """A VAE whose image-sized networks (the encoder, the axis reader, the decoder) run in bfloat16; changed in place
    and returned. The small dense maps around the latent (to_moments, from_latent) stay in float32: their cost is
    not in their arithmetic, and the latent, what the knobs and the API's z are made of, keeps its full precision."""
    for name in ("encoder", "axis_reader", "decoder"):
        net = getattr(vae, name, None)
        if isinstance(net, nn.Module) and not isinstance(net, InBF16):
            setattr(vae, name, InBF16(net))
    return vae


def reader_in_bf16(reader: nn.Module) -> nn.Module:
    """A copy of a classifier (the face reader) whose forward runs in bfloat16; the float32 original is left as it is,
    for the code that measures with it."""
    return InBF16(copy.deepcopy(reader), channels_last=True)
