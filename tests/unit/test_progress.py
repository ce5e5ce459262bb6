"""Progress output: live bars on a terminal, a handful of whole lines in a log file."""

from __future__ import annotations

import io

from tqdm.auto import tqdm

from sphinx.rundir.progress import LineProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_into_a_file_writes_a_line_per_quarter_not_one_per_step():
    log = io.StringIO()
    bar = progress_bar(desc="steps", unit="step", stream=log)
    assert isinstance(bar, LineProgress)
    bar.reset(total=5000)
    for step in range(5000):
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}", refresh=False)
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert [line.split(" step in")[0] for line in lines] == [
        "steps: 1250/5000",
        "steps: 2500/5000",
        "steps: 3750/5000",
        "steps: 5000/5000",
    ]
    assert "\r" not in log.getvalue() and lines[-1].endswith("[loss=0.0002]")


def test_large_updates_past_several_quarters_write_one_line():
    log = io.StringIO()
    bar = progress_bar(desc="images", unit="img", total=8, stream=log)
    bar.update(7)
    bar.update(1)
    bar.close()
    assert [line.split(" img in")[0] for line in log.getvalue().splitlines()] == ["images: 7/8", "images: 8/8"]


def test_a_bar_that_never_moved_writes_nothing():
    log = io.StringIO()
    progress_bar(desc="steps", unit="step", total=10, stream=log).close()
    assert log.getvalue() == ""


def test_a_terminal_gets_a_live_tqdm_bar():
    bar = progress_bar(desc="steps", unit="step", total=3, stream=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()
