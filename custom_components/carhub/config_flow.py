"""Config flow: pair a car (discovered or typed in), re-pair, hub settings, options.

Pairing is the bridge's ``pair_with_car``: the owner types the one-time code
the car shows, the two sides run SPAKE2 over it and the car receives a client
certificate signed by the home CA. The hub listener's port and external URL
are asked with the first car only (they are shared) and can be changed in the
reconfigure step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.selector import (
    AreaSelector,
    AreaSelectorConfig,
    ConversationAgentSelector,
    ConversationAgentSelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from bridge.errors import (
    BridgeError,
    LinkError,
    PairingClosedError,
    PairingCodeError,
    PairingError,
)
from bridge.pairing import PairingResult, pair_with_car

from .const import (
    CONF_AGENT_ID,
    CONF_AGENT_VERSION,
    CONF_ALLOWED_AREAS,
    CONF_ALLOWED_DOMAINS,
    CONF_ALLOWED_SENSITIVE,
    CONF_APPROACH_MINUTES,
    CONF_CODE,
    CONF_ETA_MAX_KM,
    CONF_EXTERNAL_URL,
    CONF_LISTEN_PORT,
    CONF_MAKE,
    CONF_MODEL,
    CONF_SIGNALS,
    CONF_VIN,
    DEFAULT_AGENT_ID,
    DEFAULT_LISTEN_PORT,
    DEFAULT_PAIRING_PORT,
    DOMAIN,
    LOGGER,
    SENSITIVE_CHOICES,
)
from .home_approach import DEFAULT_APPROACH_MINUTES, DEFAULT_ETA_MAX_KM
from .hub import (
    DATA_HUB,
    async_get_home_ca,
    async_hub_info,
    async_move_hub,
    async_revoke_certificate,
    check_port_free,
)
from .models import CarHubConfigEntry

PORT_SELECTOR = NumberSelector(
    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
)
CODE_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.TEXT))
URL_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))


def _valid_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("wss", "https") and bool(parts.hostname)


def _hub_schema(port: int, external_url: str | None) -> dict[vol.Marker, Any]:
    return {
        vol.Required(CONF_LISTEN_PORT, default=port): PORT_SELECTOR,
        vol.Optional(
            CONF_EXTERNAL_URL,
            description={"suggested_value": external_url} if external_url else None,
        ): URL_SELECTOR,
    }


class CarHubConfigFlow(ConfigFlow, domain=DOMAIN):
    """Pair a car with this home."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing discovered."""
        self._host: str | None = None
        self._port: int = DEFAULT_PAIRING_PORT
        self._name: str | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: CarHubConfigEntry) -> CarHubOptionsFlow:
        """Per-car voice options."""
        return CarHubOptionsFlow()

    # -- shared hub settings --------------------------------------------------------
    def _hub_settings(self) -> tuple[int, str | None] | None:
        """The settings of the already configured hub, or None for the first car."""
        for entry in self._async_current_entries(include_ignore=False):
            if CONF_LISTEN_PORT in entry.data:
                return int(entry.data[CONF_LISTEN_PORT]), entry.data.get(CONF_EXTERNAL_URL)
        return None

    def _hub_fields(self, user_input: Mapping[str, Any]) -> tuple[int, str | None]:
        if (settings := self._hub_settings()) is not None:
            return settings
        external = (user_input.get(CONF_EXTERNAL_URL) or "").strip() or None
        return int(user_input.get(CONF_LISTEN_PORT, DEFAULT_LISTEN_PORT)), external

    async def _async_pair(
        self,
        host: str,
        port: int,
        code: str,
        listen_port: int,
        external_url: str | None,
        errors: dict[str, str],
    ) -> PairingResult | None:
        """Run the pairing; fill ``errors`` and return None when it fails."""
        ca = await async_get_home_ca(self.hass)
        hub = self.hass.data.get(DATA_HUB)
        # A running hub may have bound another port than configured (port 0).
        dial_port = hub.listen_port if hub is not None and hub.listen_port else listen_port
        info = await async_hub_info(self.hass, ca, dial_port, external_url)
        try:
            return await pair_with_car(host=host, port=port, code=code, ca=ca, hub=info)
        except PairingCodeError:
            errors["base"] = "invalid_code"
        except PairingClosedError:
            errors["base"] = "pairing_closed"
        except (PairingError, LinkError, OSError, TimeoutError) as err:
            LOGGER.debug("Pairing with %s:%s failed: %s", host, port, err)
            errors["base"] = "cannot_connect"
        except Exception:
            LOGGER.exception("Unexpected error while pairing with %s:%s", host, port)
            errors["base"] = "unknown"
        return None

    @asynccontextmanager
    async def _revoke_on_abort(self, result: PairingResult) -> AsyncIterator[None]:
        """Revoke the certificate pairing just issued if the flow aborts after all.

        The car already holds it; without an entry nobody would manage it (and
        for a mismatch it belongs to another car than the entry's).
        """
        try:
            yield
        except AbortFlow as abort:
            vehicle_id = result.vehicle.vehicle_id
            try:
                await async_revoke_certificate(self.hass, result.certificate_pem)
            except (BridgeError, OSError, ValueError) as err:
                LOGGER.error(
                    "Could not revoke the certificate just issued to %s: %s", vehicle_id, err
                )
            else:
                LOGGER.info(
                    "Pairing with %s aborted (%s): its new certificate is revoked",
                    vehicle_id,
                    abort.reason,
                )
            raise

    def _entry_data(
        self, result: PairingResult, host: str, port: int, listen_port: int, external: str | None
    ) -> dict[str, Any]:
        vehicle = result.vehicle
        return {
            CONF_HOST: host,
            CONF_PORT: port,
            CONF_VIN: vehicle.vin,
            CONF_MAKE: vehicle.make,
            CONF_MODEL: vehicle.model,
            CONF_AGENT_VERSION: vehicle.agent_version,
            CONF_LISTEN_PORT: listen_port,
            CONF_EXTERNAL_URL: external,
            CONF_SIGNALS: {},
        }

    @staticmethod
    def _title(result: PairingResult) -> str:
        vehicle = result.vehicle
        return f"{vehicle.make} {vehicle.model}".strip() or vehicle.vehicle_id

    def _check_hub_input(self, user_input: Mapping[str, Any], errors: dict[str, str]) -> None:
        if self._hub_settings() is None:
            external = (user_input.get(CONF_EXTERNAL_URL) or "").strip()
            if external and not _valid_url(external):
                errors[CONF_EXTERNAL_URL] = "invalid_url"

    # -- manual --------------------------------------------------------------------
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pair a car by its address and the code it shows."""
        errors: dict[str, str] = {}
        if user_input is not None:
            self._check_hub_input(user_input, errors)
            host = user_input[CONF_HOST].strip()
            port = int(user_input[CONF_PORT])
            listen_port, external = self._hub_fields(user_input)
            if not errors and (
                result := await self._async_pair(
                    host, port, user_input[CONF_CODE], listen_port, external, errors
                )
            ):
                async with self._revoke_on_abort(result):
                    await self.async_set_unique_id(
                        result.vehicle.vehicle_id, raise_on_progress=False
                    )
                    self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=self._title(result),
                    data=self._entry_data(result, host, port, listen_port, external),
                )
        schema: dict[vol.Marker, Any] = {
            vol.Required(CONF_HOST): str,
            vol.Required(CONF_PORT, default=DEFAULT_PAIRING_PORT): PORT_SELECTOR,
            vol.Required(CONF_CODE): CODE_SELECTOR,
        }
        if self._hub_settings() is None:
            schema.update(_hub_schema(DEFAULT_LISTEN_PORT, None))
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(schema), user_input),
            errors=errors,
        )

    # -- discovery ---------------------------------------------------------------------
    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A car in pairing mode announced itself."""
        props = discovery_info.properties
        vehicle_id = props.get("vehicle_id")
        if not vehicle_id:
            return self.async_abort(reason="invalid_discovery")
        try:
            port = int(props.get("pairing_port") or discovery_info.port or DEFAULT_PAIRING_PORT)
        except ValueError:
            return self.async_abort(reason="invalid_discovery")
        host = discovery_info.host
        await self.async_set_unique_id(vehicle_id)
        # Keep the car's pairing address current, without reloading anything.
        self._abort_if_unique_id_configured(
            updates={CONF_HOST: host, CONF_PORT: port}, reload_on_update=False
        )
        self._host, self._port = host, port
        self._name = f"{props.get('make', '')} {props.get('model', '')}".strip() or vehicle_id
        self.context["title_placeholders"] = {"name": self._name}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the code the discovered car shows."""
        assert self._host is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            self._check_hub_input(user_input, errors)
            listen_port, external = self._hub_fields(user_input)
            if not errors and (
                result := await self._async_pair(
                    self._host, self._port, user_input[CONF_CODE], listen_port, external, errors
                )
            ):
                async with self._revoke_on_abort(result):
                    if result.vehicle.vehicle_id != self.unique_id:
                        raise AbortFlow("wrong_vehicle")
                    self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=self._title(result),
                    data=self._entry_data(result, self._host, self._port, listen_port, external),
                )
        schema: dict[vol.Marker, Any] = {vol.Required(CONF_CODE): CODE_SELECTOR}
        if self._hub_settings() is None:
            schema.update(_hub_schema(DEFAULT_LISTEN_PORT, None))
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(schema), user_input),
            description_placeholders={"name": self._name or "", "host": self._host},
            errors=errors,
        )

    # -- re-pairing ---------------------------------------------------------------------
    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The car's certificate was revoked or expired: pair again."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the car's address and a fresh code."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            host = user_input[CONF_HOST].strip()
            port = int(user_input[CONF_PORT])
            listen_port = int(entry.data.get(CONF_LISTEN_PORT, DEFAULT_LISTEN_PORT))
            external = entry.data.get(CONF_EXTERNAL_URL)
            if result := await self._async_pair(
                host, port, user_input[CONF_CODE], listen_port, external, errors
            ):
                async with self._revoke_on_abort(result):
                    await self.async_set_unique_id(
                        result.vehicle.vehicle_id, raise_on_progress=False
                    )
                    self._abort_if_unique_id_mismatch(reason="wrong_vehicle")
                data = self._entry_data(result, host, port, listen_port, external)
                data[CONF_SIGNALS] = entry.data.get(CONF_SIGNALS, {})
                return self.async_update_reload_and_abort(entry, data_updates=data)
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST): str,
                vol.Required(CONF_PORT): PORT_SELECTOR,
                vol.Required(CONF_CODE): CODE_SELECTOR,
            }
        )
        suggested = user_input or {
            CONF_HOST: entry.data.get(CONF_HOST),
            CONF_PORT: entry.data.get(CONF_PORT, DEFAULT_PAIRING_PORT),
        }
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            description_placeholders={"name": entry.title},
            errors=errors,
        )

    # -- hub settings -----------------------------------------------------------------------
    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the shared listener's port or external URL (applies to every car)."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            external = (user_input.get(CONF_EXTERNAL_URL) or "").strip() or None
            port = int(user_input[CONF_LISTEN_PORT])
            if external and not _valid_url(external):
                errors[CONF_EXTERNAL_URL] = "invalid_url"
            elif (moved := await self._async_move_listener(port, external, errors)) is not None:
                updates = {CONF_LISTEN_PORT: port, CONF_EXTERNAL_URL: external}
                for other in self._async_current_entries(include_ignore=False):
                    if other.entry_id != entry.entry_id:
                        self.hass.config_entries.async_update_entry(
                            other, data={**other.data, **updates}
                        )
                if moved:
                    # The shared listener already runs with the new settings.
                    self.hass.config_entries.async_update_entry(
                        entry, data={**entry.data, **updates}
                    )
                    return self.async_abort(reason="reconfigure_successful")
                return self.async_update_reload_and_abort(entry, data_updates=updates)
        current = int(entry.data.get(CONF_LISTEN_PORT, DEFAULT_LISTEN_PORT))
        schema = vol.Schema(_hub_schema(current, entry.data.get(CONF_EXTERNAL_URL)))
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def _async_move_listener(
        self, port: int, external: str | None, errors: dict[str, str]
    ) -> bool | None:
        """Move the running listener now (the old one stays if that fails).

        True: moved; False: no listener runs, but ``port`` can be bound; None:
        it cannot (``errors`` says why).
        """
        try:
            if await async_move_hub(self.hass, port, external):
                return True
            await self.hass.async_add_executor_job(check_port_free, port)
        except OSError as err:
            LOGGER.debug("Listener port %s cannot be used: %s", port, err)
            errors[CONF_LISTEN_PORT] = "port_in_use"
            return None
        except BridgeError as err:
            LOGGER.error("The listener cannot start with the new settings: %s", err)
            errors["base"] = "unknown"
            return None
        return False


def approach_options_schema(options: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    """Thresholds of approaching home (custom_components/carhub/home_approach.py)."""
    return {
        vol.Optional(
            CONF_APPROACH_MINUTES,
            default=options.get(CONF_APPROACH_MINUTES, DEFAULT_APPROACH_MINUTES),
        ): NumberSelector(NumberSelectorConfig(min=1, max=120, step=1, unit_of_measurement="min")),
        vol.Optional(
            CONF_ETA_MAX_KM, default=options.get(CONF_ETA_MAX_KM, DEFAULT_ETA_MAX_KM)
        ): NumberSelector(NumberSelectorConfig(min=1, max=1000, step=1, unit_of_measurement="km")),
    }


class CarHubOptionsFlow(OptionsFlow):
    """Which conversation agent answers the car, and what the car may touch."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form with every option."""
        if user_input is not None:
            return self.async_create_entry(data=user_input)
        options = self.config_entry.options
        domains = sorted({state.domain for state in self.hass.states.async_all()})
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_AGENT_ID, default=options.get(CONF_AGENT_ID, DEFAULT_AGENT_ID)
                ): ConversationAgentSelector(
                    ConversationAgentSelectorConfig(language=self.hass.config.language)
                ),
                vol.Optional(
                    CONF_ALLOWED_DOMAINS, default=options.get(CONF_ALLOWED_DOMAINS, [])
                ): SelectSelector(
                    SelectSelectorConfig(
                        options=domains,
                        multiple=True,
                        custom_value=True,
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                vol.Optional(
                    CONF_ALLOWED_AREAS, default=options.get(CONF_ALLOWED_AREAS, [])
                ): AreaSelector(AreaSelectorConfig(multiple=True)),
                vol.Optional(
                    CONF_ALLOWED_SENSITIVE, default=options.get(CONF_ALLOWED_SENSITIVE, [])
                ): SelectSelector(
                    SelectSelectorConfig(
                        options=list(SENSITIVE_CHOICES),
                        multiple=True,
                        mode=SelectSelectorMode.LIST,
                        translation_key="sensitive",
                    )
                ),
                **approach_options_schema(options),
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema)
