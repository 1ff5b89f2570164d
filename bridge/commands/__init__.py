"""Sub-commands of `carhub-bridge`, one module each (see bridge.cli)."""
