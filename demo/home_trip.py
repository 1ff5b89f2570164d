"""Demo step: the last trip, then an errand home with the time-to-home sensor.

The running agent is stopped (SIGTERM): stopping ends its trip, so the car's
*Last trip* sensors fill in. It is started again with the errand track
(vehicle_agent/data/home_loop_track.gpx: leaves the demo home, turns at a shop
about 8 km away, comes back) replayed 10 times faster; once the car heads home
the *Time to home* sensor shows an estimate.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from demo.agent_process import agent_process
from demo.car_view import wait_for_values
from demo.paths import REPO_ROOT

if TYPE_CHECKING:
    from demo.story import DemoStory

HOME_TRACK = REPO_ROOT / "vehicle_agent" / "data" / "home_loop_track.gpx"
ERRAND_SPEED = 10.0  # the 21-minute errand in about two minutes; a minute heading home


def _number(state: dict[str, Any] | None) -> float | None:
    try:
        return float(state["state"]) if state is not None else None
    except (TypeError, ValueError):
        return None


async def step_home_trip(story: DemoStory) -> None:
    """Show the last trip and, while the replayed errand heads home, the time to home."""
    story.out.step(
        "The car's last trip, then an errand home: the time to home while it heads back",
        key="home_trip",
    )
    st = story.state
    assert st.agent is not None and st.layout is not None and st.agent_opts is not None
    assert st.car is not None
    by_key = {e.key: e.entity_id for e in st.car.entities}
    distance, eta = by_key.get("last_trip_distance"), by_key.get("time_to_home")
    if distance is None or eta is None:
        story.out.verdict(False, "the car has no last-trip or time-to-home sensor")
        return
    await st.agent.stop(timeout_s=15)  # ends the trip in progress
    trip = await wait_for_values(
        story.api, [distance], timeout_s=30, ready=lambda s: bool(_number(s.get(distance)))
    )
    km = _number(trip.get(distance))
    story.out.detail(f"{distance} = {km} km (the trip ended when the agent stopped)")
    st.agent_opts = dataclasses.replace(st.agent_opts, gps_track=HOME_TRACK, gps_speed=ERRAND_SPEED)
    st.agent = agent_process(st.layout, st.agent_opts)
    await st.agent.start()
    seen: list[float] = []

    def heading_home(states: dict[str, dict[str, Any]]) -> bool:
        value = _number(states.get(eta))
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
        return len(seen) >= 3  # a few updates of the estimate on the way back

    await wait_for_values(story.api, [eta], timeout_s=150, ready=heading_home)
    story.out.detail(f"{eta}: {', '.join(f'{v:g}' for v in seen) or 'never shown'} min")
    story.state.notes["home_trip"] = {"last_trip_km": km, "eta_minutes": seen}
    story._require(
        bool(km) and len(seen) >= 3 and seen[-1] < seen[0],
        f"last trip {km} km; time to home shown {len(seen)}x"
        + (f", from {seen[0]:g} down to {seen[-1]:g} min" if seen else ""),
    )
