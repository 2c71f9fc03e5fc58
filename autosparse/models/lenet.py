"""LeNet-5, the classic small convolutional network (LeCun et al. 1998), with ReLU and max pooling.

Two 5x5 convolutions (6 and 16 channels), each followed by 2x2 max pooling, then fully connected
layers 120-84-classes. On 28x28 inputs the first convolution pads by 2, as is customary for
MNIST, so both 28x28 and 32x32 images reach the classifier at 5x5. Inputs smaller than 28
pixels (e.g. 8x8 digits) would be pooled away entirely and are rejected.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.models.building import check_width, conv_out, init_weights, scaled
from autosparse.models.registry import register_model


@register_model("lenet5", inputs=("image",))
def lenet5(
    input_shape: tuple[int, ...], num_classes: int, *, width: float = 1.0, init: str = "kaiming_normal"
) -> nn.Module:
    """LeNet-5: conv5(6)-pool-conv5(16)-pool-fc120-fc84 for images of at least 28x28."""
    check_width("lenet5", width)
    c, h, w = input_shape
    pad = 2 if min(h, w) < 32 else 0
    sizes = []
    for s in (h, w):
        s = conv_out(s, 5, 1, pad) // 2
        s = conv_out(s, 5) // 2
        sizes.append(s)
    if min(h, w) < 28 or min(sizes) < 1:
        raise ConfigError(
            f"lenet5 cannot take input shape {input_shape}: it needs images of at least 28x28 such as "
            f"(1, 28, 28) or (3, 32, 32); for smaller images use conv2, resnet20 or mlp"
        )
    c1, c2, f1, f2 = (scaled(n, width) for n in (6, 16, 120, 84))
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(c, c1, 5, padding=pad),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(c1, c2, 5),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Linear(c2 * sizes[0] * sizes[1], f1),
            relu3=nn.ReLU(),
            fc2=nn.Linear(f1, f2),
            relu4=nn.ReLU(),
            fc3=nn.Linear(f2, num_classes),
        )
    )
    return init_weights(model, init)
