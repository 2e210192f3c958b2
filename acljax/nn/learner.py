"""The paper's in-context continual learner: image encoder, synchronous label feedback, SRWM blocks, head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from acljax.checks import is_positive_int, require_positive_finite
from acljax.nn.net import SRWMNet
from acljax.nn.srwm import check_module_arguments
from acljax.srwm import SRWMOptions, SRWMState

ENCODERS = ("conv4", "mlp")


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2, ``(N, H, W, C) -> (N, H // 2, W // 2, C)`` (H, W even).

    The same forward as ``nnx.max_pool(x, (2, 2), (2, 2))``, written as a reshape and a max: its gradient
    is an elementwise mask rather than XLA's select-and-scatter: on the CPU, at the paper's first Conv-4 layer,
    0.8 s and 0.8 GiB against 3.0 s and 3.5 GiB (whole step: benchmarks/README.md). Where a window has tied
    maxima, the gradient is shared among them instead of going to the first one (both are valid subgradients).
    """
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def check_mlp_features(name: str, features) -> None:
    """The MLP encoder's layer widths: a non-empty sequence of positive ints (the last is the encoding's size)."""
    if isinstance(features, str) or not isinstance(features, Sequence) or not features or not all(
            is_positive_int(f) for f in features):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints (the encoder's layer widths, "
                         f"e.g. (256,)), got {features!r}")


class Conv4(nnx.Module):
    """Four blocks of Conv3x3(channels, pad 1) -> InstanceNorm(affine, eps 1e-5) -> MaxPool 2 -> Dropout -> ReLU.

    ``x: (N, H, W, C) -> (N, F)`` with ``F = channels * (H // 16) * (W // 16)`` (128 on 32x32 inputs).
    """

    def __init__(self, in_channels: int, *, channels: int = 32, dropout_rate: float = 0.1, rngs: nnx.Rngs):
        check_module_arguments("Conv4", conv_channels=channels, dropout_rate=dropout_rate)
        sizes = [in_channels] + [channels] * 4
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), padding=1, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.norms = nnx.List([nnx.InstanceNorm(channels, epsilon=1e-5, rngs=rngs) for _ in range(4)])
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv, norm in zip(self.convs, self.norms):
            x = jax.nn.relu(self.dropout(max_pool_2x2(norm(conv(x)))))
        return x.reshape(x.shape[0], -1)


class MLPEncoder(nnx.Module):
    """Flatten, then ``Linear -> ReLU -> Dropout`` per entry of ``features``: ``(N, H, W, C) -> (N, features[-1])``."""

    def __init__(self, in_features: int, *, features: Sequence[int] = (256,), dropout_rate: float = 0.1,
                 rngs: nnx.Rngs):
        check_mlp_features("MLPEncoder.features", features)
        check_module_arguments("MLPEncoder", dropout_rate=dropout_rate)
        sizes = [in_features, *features]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            x = self.dropout(jax.nn.relu(layer(x)))
        return x


class InContextLearner(nnx.Module):
    """Reads a sequence of (image, label feedback) tokens and classifies every position.

    Each token is ``Linear([encoder(image), feedback_scale * one_hot(feedback, N + 1)])``; feedback ``N`` is
    the "unknown" label of a query. Then :class:`SRWMNet` (SRWM blocks and a linear head to N logits).
    ``feedback_scale`` 1 is the paper's; about ``sqrt(F)`` (F the encoder's features) gives the label as much
    weight in the token as the image at initialisation, which shortens the plateau at chance that meta-training
    from scratch starts with (experiments/feedback_scale.py).
    The paper's model: ``encoder="conv4"``, 2 blocks, 16 heads, D = 256, feed-forward 512, dropout 0.1
    (about 750k parameters for N = 5 on 32x32x3 images).

    Call: ``images (B, L, H, W, C)``, ``feedback (B, L)`` int, optional per-block states ->
    ``(logits (B, L, N), states)``; ``update=False`` reads the positions as queries that do not change
    the states. :meth:`embed` and :meth:`sequence` split the call, so an objective can encode each
    image once and run the SRWM part segment by segment. ``options`` go to the SRWM layers whole (see
    :class:`acljax.srwm.SRWMOptions`).
    """

    def __init__(self, image_shape: Sequence[int], num_classes: int, *, encoder: Literal["conv4", "mlp"] = "conv4",
                 conv_channels: int = 32, mlp_features: Sequence[int] = (256,), num_features: int = 256,
                 num_heads: int = 16, num_blocks: int = 2, hidden_features: int | None = 512,
                 dropout_rate: float = 0.1, feedback_scale: float = 1.0, options: SRWMOptions = SRWMOptions(),
                 rngs: nnx.Rngs):
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"image_shape must be (H, W, C), got {tuple(image_shape)!r}")
        check_module_arguments("InContextLearner", num_classes=num_classes, conv_channels=conv_channels,
                               num_features=num_features, num_heads=num_heads, num_blocks=num_blocks,
                               hidden_features=hidden_features, dropout_rate=dropout_rate, options=options)
        check_mlp_features("InContextLearner.mlp_features", mlp_features)
        require_positive_finite("InContextLearner", feedback_scale=feedback_scale)
        height, width, channels = image_shape
        if encoder == "conv4":
            if height % 16 or width % 16:
                raise ValueError(f"encoder='conv4' halves the image 4 times: image_shape must have H and W divisible "
                                 f"by 16 (32x32 in the paper), got {tuple(image_shape)}; use encoder='mlp' otherwise")
            self.encoder = Conv4(channels, channels=conv_channels, dropout_rate=dropout_rate, rngs=rngs)
            encoded = conv_channels * (height // 16) * (width // 16)
        else:
            self.encoder = MLPEncoder(height * width * channels, features=mlp_features, dropout_rate=dropout_rate,
                                      rngs=rngs)
            encoded = mlp_features[-1]
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.feedback_scale = feedback_scale
        self.net = SRWMNet(encoded + num_classes + 1, num_classes, num_features=num_features, num_heads=num_heads,
                           num_blocks=num_blocks, hidden_features=hidden_features, dropout_rate=dropout_rate,
                           options=options, rngs=rngs)

    def embed(self, images: jax.Array, feedback: jax.Array) -> jax.Array:
        """images (B, L, H, W, C), feedback (B, L) in [0, N] -> net inputs (B, L, F + N + 1)."""
        if images.ndim != 5 or images.shape[2:] != self.image_shape:
            raise ValueError(f"images must have shape (B, L, {', '.join(map(str, self.image_shape))}), "
                             f"got {images.shape}")
        if feedback.shape != images.shape[:2]:
            raise ValueError(f"feedback must have shape (B, L) = {images.shape[:2]}, got {feedback.shape}")
        batch, length = images.shape[:2]
        features = self.encoder(images.reshape(batch * length, *self.image_shape)).reshape(batch, length, -1)
        labels = self.feedback_scale * jax.nn.one_hot(feedback, self.num_classes + 1, dtype=features.dtype)
        return jnp.concatenate([features, labels], -1)

    def sequence(self, tokens: jax.Array, states: tuple[SRWMState, ...] | None = None, *, update: bool = True):
        """tokens (B, L, F + N + 1) from :meth:`embed` -> (logits (B, L, N), states)."""
        return self.net(tokens, states, update=update)

    def __call__(self, images: jax.Array, feedback: jax.Array, states: tuple[SRWMState, ...] | None = None, *,
                 update: bool = True):
        return self.sequence(self.embed(images, feedback), states, update=update)


def count_parameters(module: nnx.Module) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(nnx.state(module, nnx.Param))))
