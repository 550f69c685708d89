"""Backbones (ResNet / IBN-Net with the public checkpoints' keys) and the feature-map network."""

from qaconv.models.featuremap import FINAL_LAYERS, FeatureMapNet
from qaconv.models.resnet import IBN, BasicBlock, Bottleneck, ResNet, build_resnet, model_name
from qaconv.models.weights import (
    PUBLIC_CHECKPOINTS,
    find_imagenet_checkpoint,
    hub_checkpoint_dir,
    load_pretrained,
    read_state_dict,
)

__all__ = [
    "FINAL_LAYERS",
    "PUBLIC_CHECKPOINTS",
    "IBN",
    "BasicBlock",
    "Bottleneck",
    "FeatureMapNet",
    "ResNet",
    "build_resnet",
    "find_imagenet_checkpoint",
    "hub_checkpoint_dir",
    "load_pretrained",
    "model_name",
    "read_state_dict",
]
