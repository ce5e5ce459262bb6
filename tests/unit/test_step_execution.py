"""How a step runs: it never waits on the host between checks, its launches do not grow with the
batch, and the execution options (check interval, whole-batch CPU, bfloat16, compile) keep results."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import fast_tier, images_of
from helpers.dispatch import StepDispatchCounter
from sphinx.errors import ConfigError
from sphinx.generators.stylegan2 import Generator
from sphinx.inversion import METHODS, invert
from sphinx.inversion import loop as loop_code
from sphinx.inversion.execution import Execution
from sphinx.metrics.lpips import LPIPS
from sphinx.utils.seeding import StepDraws, per_image_randn
from tests.unit.test_inversion import PoisonOneImage

CHECK_EVERY = 4
RUNS = {  # ten steps, and every stage of every method
    "sphinx": dict(steps=10, spread_draws=0),
    "sphinx_warm": dict(steps=10, spread_draws=0),
    "sphinx_fast": dict(steps=10, spread_draws=0),
    "sphinx_ps": dict(steps=10, spread_draws=0),
    "sphinx_ps_pc": dict(steps=10, spread_draws=0),
    "w": dict(steps=10, w_avg_samples=64),
    "wplus": dict(steps=10, w_avg_samples=64),
    "wplus_noise": dict(steps=10, noise_steps=5, w_avg_samples=64),
    "pti": dict(pivot_steps=5, steps=5, w_avg_samples=64, lpips_threshold=0.0, locality_regularization=True),
    "ilo": dict(rounds=(4, 3, 3), fit_samples=64, project_balls=True),
}


@pytest.fixture(scope="module")
def lpips():
    return LPIPS("vgg", pretrained=False)


def stage_starts(method: str) -> set[int]:
    options = RUNS[method]
    if method == "wplus_noise":
        return {options["steps"] - options["noise_steps"]}
    if method == "ilo":  # a round starts by computing the map that enters its block
        return {sum(options["rounds"][:k]) for k in range(1, len(options["rounds"]))}
    return {options["pivot_steps"]} if method == "pti" else set()


def count_steps(generator, images, lpips, method, execution, **options):
    counter = StepDispatchCounter()
    with counter:
        invert(
            generator,
            images,
            [f"image{i}" for i in range(len(images))],
            method=method,
            lpips=lpips,
            callback=counter.mark,
            execution=execution,
            **{**RUNS[method], **options},
        )
    return counter.steps


def shorter(method: str) -> dict:
    """Six steps of the method (wplus_noise's noise stage from step 4; ilo's rounds of 2)."""
    if method == "ilo":
        return {"rounds": (2, 2, 2)}
    return {"steps": 6, **({"noise_steps": 2} if method == "wplus_noise" else {})}


# --- no host syncs, no launches per image --------------------------------------------------


@pytest.mark.parametrize("method", fast_tier(METHODS, keep=("sphinx", "pti")))
def test_a_step_waits_for_the_device_only_at_its_checks(tiny_generator, lpips, method):
    images = images_of(tiny_generator, 1 if method == "pti" else 2)
    steps = count_steps(tiny_generator, images, lpips, method, Execution(check_every=CHECK_EVERY))
    # a step's count runs from the previous report to its own: its checks fall at multiples of k
    allowed = {s for s in range(len(steps)) if s % CHECK_EVERY == 0} | stage_starts(method)
    waiting = {s.step: s.sync_names for s in steps if s.syncs and s.step not in allowed}
    assert not waiting, waiting


@pytest.mark.slow  # a batch of 16 for every method
@pytest.mark.parametrize("method", [m for m in METHODS if m != "pti"])  # pti: one image per batch
def test_the_ops_a_step_dispatches_do_not_grow_with_the_batch(tiny_generator, lpips, method):
    whole_batch = Execution(check_every=100, exact_batch=False)
    one, sixteen = (
        count_steps(
            tiny_generator,
            images_of(tiny_generator, batch),
            lpips,
            method,
            whole_batch,
            record_curve=False,
            **shorter(method),
        )
        for batch in (1, 16)
    )
    # from step 2 on: past Adam's first step, inside one block of draws
    assert [s.ops for s in one[2:]] == [s.ops for s in sixteen[2:]]


def test_per_image_draws_are_the_same_numbers_whatever_block_they_are_drawn_in():
    ids = ["cat.png", "dog.png"]
    ahead = StepDraws((4, 8), ids, 3, "vicinal_z", block=5, limit=12)
    for step in (0, 4, 5, 11, 2, 7):
        assert torch.equal(ahead(step), per_image_randn((4, 8), ids, 3, "vicinal_z", step))
    alone = StepDraws((4, 8), ids[1:], 3, "vicinal_z", block=3)
    assert torch.equal(alone(6)[0], ahead(6)[1])  # an image's draws ignore its batch


# --- checks every k steps: same results ---------------------------------------------------


def assert_same_results(first, second):
    assert first.status == second.status and first.messages == second.messages
    torch.testing.assert_close(first.loss_history, second.loss_history, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(first.reconstructions, second.reconstructions, rtol=0, atol=0, equal_nan=True)
    assert first.curve.steps == second.curve.steps
    for a, b in zip(first.states, second.states):
        if a.image_id in [i for i, s in zip(first.ids, first.status) if s == "ok"]:
            assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def test_a_pti_stop_found_at_a_later_check_ends_where_it_was_met(tiny_generator, lpips):
    images = images_of(tiny_generator, 1)
    options = dict(method="pti", lpips=lpips, pivot_steps=3, steps=30, w_avg_samples=64, lpips_threshold=0.06)
    at_once = invert(tiny_generator, images, ["a"], execution=Execution(check_every=1), **options)
    late = invert(tiny_generator, images, ["a"], execution=Execution(check_every=11), **options)
    assert 3 + 1 < at_once.loss_history.shape[0] < 3 + 30  # it stopped inside the tuning stage
    assert at_once.loss_history.shape[0] % 11 != 0  # and not at one of the late run's checks
    assert_same_results(at_once, late)


def test_a_failure_found_at_a_later_check_keeps_its_step_and_the_others_untouched(tiny_generator, lpips):
    images, ids = images_of(tiny_generator, 3), ["a", "b", "c"]
    runs = [
        invert(
            tiny_generator,
            images,
            ids,
            lpips=lpips,
            steps=8,
            degradation=PoisonOneImage("b", 5),
            execution=Execution(check_every=k),
        )
        for k in (1, 7)
    ]
    assert runs[0].status == ("ok", "failed", "ok") and "step 5 (sphinx)" in runs[0].messages[1]
    assert_same_results(*runs)


def test_a_batch_whose_images_all_fail_stops_where_the_last_one_failed(tiny_generator, lpips):
    images = images_of(tiny_generator, 1)
    runs = [
        invert(
            tiny_generator,
            images,
            ["a"],
            lpips=lpips,
            steps=12,
            degradation=PoisonOneImage("a", 3),
            execution=Execution(check_every=k),
        )
        for k in (1, 5)
    ]
    assert [r.loss_history.shape[0] for r in runs] == [4, 4]
    assert runs[0].messages == runs[1].messages == ("non-finite loss at step 3 (sphinx)",)


# --- opt-in paths ---------------------------------------------------------------------------


@pytest.mark.slow  # an opt-in path, two inversions
def test_the_whole_batch_cpu_path_agrees_with_the_exact_one_to_float_rounding(tiny_generator, lpips):
    images, ids = images_of(tiny_generator, 3), ["a", "b", "c"]
    exact = invert(tiny_generator, images, ids, lpips=lpips, steps=8, spread_draws=0)
    whole = invert(
        tiny_generator, images, ids, lpips=lpips, steps=8, spread_draws=0, execution=Execution(exact_batch=False)
    )
    torch.testing.assert_close(whole.reconstructions, exact.reconstructions, rtol=0, atol=1e-3)
    alone = invert(
        tiny_generator,
        images[:1],
        ids[:1],
        lpips=lpips,
        steps=8,
        spread_draws=0,
        execution=Execution(exact_batch=False),
    )
    assert torch.equal(
        alone.reconstructions[0],
        invert(tiny_generator, images[:1], ids[:1], lpips=lpips, steps=8, spread_draws=0).reconstructions[0],
    )


@pytest.mark.slow  # an opt-in path, two inversions
def test_bfloat16_runs_generator_and_lpips_in_bfloat16_and_keeps_parameters_float32(tiny_generator, lpips):
    images = images_of(tiny_generator, 2)
    convolution_dtypes = set()

    class Watch(StepDispatchCounter):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.convolution.default:
                convolution_dtypes.add(args[0].dtype)
            return super().__torch_dispatch__(func, types, args, kwargs)

    with Watch():
        result = invert(
            tiny_generator,
            images,
            ["a", "b"],
            lpips=lpips,
            steps=12,
            spread_draws=0,
            lr=1e-2,
            execution=Execution(precision="bfloat16"),
        )
    assert torch.bfloat16 in convolution_dtypes
    assert all(t.dtype == torch.float32 for s in result.states for t in s.tensors.values())
    assert result.loss_history.dtype == torch.float32 and (result.loss_history[-1] < result.loss_history[0]).all()


@pytest.mark.slow  # inductor compiles C++ on a CPU: ~85 CPU-s at 8 px when its cache is cold, ~155 at 32 px
def test_a_compiled_synthesis_gives_the_eager_results_to_float_rounding():
    # Every layer kind (constant input, modulated and upsampling convolutions, noise, skip-upsampled
    # RGB) at two resolutions: inductor compiles a kernel per layer shape, so a deeper generator
    # only costs compile time. MSE alone: LPIPS is not part of the compiled synthesis.
    torch.manual_seed(0)
    generator = Generator(8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8}).eval()
    images = images_of(generator, 2)
    options = dict(method="wplus", lpips_weight=0, steps=5, w_avg_samples=64)
    eager = invert(generator, images, ["a", "b"], **options)
    compiled = invert(generator, images, ["a", "b"], **options, execution=Execution(compile="synthesis"))
    torch.testing.assert_close(compiled.reconstructions, eager.reconstructions, rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "option, value", [("check_every", 0), ("exact_batch", "no"), ("compile", "graphs"), ("precision", "float16")]
)
def test_execution_options_that_cannot_work_are_refused(option, value):
    with pytest.raises(ConfigError, match=f"execution.{option}"):
        Execution(**{option: value})


def test_the_default_lpips_is_built_once_per_process(tiny_generator, monkeypatch):
    import sphinx.metrics.lpips as lpips_code

    built = []
    monkeypatch.setattr(lpips_code, "LPIPS", lambda net: built.append(net) or LPIPS(net, pretrained=False))
    loop_code.default_lpips.cache_clear()
    try:
        for _ in range(2):
            invert(tiny_generator, images_of(tiny_generator, 1), ["a"], method="wplus", steps=1, w_avg_samples=64)
    finally:
        loop_code.default_lpips.cache_clear()
    assert built == ["vgg"]


# --- the Lightning layer ----------------------------------------------------------------------


def test_the_progress_callback_reads_no_tensor_between_refreshes_and_logs(tiny_generator, tmp_path):
    from sphinx.degradations import NoDegradation
    from sphinx.inversion import StepReport
    from sphinx.inversion.methods import method_config
    from sphinx.lit.module import InversionModule

    module = InversionModule(
        tiny_generator, method=method_config("wplus"), degradation=NoDegradation(), seed=0, lpips=None
    )

    class Bar:  # tqdm's attributes that the module reads
        total, n = 10, 3

        def update(self, count):
            self.n += count

    bar, loss = Bar(), torch.tensor([0.5, math.nan])
    module._postfix_due = math.inf  # just refreshed
    counter = StepDispatchCounter()
    with counter:
        module._on_step(StepReport("w+", 3, 10, loss, {"mse": loss}), bar)
    assert counter.tail.ops == 0 and bar.n == 4
