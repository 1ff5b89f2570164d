"""History from a dead zone into long-term statistics.

After a dead zone the car sends ``history`` events (vehicle_agent/history.py):
one row per numeric signal per minute ``[start, span_s, mean, min, max]`` for
every hour the gap touched. Here the rows of each signal that a sensor with
``state_class: measurement`` shows are summed up per hour (mean weighted by
span, min, max), converted to the unit the sensor's statistics use, and
imported with the recorder's ``async_import_statistics`` under the sensor's
entity id (source ``recorder``), replacing what Home Assistant compiled for
those hours from the few states it saw. Live states are not touched.

Only hours that ended at least ``SETTLE`` ago are imported: Home Assistant
compiles an hour a few seconds after it ends and would refuse to add its own
row over an imported one. A later hour waits (in memory: an entry reload or
restart before then drops it) and is imported once it has settled.
Without the recorder loaded, history is ignored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from homeassistant.components.sensor import SensorStateClass
from homeassistant.components.sensor.const import UNIT_CONVERTERS
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .models import as_float

if TYPE_CHECKING:
    from .coordinator import CarHubCoordinator

HOUR = 3600.0
SETTLE = timedelta(minutes=5)
# Rows held per car while their hour settles (a day of 30 signals).
MAX_PENDING_ROWS = 45_000


def _measurement_sensors() -> dict[str, tuple[str, str | None]]:
    """VSS path -> (description key, device class) of the measurement sensors."""
    from .sensor import SENSORS

    return {
        d.signal: (d.key, d.device_class)
        for d in SENSORS
        if d.signal is not None and d.state_class == SensorStateClass.MEASUREMENT
    }


class HistoryImporter:
    """Per car: collect ``history`` rows, import settled hours into statistics."""

    def __init__(self, hass: HomeAssistant, coordinator: CarHubCoordinator) -> None:
        """Import for the sensors of *coordinator*'s car."""
        self._hass = hass
        self._coordinator = coordinator
        # (path, hour start) -> {row start: (span, mean, min, max)}
        self._rows: dict[tuple[str, float], dict[float, tuple[float, float, float, float]]] = (
            defaultdict(dict)
        )
        self._count = 0
        self._timer: CALLBACK_TYPE | None = None
        self.imported: list[tuple[str, datetime]] = []  # (entity id, hour) for diagnostics

    @callback
    def shutdown(self) -> None:
        """Cancel the timer of a waiting hour."""
        if self._timer is not None:
            self._timer()
            self._timer = None

    @callback
    def handle(self, data: Mapping[str, Any]) -> None:
        """One ``history`` event body's data (invalid parts are skipped, never raised)."""
        if "recorder" not in self._hass.config.components:
            LOGGER.debug("history from the car ignored: the recorder is not loaded")
            return
        signals = data.get("signals")
        if not isinstance(signals, Mapping):
            return
        wanted = _measurement_sensors()
        for path, rows in signals.items():
            if path not in wanted or not isinstance(rows, list):
                continue
            for row in rows:
                self._add(path, row)
        self._import_settled()

    def _add(self, path: str, row: Any) -> None:
        if not isinstance(row, list) or len(row) != 5:
            return
        values = [as_float(v) for v in row]
        if any(v is None for v in values):
            return
        start, span, mean, lo, hi = (float(v) for v in values if v is not None)
        if span <= 0 or span > HOUR or not lo <= mean <= hi:
            return
        if self._count >= MAX_PENDING_ROWS:
            return
        hour = math.floor(start / HOUR) * HOUR
        bucket = self._rows[(path, hour)]
        if start not in bucket:
            self._count += 1
        bucket[start] = (span, mean, lo, hi)

    @callback
    def _import_settled(self, _now: datetime | None = None) -> None:
        self._timer = None
        limit = dt_util.utcnow() - SETTLE
        ready = [k for k in self._rows if dt_util.utc_from_timestamp(k[1] + HOUR) <= limit]
        by_path: dict[str, list[tuple[float, dict[float, tuple[float, float, float, float]]]]] = (
            defaultdict(list)
        )
        for key in sorted(ready, key=lambda k: k[1]):
            rows = self._rows.pop(key)
            self._count -= len(rows)
            by_path[key[0]].append((key[1], rows))
        for path, hours in by_path.items():
            self._import(path, hours)
        if self._rows:
            first = min(hour for _, hour in self._rows)
            when = dt_util.utc_from_timestamp(first + HOUR) + SETTLE
            self._timer = async_track_point_in_utc_time(self._hass, self._import_settled, when)

    def _import(
        self, path: str, hours: list[tuple[float, dict[float, tuple[float, float, float, float]]]]
    ) -> None:
        from homeassistant.components.recorder.models import (
            StatisticData,
            StatisticMeanType,
            StatisticMetaData,
        )
        from homeassistant.components.recorder.statistics import async_import_statistics

        key, device_class = _measurement_sensors()[path]
        vehicle_id = self._coordinator.vehicle_id
        entity_id = er.async_get(self._hass).async_get_entity_id(
            Platform.SENSOR, DOMAIN, f"{vehicle_id}_{key}"
        )
        state = self._hass.states.get(entity_id) if entity_id else None
        if entity_id is None or state is None:
            return
        unit = state.attributes.get("unit_of_measurement")
        native = self._native_unit(path, device_class)
        converter = UNIT_CONVERTERS.get(device_class)

        def convert(value: float) -> float:
            if unit == native or converter is None:
                return value
            return converter.convert(value, native, unit)

        stats: list[StatisticData] = []
        for hour, rows in hours:
            total = sum(span for span, _, _, _ in rows.values())
            mean = sum(span * m for span, m, _, _ in rows.values()) / total
            stats.append(
                StatisticData(
                    start=dt_util.utc_from_timestamp(hour),
                    mean=convert(mean),
                    min=convert(min(lo for _, _, lo, _ in rows.values())),
                    max=convert(max(hi for _, _, _, hi in rows.values())),
                )
            )
        metadata: dict[str, Any] = {
            "mean_type": StatisticMeanType.ARITHMETIC,
            "has_sum": False,
            "name": None,
            "source": "recorder",
            "statistic_id": entity_id,
            "unit_of_measurement": unit,
        }
        if "unit_class" in StatisticMetaData.__annotations__:
            # Newer releases want the converter's class said (None: no converter).
            metadata["unit_class"] = converter.UNIT_CLASS if converter is not None else None
        try:
            async_import_statistics(self._hass, cast(StatisticMetaData, metadata), stats)
        except (HomeAssistantError, ValueError) as err:
            LOGGER.warning("cannot import the car's history of %s: %s", entity_id, err)
            return
        self.imported += [(entity_id, s["start"]) for s in stats]
        LOGGER.info("imported %d hour(s) of the car's history into %s", len(stats), entity_id)

    def _native_unit(self, path: str, device_class: str | None) -> str | None:
        from .sensor import UNIT_ALIASES

        meta = self._coordinator.data.declared.get(path) or {}
        declared = UNIT_ALIASES.get(str(meta.get("unit")))
        if declared is not None:
            return declared
        from .sensor import SENSORS

        for d in SENSORS:
            if d.signal == path:
                return d.native_unit_of_measurement
        return None
