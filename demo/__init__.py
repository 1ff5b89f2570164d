"""`python -m demo`: CarHub end to end on one machine.

A real Home Assistant (`hass` from the project's venv) with the integration
installed as HACS would place it, a vehicle agent replaying a real CAN log,
pairing through Home Assistant's config-flow REST API, a spoken command
recognised offline, and a live table of the car as Home Assistant sees it.
``--check`` runs the same story headless and verifies every step.
"""
