"""Sub-commands of `vehicle-agent`, one module each (see vehicle_agent.cli)."""
