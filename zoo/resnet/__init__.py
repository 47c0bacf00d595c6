"""CIFAR ResNets (He et al. 2016) with SE / CBAM / ECA / non-local attention."""

from zoo.resnet.cifar_resnet import cifar_resnet
from zoo.resnet.zero_pad_shortcut import ZeroPadShortcut
