"""bench.machine_load: ratios are withheld, with the reason, when the machine was busy before or during a run."""

from __future__ import annotations

import pytest

from bench import machine_load


def _window(load_before, others_cores):
    window = machine_load.Window(load_before=load_before, started=0.0, busy_before=None, own_before=0.0)
    window.load_after, window.others_cores = load_before, others_cores
    return window


@pytest.mark.parametrize("load_before, others, quiet", [(0.4, 0.05, True), (1.5, 0.3, True), (1.6, 0.0, False),
                                                         (0.2, 0.9, False), (0.2, None, True)])
def test_quiet_needs_low_load_before_and_idle_others_during(load_before, others, quiet):
    assert _window(load_before, others).quiet is quiet


def test_ratio_text_gives_the_ratio_with_the_load_or_says_why_not():
    assert machine_load.ratio_text(1.234, _window(0.4, 0.05), 1.2).startswith("1.23x (load 0.40")
    busy = machine_load.ratio_text(1.234, _window(7.5, 1.2), 1.2)
    assert busy.startswith("not reported: load average 7.50 > 1.5 before the run; other processes used 1.20 cores")


def test_a_real_window_measures_the_others_share_of_the_cpu():
    window = machine_load.open_window()
    sum(range(200_000))
    window.close()
    assert window.load_after is not None and window.others_cores is not None and window.others_cores >= 0
    assert set(window.as_dict()) >= {"load_average_before", "other_processes_cores", "quiet"}


def test_wait_until_quiet_gives_up_after_its_timeout(monkeypatch):
    monkeypatch.setattr(machine_load, "load_average", lambda: 9.0)
    monkeypatch.setattr(machine_load.time, "sleep", lambda seconds: None)
    messages = []
    assert machine_load.wait_until_quiet(timeout_s=0.0, log=messages.append) is False
    assert "still 9.00 > 1.5" in messages[-1]


def test_a_busy_measurement_is_made_again_after_waiting_then_given_up_on(monkeypatch):
    loads = iter([9.0, 9.0, 0.5, 0.5])  # before and after the first window, then the second
    monkeypatch.setattr(machine_load, "load_average", lambda: next(loads, 9.0))
    monkeypatch.setattr(machine_load, "_busy_seconds", lambda: None)
    waits, runs = [], []
    monkeypatch.setattr(machine_load, "wait_until_quiet", lambda **kwargs: waits.append(kwargs) or True)
    result, window, attempts = machine_load.measure_quietly(lambda: runs.append(1) or len(runs), retries=2,
                                                            wait_s=5.0, log=lambda text: None)
    assert (result, attempts, window.quiet, len(waits)) == (2, 2, True, 1)
    result, window, attempts = machine_load.measure_quietly(lambda: "busy", retries=1, wait_s=5.0,
                                                            log=lambda text: None)
    assert (result, attempts, window.quiet) == ("busy", 2, False)


def test_the_yardstick_times_a_numpy_import_and_a_loop_in_fresh_interpreters():
    yardstick = machine_load.machine_yardstick(rounds=2)
    assert yardstick["rounds"] == 2
    # A fresh interpreter imports NumPy each round (a cached module would cost ~0) and the loop runs 2 million steps.
    assert 0.005 < yardstick["numpy_import_cpu_s"] < 5
    assert 0.02 < yardstick["python_loop_cpu_s"] < 20
