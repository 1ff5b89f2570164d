"""Tests of the CarHub Home Assistant integration (run with the HA pytest plugin)."""
