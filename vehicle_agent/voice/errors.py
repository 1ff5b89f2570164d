"""Exceptions of the voice package: one root, subclasses say what went wrong."""

from __future__ import annotations


class VoiceError(Exception):
    """Root of every error raised by :mod:`vehicle_agent.voice`."""


class AudioError(VoiceError):
    """Audio input could not be read (bad WAV, unsupported format, device failure)."""


class MicrophoneUnavailableError(AudioError):
    """No microphone support: ``sounddevice`` is not installed or no device exists."""


class ModelError(VoiceError):
    """The speech model directory is missing or cannot be loaded."""


class GrammarError(VoiceError):
    """Sentence templates are invalid or no phrase survives the vocabulary check."""


class HomeUnavailableError(VoiceError):
    """The home cannot be reached (not connected, or no reply in time)."""
