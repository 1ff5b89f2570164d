"""The cars' way in through Home Assistant's own web server: ``/api/carhub/link``.

Wherever Home Assistant is reachable (Home Assistant Cloud, a reverse proxy,
a tunnel, port 8123 on the LAN), a car can open a WebSocket here and run its
mutual TLS 1.3 session inside it (``bridge.tunnel``). Home Assistant's own
authentication is not used (``requires_auth = False``): the car authenticates
with its certificate inside the tunnel, end to end, so a proxy that ends the
outer TLS learns nothing and can change nothing. A failed inner handshake
counts as a failed login in Home Assistant's IP ban (``http:
login_attempts_threshold``), so a scanner is banned like one guessing
passwords; a car that gets through resets its address's count.
"""

from __future__ import annotations

from aiohttp import web
from homeassistant.components.http.ban import process_success_login, process_wrong_login
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import HomeAssistantView

from bridge.tunnel import TUNNEL_PATH, serve_tunnel

from .hub import DATA_HUB


class CarHubLinkView(HomeAssistantView):
    """Upgrades to a WebSocket and hands it to the shared listener's tunnel."""

    url = TUNNEL_PATH
    name = "api:carhub:link"
    requires_auth = False  # the car's certificate, inside the tunnel, is the authentication
    cors_allowed = False

    def __init__(self, hass: HomeAssistant) -> None:
        """Serve the cars of this Home Assistant's hub."""
        self.hass = hass

    async def get(self, request: web.Request) -> web.StreamResponse:
        """Run one car's tunnel (503 while no car entry is loaded)."""
        hub = self.hass.data.get(DATA_HUB)
        server = hub.server if hub is not None else None
        if server is None:
            raise web.HTTPServiceUnavailable(text="CarHub is not running\n")

        async def refused(_reason: str) -> None:
            await process_wrong_login(request)

        async def accepted() -> None:
            process_success_login(request)

        return await serve_tunnel(server, request, on_refused=refused, on_accepted=accepted)
