"""CarHub vehicle agent: the part of CarHub that runs in the car."""

__version__ = "0.1.0"
