"""The model zoo: ``build_model(name, input_shape, num_classes, seed=..., **options)``.

Families (one module each, registered on import):

========================  ==========================================  ==================
name                      what                                        inputs
========================  ==========================================  ==================
``lenet_300_100``, ``mlp``  fully connected (any ``widths``)           anything (flattened)
``lenet5``                LeNet-5                                     images >= 28x28
``conv2/4/6``             Frankle & Carbin's lottery-ticket conv nets  images >= 2/4/8 px
``resnet20/32/56``        CIFAR ResNets (option-B shortcuts, BN)      images >= 8x8
``vgg11/13/16/19``        CIFAR VGG-BN, one linear classifier         images >= 8x8
``cnn1d``                 MNIST-1D's 1-D CNN                          1-D signals only
``mobilenet``             MobileNet-v1, depthwise-separable convs     images >= 4x4
``vit_tiny``              small ViT with nn.MultiheadAttention        images, patch | size
``tv:<name>``             any torchvision classifier, never pretrained  images
``timm:<name>``           any timm model (optional extra), never pretrained  images
========================  ==========================================  ==================

Every prunable layer is an ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` or
``nn.MultiheadAttention`` (see :mod:`autosparse.core.layers`), and forwards have no data-dependent
Python control flow, so ``torch.fx`` can trace the zoo for :mod:`autosparse.topology.graph`.
"""

from __future__ import annotations

from autosparse.models import cnn1d, conv, lenet, mlp, mobilenet, resnet, vgg, vit  # noqa: F401  (register the zoo)
from autosparse.models.info import INPUT_KINDS, ModelInfo
from autosparse.models.registry import available_models, build_model, model_info, register_model

__all__ = ["INPUT_KINDS", "ModelInfo", "available_models", "build_model", "model_info", "register_model"]
