"""The forward operators A: what each one observes, and the per-image seeding contract."""

from __future__ import annotations

import math

import pytest
import torch

from sphinx.degradations import (
    DEGRADATIONS,
    LUMA_WEIGHTS,
    BoundOperator,
    Colorization,
    CompressedSensing,
    Degradation,
    GaussianNoise,
    Inpainting,
    NoDegradation,
    SuperResolution,
    bicubic_kernel,
    build_degradation,
)
from sphinx.errors import ConfigError

SEED = 7
SHAPE = (3, 20, 30)  # not square, so a swapped H and W shows
IDS = ("a.png", "b.png", 2, "d.png")


def images(n: int = len(IDS), shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=generator) * 2.0 - 1.0


ALL = [
    pytest.param(NoDegradation(), id="none"),
    pytest.param(GaussianNoise(sigma=0.25), id="denoise"),
    pytest.param(Inpainting(mode="box"), id="inpaint-box"),
    pytest.param(Inpainting(mode="pixels", ratio=0.3), id="inpaint-pixels"),
    pytest.param(SuperResolution(factor=2, kernel="bicubic"), id="superres-bicubic"),
    pytest.param(SuperResolution(factor=5, kernel="area"), id="superres-area"),
    pytest.param(CompressedSensing(ratio=0.2), id="compressed_sensing"),
    pytest.param(Colorization(), id="colorize"),
]


# ---------------------------------------------------------------- contract shared by all


@pytest.mark.parametrize("degradation", ALL)
def test_batch_equals_images_one_by_one_in_any_order(degradation: Degradation) -> None:
    x = images()
    batch = degradation.bind(IDS, image_shape=SHAPE, seed=SEED)
    y_batch = batch.observe(x)
    a_batch = batch(x, step=3)
    order = [2, 0, 3, 1]
    shuffled = degradation.bind([IDS[i] for i in order], image_shape=SHAPE, seed=SEED)
    torch.testing.assert_close(shuffled.observe(x[order]), y_batch[order], rtol=0, atol=1e-6)
    torch.testing.assert_close(shuffled(x[order], step=3), a_batch[order], rtol=0, atol=1e-6)
    for i, image_id in enumerate(IDS):
        alone = degradation.bind([image_id], image_shape=SHAPE, seed=SEED)
        torch.testing.assert_close(alone.observe(x[i : i + 1]), y_batch[i : i + 1], rtol=0, atol=1e-6)
        torch.testing.assert_close(alone(x[i : i + 1], step=3), a_batch[i : i + 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("degradation", ALL)
def test_gradients_flow_to_the_generated_image(degradation: Degradation) -> None:
    op = degradation.bind(IDS, image_shape=SHAPE, seed=SEED)
    x = (images() * 0.5).requires_grad_(True)  # mostly inside the clip range of denoise
    op(x, step=0).square().sum().backward()
    assert x.grad is not None
    assert x.grad.abs().sum() > 0
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("degradation", ALL)
def test_shapes_protocols_and_preview(degradation: Degradation) -> None:
    assert isinstance(degradation, Degradation)
    op = degradation.bind(IDS, image_shape=SHAPE, seed=SEED)
    assert isinstance(op, BoundOperator)
    y = op.observe(images())
    assert tuple(y.shape) == (len(IDS), *op.observation_shape)
    assert op.is_image == (len(op.observation_shape) == 3)
    picture = op.preview(y)
    assert tuple(picture.shape) == (len(IDS), *SHAPE)
    assert picture.min() >= -1 and picture.max() <= 1


@pytest.mark.parametrize("degradation", ALL)
def test_refuses_a_batch_of_the_wrong_size_or_shape(degradation: Degradation) -> None:
    op = degradation.bind(IDS, image_shape=SHAPE, seed=SEED)
    with pytest.raises(ValueError, match="expected shape"):
        op(images(n=len(IDS) - 1), step=0)
    with pytest.raises(ValueError, match="expected shape"):
        op.observe(images(shape=(3, 30, 20)))


def test_another_seed_changes_the_random_operators() -> None:
    x = images()
    for degradation in (GaussianNoise(), Inpainting(), CompressedSensing()):
        first = degradation.bind(IDS, image_shape=SHAPE, seed=1).observe(x)
        second = degradation.bind(IDS, image_shape=SHAPE, seed=2).observe(x)
        assert not torch.allclose(first, second)


# ---------------------------------------------------------------- factory


def test_every_name_builds_its_class() -> None:
    assert set(DEGRADATIONS) == {"none", "denoise", "inpaint", "superres", "compressed_sensing", "colorize"}
    for name, cls in DEGRADATIONS.items():
        degradation = build_degradation(name)
        assert type(degradation) is cls and degradation.name == name
    assert build_degradation("superres", factor=8).factor == 8


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as error:
        build_degradation("deblur")
    for name in DEGRADATIONS:
        assert name in str(error.value)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="factor"):
        build_degradation("denoise", factor=4)


# ---------------------------------------------------------------- denoise


def test_denoise_observation_is_fixed_and_loss_noise_fresh_each_step() -> None:
    op = GaussianNoise(sigma=0.25).bind(IDS, image_shape=SHAPE, seed=SEED)
    x = images() * 0.5
    torch.testing.assert_close(op.observe(x), op.observe(x), rtol=0, atol=0)
    torch.testing.assert_close(op(x, step=4), op(x, step=4), rtol=0, atol=0)
    assert not torch.allclose(op(x, step=4), op(x, step=5))
    assert not torch.allclose(op(x, step=0), op.observe(x))  # the target's noise is its own
    noisy = op(images(), step=1)
    assert noisy.min() >= -1 and noisy.max() <= 1
    assert (noisy == 1).any() and (noisy == -1).any()  # it clips rather than rescales


def test_denoise_noise_has_std_sigma_on_mid_gray() -> None:
    shape = (3, 64, 64)
    op = GaussianNoise(sigma=0.2).bind(range(4), image_shape=shape, seed=SEED)
    gray = torch.zeros(4, *shape)  # 0 is mid-gray: at 5 sigma from the clip, std is unbiased
    for noisy in (op.observe(gray), op(gray, step=9)):
        assert abs(noisy.std().item() - 0.2) < 0.005
        assert abs(noisy.mean().item()) < 0.005


@pytest.mark.parametrize("sigma", [0, -0.1, float("nan"), True])
def test_denoise_refuses_a_nonpositive_sigma(sigma: float) -> None:
    with pytest.raises(ConfigError, match="sigma"):
        GaussianNoise(sigma=sigma)


# ---------------------------------------------------------------- inpaint


def test_box_mask_hides_exactly_one_box_of_the_stated_size() -> None:
    _, height, width = SHAPE
    box_h, box_w = round(0.4 * height), round(0.2 * width)
    assert Inpainting.box_size(SHAPE) == (box_h, box_w)
    x = images()
    op = Inpainting(mode="box").bind(IDS, image_shape=SHAPE, seed=SEED)
    assert tuple(op.mask.shape) == (len(IDS), 1, height, width)
    observed = op.observe(x)
    for mask, clean, y in zip(op.mask[:, 0], x, observed):
        missing = mask == 0
        assert missing.sum() == box_h * box_w
        rows = missing.any(dim=1).nonzero().flatten()
        cols = missing.any(dim=0).nonzero().flatten()
        top, left = rows.min().item(), cols.min().item()
        assert rows.tolist() == list(range(top, top + box_h))  # contiguous, inside the image
        assert cols.tolist() == list(range(left, left + box_w))
        assert missing[top : top + box_h, left : left + box_w].all()
        assert (y[:, missing] == -1).all()
        torch.testing.assert_close(y[:, ~missing], clean[:, ~missing], rtol=0, atol=0)


def test_box_position_is_per_image_and_covers_the_image() -> None:
    op = Inpainting(mode="box").bind(range(40), image_shape=SHAPE, seed=SEED)
    tops = {int((m[0] == 0).any(dim=1).nonzero().min()) for m in op.mask}
    assert len(tops) > 5  # positions drawn per image, not one box for all


def test_pixel_mask_misses_the_ratio_on_all_channels_alike() -> None:
    shape = (3, 64, 64)
    op = Inpainting(mode="pixels", ratio=0.3).bind(range(4), image_shape=shape, seed=SEED)
    missing = op.mask == 0
    assert abs(missing.float().mean().item() - 0.3) < 0.02
    y = op.observe(images(shape=shape))
    assert ((y == -1).all(dim=1) == missing[:, 0]).all()  # all three channels of a pixel go
    assert not torch.equal(op.mask[0], op.mask[1])


def test_missing_pixels_add_nothing_to_the_loss() -> None:
    op = Inpainting(mode="box").bind(IDS, image_shape=SHAPE, seed=SEED)
    target = op.observe(images(seed=1))
    x = images(seed=2).requires_grad_(True)
    (op(x, step=0) - target).square().sum().backward()
    hole = (op.mask == 0).expand_as(x)
    assert (x.grad[hole] == 0).all() and (x.grad[~hole] != 0).any()


def test_inpaint_options_are_strict() -> None:
    with pytest.raises(ConfigError, match="ratio"):
        Inpainting(mode="pixels")
    with pytest.raises(ConfigError, match="ratio"):
        Inpainting(mode="box", ratio=0.5)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        Inpainting(mode="pixels", ratio=1.5)
    with pytest.raises(ConfigError, match="mode"):
        Inpainting(mode="stripes")
    with pytest.raises(ConfigError, match="too small"):
        Inpainting(mode="box").validate((3, 2, 2))


# ---------------------------------------------------------------- superres


def test_bicubic_kernel_is_normalised_symmetric_and_the_pulse_kernel() -> None:
    for factor in (1, 2, 3, 4, 8):
        kernel = bicubic_kernel(factor)
        assert abs(kernel.sum().item() - 1) < 1e-12
        torch.testing.assert_close(kernel, kernel.flip(0))
        assert kernel.numel() == (4 * factor if factor % 2 == 0 else 4 * factor - 1)
    identity = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(bicubic_kernel(1), identity)
    for factor in (2, 4):  # even factors: PULSE/ILO's 4f taps at (i - 2f + 0.5) / f
        pulse = torch.tensor(
            [keys_scalar((i - 2 * factor + 0.5) / factor) for i in range(4 * factor)], dtype=torch.float64
        )
        torch.testing.assert_close(bicubic_kernel(factor), pulse / pulse.sum())


def keys_scalar(x: float, a: float = -0.5) -> float:
    """The Keys cubic, written out independently of the implementation."""
    t = abs(x)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


@pytest.mark.parametrize("kernel", ["bicubic", "area"])
@pytest.mark.parametrize("factor", [1, 2, 5])
def test_superres_keeps_a_constant_image_and_divides_the_shape(kernel: str, factor: int) -> None:
    op = SuperResolution(factor=factor, kernel=kernel).bind(IDS, image_shape=SHAPE, seed=SEED)
    constant = torch.full((len(IDS), *SHAPE), 0.3)
    y = op.observe(constant)
    assert tuple(y.shape) == (len(IDS), 3, SHAPE[1] // factor, SHAPE[2] // factor)
    torch.testing.assert_close(y, torch.full_like(y, 0.3), rtol=0, atol=1e-6)


def test_superres_factor_one_is_the_identity() -> None:
    x = images()
    for kernel in ("bicubic", "area"):
        op = SuperResolution(factor=1, kernel=kernel).bind(IDS, image_shape=SHAPE, seed=SEED)
        torch.testing.assert_close(op(x, step=0), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bicubic_of_a_ramp_is_its_block_means(factor: int) -> None:
    shape = (3, 16 * factor, 12 * factor)
    rows = torch.arange(shape[1], dtype=torch.float64).view(-1, 1)
    cols = torch.arange(shape[2], dtype=torch.float64).view(1, -1)
    ramp = (0.02 * rows - 0.03 * cols + 0.1).expand(3, -1, -1)[None] / factor
    smooth = ramp + 0.2 * torch.sin(rows / (3.0 * factor))  # a smooth, non-linear ramp
    op = SuperResolution(factor=factor).bind([0], image_shape=shape, seed=SEED, dtype=torch.float64)
    means = torch.nn.functional.avg_pool2d(ramp, factor)
    inside = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from reflect padding
    # a symmetric kernel centred on each block reproduces a linear ramp's block means exactly
    torch.testing.assert_close(op(ramp, step=0)[inside], means[inside], rtol=0, atol=1e-10)
    smooth_means = torch.nn.functional.avg_pool2d(smooth, factor)
    torch.testing.assert_close(op(smooth, step=0), smooth_means, rtol=0, atol=0.02)


def test_superres_preview_shows_each_observed_pixel_as_a_block() -> None:
    op = SuperResolution(factor=2, kernel="area").bind(IDS, image_shape=SHAPE, seed=SEED)
    y = op.observe(images())
    picture = op.preview(y)
    torch.testing.assert_close(picture[:, :, ::2, ::2], y)
    torch.testing.assert_close(picture[:, :, 1::2, 1::2], y)


@pytest.mark.parametrize("shape", [(3, 20, 30), (3, 30, 20)])
def test_superres_refuses_a_factor_that_does_not_divide_the_image(shape: tuple) -> None:
    with pytest.raises(ConfigError, match="divide"):
        SuperResolution(factor=4).validate(shape)
    with pytest.raises(ConfigError, match="divide"):
        SuperResolution(factor=4, kernel="area").bind([0], image_shape=shape, seed=SEED)


def test_superres_options_are_strict() -> None:
    for factor in (0, 2.5, True):
        with pytest.raises(ConfigError, match="factor"):
            SuperResolution(factor=factor)
    with pytest.raises(ConfigError, match="kernel"):
        SuperResolution(kernel="lanczos")
    with pytest.raises(ConfigError, match="reflect"):
        SuperResolution(factor=10).validate((3, 10, 20))  # 1 output row: padding cannot reflect
    SuperResolution(factor=10, kernel="area").validate((3, 10, 20))


# ---------------------------------------------------------------- compressed sensing


def test_cs_has_exactly_m_measurements_and_is_not_an_image() -> None:
    for ratio in (0.1, 0.25, 1.0):
        cs = CompressedSensing(ratio=ratio)
        op = cs.bind(IDS, image_shape=SHAPE, seed=SEED)
        m = round(ratio * math.prod(SHAPE))
        assert cs.num_measurements(SHAPE) == m == op.num_measurements
        assert tuple(op.observe(images()).shape) == (len(IDS), m)
        assert not op.is_image
        assert all(row.unique().numel() == m for row in op.indices)  # distinct outputs kept


def test_cs_is_linear() -> None:
    op = CompressedSensing(ratio=0.3).bind(IDS, image_shape=SHAPE, seed=SEED)
    x, z = images(seed=1), images(seed=2)
    combined = op(1.7 * x - 0.4 * z, step=0)
    torch.testing.assert_close(combined, 1.7 * op(x, step=0) - 0.4 * op(z, step=0), rtol=0, atol=1e-5)


def test_cs_is_a_partial_circulant_matrix_with_unit_rows() -> None:
    shape = (3, 8, 8)
    n = math.prod(shape)
    op = CompressedSensing(ratio=0.5).bind([0], image_shape=shape, seed=SEED, dtype=torch.float64)
    # the matrix column by column, from basis images
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    matrix = torch.stack([op(b[None], step=0)[0] for b in basis], dim=1)  # [m, n]
    # undo signs: then every kept row is a cyclic shift of the filter
    unsigned = matrix * op.signs
    first = unsigned[0].roll(-int(op.indices[0, 0]))
    for row, index in zip(unsigned, op.indices[0]):
        torch.testing.assert_close(row.roll(-int(index)), first)
    # filter entries N(0, 1/n): each row has squared norm about 1
    assert abs(matrix.square().sum(dim=1).mean().item() - 1) < 0.15


def test_cs_adjoint_is_the_transpose() -> None:
    op = CompressedSensing(ratio=0.2).bind(IDS, image_shape=SHAPE, seed=SEED, dtype=torch.float64)
    x = images().double()
    y = torch.randn(len(IDS), op.num_measurements, dtype=torch.float64)
    left = (op(x, step=0) * y).sum(dim=1)
    right = (x * op.adjoint(y)).flatten(1).sum(dim=1)
    torch.testing.assert_close(left, right, rtol=1e-9, atol=1e-9)


def test_cs_operator_is_per_image_and_fixed_by_the_id() -> None:
    x = images(n=1).expand(2, -1, -1, -1)  # one image measured under two ids
    op = CompressedSensing().bind(["p", "q"], image_shape=SHAPE, seed=SEED)
    y = op.observe(x)
    assert not torch.allclose(y[0], y[1])
    assert not torch.equal(op.indices[0], op.indices[1])
    again = CompressedSensing().bind(["q"], image_shape=SHAPE, seed=SEED)
    torch.testing.assert_close(again.observe(x[:1]), y[1:], rtol=0, atol=0)
    torch.testing.assert_close(again.signs, op.signs[1:], rtol=0, atol=0)


def test_cs_preview_is_a_rescaled_back_projection() -> None:
    shape = (3, 32, 32)
    op = CompressedSensing(ratio=1.0).bind([0], image_shape=shape, seed=SEED)
    x = images(n=1, shape=shape) * 0.5
    picture = op.preview(op.observe(x))
    correlation = torch.corrcoef(torch.stack([picture.flatten(), x.flatten()]))[0, 1]
    assert correlation > 0.5  # A^T A is I on average, so the picture resembles the image


def test_cs_options_are_strict() -> None:
    for ratio in (0, 1.2, -0.1):
        with pytest.raises(ConfigError, match=r"\(0, 1\]"):
            CompressedSensing(ratio=ratio)
    with pytest.raises(ConfigError, match="filter_std"):
        CompressedSensing(filter_std=0)
    with pytest.raises(ConfigError, match="no measurement"):
        CompressedSensing(ratio=0.01).validate((1, 4, 4))


# ---------------------------------------------------------------- colorize


def test_colorize_keeps_gray_and_observes_luminance_on_three_channels() -> None:
    assert LUMA_WEIGHTS == (0.299, 0.587, 0.114)
    assert abs(sum(LUMA_WEIGHTS) - 1) < 1e-12
    op = Colorization().bind(IDS, image_shape=SHAPE, seed=SEED)
    gray = images()[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(op.observe(gray), gray, rtol=0, atol=1e-6)
    red = torch.zeros(1, *SHAPE)
    red[:, 0] = 1.0
    y = Colorization().bind([0], image_shape=SHAPE, seed=SEED)(red, step=0)
    torch.testing.assert_close(y, torch.full_like(y, 0.299))
    with pytest.raises(ConfigError, match="3-channel"):
        Colorization().validate((1, 8, 8))


# ---------------------------------------------------------------- shape checks


def test_a_bad_image_shape_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="image_shape"):
        NoDegradation().validate((20, 30))
