"""Image preprocessing on uint8 arrays (N, H, W, C): size, channels, rotations, normalisation."""

from __future__ import annotations

import numpy as np
from PIL import Image

from acljax.data.store import ImageSet


def resize(x: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, size, size, C) uint8, bilinear with antialiasing (PIL)."""
    if x.shape[1:3] == (size, size):
        return x
    out = np.empty((len(x), size, size, x.shape[-1]), np.uint8)
    for i, image in enumerate(x):
        img = Image.fromarray(image[..., 0] if x.shape[-1] == 1 else image)
        out[i] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR)).reshape(size, size, -1)
    return out


def set_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """1 -> 3 repeats the grey channel; 3 -> 1 takes ITU-R 601 luminance."""
    if x.shape[-1] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=-1)
    grey = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


def add_rotations(data: ImageSet) -> ImageSet:
    """Omniglot-style augmentation: rotations by 90/180/270 degrees become new classes
    (class c rotated r quarter turns -> c + r * num_classes)."""
    num_classes = data.num_classes
    xs = [np.rot90(data.x, r, axes=(1, 2)) for r in range(4)]
    ys = [data.y + r * num_classes for r in range(4)]
    return ImageSet(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys).astype(np.int32))


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    """uint8 (..., C) -> float32 (x / 255 - mean) / std, per channel."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    return (x.astype(np.float32) * np.float32(1 / 255) - mean) / std
