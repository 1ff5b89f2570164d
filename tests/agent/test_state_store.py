"""StateStore: deadband, rate limit, quiet period, snapshot, listeners (injected time)."""

import itertools

from vehicle_agent.state_store import Change, SignalPolicy, StateStore


def make(policy, clock=lambda: 0.0):
    return StateStore({"Vehicle.Speed": policy}, clock=clock)


def test_first_value_is_emitted_and_snapshot_has_it():
    store = make(SignalPolicy())
    assert store.update("Vehicle.Speed", 10.0, ts=1.0) == Change("Vehicle.Speed", 10.0, 1.0)
    assert store.snapshot() == {"Vehicle.Speed": {"value": 10.0, "ts": 1.0}}
    assert store.drain() == [Change("Vehicle.Speed", 10.0, 1.0)]
    assert store.drain() == []


def test_deadband_holds_small_changes_then_quiet_period_sends_the_last():
    store = make(SignalPolicy(deadband=1.0, quiet_period=2.0))
    store.update("Vehicle.Speed", 50.0, ts=0.0)
    assert store.update("Vehicle.Speed", 50.5, ts=0.1) is None
    assert store.update("Vehicle.Speed", 50.8, ts=0.2) is None
    assert store.held == 1
    assert store.tick(1.0) == []  # changed 0.8 s ago: not quiet yet
    assert store.tick(2.3) == [Change("Vehicle.Speed", 50.8, 0.2)]
    assert store.held == 0
    assert store.tick(10.0) == []  # nothing left


def test_change_beyond_deadband_is_sent_at_once():
    store = make(SignalPolicy(deadband=1.0))
    store.update("Vehicle.Speed", 50.0, ts=0.0)
    assert store.update("Vehicle.Speed", 51.5, ts=0.1) == Change("Vehicle.Speed", 51.5, 0.1)
    # The deadband is measured against the last value sent, not the last seen.
    assert store.update("Vehicle.Speed", 52.0, ts=0.2) is None
    assert store.update("Vehicle.Speed", 52.6, ts=0.3) == Change("Vehicle.Speed", 52.6, 0.3)


def test_rate_limit_holds_then_sends_the_latest_when_the_window_opens():
    store = make(SignalPolicy(rate_limit=2.0))  # one per 0.5 s
    assert store.update("Vehicle.Speed", 1.0, ts=0.0) is not None
    assert store.update("Vehicle.Speed", 2.0, ts=0.1) is None
    assert store.update("Vehicle.Speed", 3.0, ts=0.2) is None
    assert store.next_due() == 0.5
    assert store.tick(0.4) == []
    assert store.tick(0.5) == [Change("Vehicle.Speed", 3.0, 0.2)]
    # An update after the window is sent directly.
    assert store.update("Vehicle.Speed", 4.0, ts=1.1) == Change("Vehicle.Speed", 4.0, 1.1)
    emitted = [c.value for c in store.drain()]
    assert emitted == [1.0, 3.0, 4.0]


def test_rate_limit_bounds_emissions_over_a_burst():
    store = make(SignalPolicy(rate_limit=5.0))
    for i in range(1000):  # 1000 different values over 10 s
        t = i * 0.01
        store.update("Vehicle.Speed", float(i), ts=t)
        store.tick(t)
    sent = store.drain()
    assert 45 <= len(sent) <= 51
    gaps = [b.ts - a.ts for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.2 - 1e-9


def test_returning_to_the_sent_value_cancels_the_held_one():
    store = make(SignalPolicy(deadband=1.0, quiet_period=1.0))
    store.update("Vehicle.Speed", 10.0, ts=0.0)
    store.update("Vehicle.Speed", 10.4, ts=0.1)
    store.update("Vehicle.Speed", 10.0, ts=0.2)
    assert store.held == 0
    assert store.tick(5.0) == []


def test_held_value_flushed_on_update_after_quiet_period_without_tick():
    store = make(SignalPolicy(deadband=1.0, quiet_period=1.0))
    store.update("Vehicle.Speed", 10.0, ts=0.0)
    store.update("Vehicle.Speed", 10.4, ts=0.1)
    # Same value keeps arriving (a CAN signal repeats): quiet since 0.1.
    assert store.update("Vehicle.Speed", 10.4, ts=0.5) is None
    assert store.update("Vehicle.Speed", 10.4, ts=1.2) == Change("Vehicle.Speed", 10.4, 1.2)


def test_booleans_and_strings_ignore_deadband():
    store = StateStore(default_policy=SignalPolicy(deadband=5.0))
    store.update("Vehicle.Cabin.Door.Row1.DriverSide.IsOpen", False, ts=0)
    assert store.update("Vehicle.Cabin.Door.Row1.DriverSide.IsOpen", True, ts=1) is not None
    store.update("Vehicle.Powertrain.Transmission.SelectedGear", "P", ts=0)
    assert store.update("Vehicle.Powertrain.Transmission.SelectedGear", "D", ts=1) is not None
    # 0 -> False is a change of type, not a repeat
    store.update("Vehicle.X", 0, ts=0)
    assert store.update("Vehicle.X", False, ts=1) is not None


def test_listeners_get_changes_and_a_failing_listener_does_not_stop_others():
    store = make(SignalPolicy())
    seen = []

    def broken(change):
        raise RuntimeError("boom")

    store.add_listener(broken)
    remove = store.add_listener(seen.append)
    store.update("Vehicle.Speed", 1.0, ts=0)
    remove()
    store.update("Vehicle.Speed", 2.0, ts=1)
    assert seen == [Change("Vehicle.Speed", 1.0, 0)]
    assert len(store.drain()) == 2


def test_clock_is_used_when_no_timestamp_is_given():
    now = [100.0]
    store = make(SignalPolicy(rate_limit=1.0), clock=lambda: now[0])
    store.update("Vehicle.Speed", 1.0)
    store.update("Vehicle.Speed", 2.0)
    assert store.tick() == []
    now[0] = 101.0
    assert store.tick() == [Change("Vehicle.Speed", 2.0, 100.0)]
    assert store.get("Vehicle.Speed") == (2.0, 100.0)


def test_flush_sends_everything_held_and_unknown_paths_use_default_policy():
    store = StateStore(default_policy=SignalPolicy(rate_limit=0.1))
    store.update("Vehicle.A", 1, ts=0)
    store.update("Vehicle.A", 2, ts=1)
    store.update("Vehicle.B", "x", ts=0)
    store.update("Vehicle.B", "y", ts=1)
    assert {c.path: c.value for c in store.flush()} == {"Vehicle.A": 2, "Vehicle.B": "y"}
    assert store.held == 0
    assert len(store) == 2 and "Vehicle.A" in store and store.value("Vehicle.C", 7) == 7
