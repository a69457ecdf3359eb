"""DANet: Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019."""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class DANetGate(nn.Module):
    """DANet's position and channel attention modules in parallel on the same map.

    Position attention (PAM): query and key 1x1 convs (``c -> c / reduction``, the paper's 8),
    a value 1x1 conv, softmax over all ``HW`` positions: an ``HW x HW`` attention, so time and
    memory grow with the square of the map's area. Channel attention (CAM): a ``c x c``
    attention from the map's Gram matrix (``max - energy`` before the softmax, as the authors'
    code). Each module's output is added to the map scaled by its own learnable gamma, which
    starts at 0 (the paper's init), so the gate starts as the identity. In DANet both modules
    sit on a reduced copy of the map with convs around them; as a shape-preserving gate they
    act on the map itself and their outputs are summed onto it.
    """

    _abbr_ = 'danet_gate'

    def __init__(self, in_channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(1, in_channels // reduction)
        self.query = nn.Conv2d(in_channels, hidden, 1)
        self.key = nn.Conv2d(in_channels, hidden, 1)
        self.value = nn.Conv2d(in_channels, in_channels, 1)
        self.position_gamma = nn.Parameter(torch.zeros(1))
        self.channel_gamma = nn.Parameter(torch.zeros(1))

    def position_attention(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        query = self.query(x).view(n, -1, h * w).transpose(1, 2)  # (N, HW, C')
        key = self.key(x).view(n, -1, h * w)  # (N, C', HW)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)  # (N, HW, HW)
        value = self.value(x).view(n, c, h * w)
        return torch.bmm(value, attention.transpose(1, 2)).view(n, c, h, w)

    def channel_attention(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        flat = x.view(n, c, h * w)
        energy = torch.bmm(flat, flat.transpose(1, 2))  # (N, C, C)
        energy = energy.amax(-1, keepdim=True) - energy
        return torch.bmm(torch.softmax(energy, dim=-1), flat).view(n, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.position_gamma * self.position_attention(x) +
                self.channel_gamma * self.channel_attention(x))
