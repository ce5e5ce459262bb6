"""StopSignals: inside a batch the first SIGTERM/SIGINT asks the loop to stop at its next step;
outside a batch, or at a second signal, the run stops at once. (The entry point's behaviour under
real signals is tested in tests/test_preemption.py.)"""

from __future__ import annotations

import signal

import pytest

from sphinx.errors import RunInterrupted
from sphinx.rundir.signals import SIGNALS, StopSignals, exit_status


@pytest.fixture
def stop():
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    stop = StopSignals()
    stop.install()
    yield stop
    for number, handler in previous.items():
        signal.signal(number, handler)


@pytest.mark.parametrize("number", SIGNALS, ids=lambda number: signal.Signals(number).name)
def test_inside_a_batch_the_first_signal_is_a_request_and_the_second_stops_at_once(stop, number):
    stop.deferring = True
    signal.raise_signal(number)
    assert stop.requested() == signal.Signals(number).name
    with pytest.raises(RunInterrupted):
        signal.raise_signal(number)


def test_outside_a_batch_a_signal_stops_at_once(stop):
    with pytest.raises(RunInterrupted) as stopped:
        signal.raise_signal(signal.SIGTERM)
    assert stopped.value.signal_name == "SIGTERM" and stop.requested() is None


def test_the_exit_status_is_the_shells_for_the_signal():
    assert exit_status("SIGTERM") == 143 and exit_status("SIGINT") == 130


def test_a_schedulers_warning_handler_is_kept_and_handed_the_stop_once_the_batch_is_saved():
    from sphinx.rundir import signals

    previous = {number: signal.getsignal(number) for number in SIGNALS}
    calls = []
    signal.signal(signal.SIGUSR2, lambda number, frame: calls.append(number))  # submitit's requeue, say
    try:
        stop = StopSignals()
        stop.install()
        stop.install()  # again, as the module does at the start of its loop: the scheduler's is still the one kept
        stop.deferring = True
        signal.raise_signal(signal.SIGUSR2)
        assert stop.requested() == "SIGUSR2" and calls == []  # the batch is saved first
        assert signals.hand_over("SIGUSR2") is True and calls == [signal.SIGUSR2]
        assert signals.hand_over("SIGTERM") is False  # nobody waits for it: the run exits as it always did
    finally:
        signals._SCHEDULER_HANDLERS.clear()
        for number, handler in previous.items():
            signal.signal(number, handler)
