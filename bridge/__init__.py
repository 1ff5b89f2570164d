"""CarHub bridge: the secure, durable link between a car and its home."""

__version__ = "0.1.0"
