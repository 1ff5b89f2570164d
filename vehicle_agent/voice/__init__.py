"""Voice in the car: offline recognition (vosk), local answers, home requests.

Public surface::

    model = VoiceModel(packaged_model("ko"))           # or any vosk model directory
    assistant = VoiceAssistant(model, state=store, home=HomeRequester(link), tts=EspeakTts())
    outcome = await assistant.handle_pcm(read_wav(Path("utterance.wav")))
    print(outcome.kind, outcome.reply)
"""

from vehicle_agent.voice.assistant import Outcome, OutcomeKind, VoiceAssistant, VoiceConfig
from vehicle_agent.voice.audio import (
    SAMPLE_RATE,
    AudioSource,
    MicrophoneSource,
    PcmSource,
    StreamResampler,
    read_wav,
    resample,
)
from vehicle_agent.voice.errors import (
    AudioError,
    GrammarError,
    HomeUnavailableError,
    MicrophoneUnavailableError,
    ModelError,
    VoiceError,
)
from vehicle_agent.voice.home import HomeLink, HomeReply, HomeRequester
from vehicle_agent.voice.intents import IntentMatch, SentenceSet
from vehicle_agent.voice.matcher import MatchConfig, PhraseMatcher
from vehicle_agent.voice.model import VoiceModel, known_models, packaged_model
from vehicle_agent.voice.tts import EspeakTts, ManoeuvrePolicy, NotificationSpeaker, NullTts
from vehicle_agent.voice.vad import EnergyVad, VadConfig
from vehicle_agent.voice.wake import PushToTalk, WakeDetector

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "AudioSource",
    "EnergyVad",
    "EspeakTts",
    "GrammarError",
    "HomeLink",
    "HomeReply",
    "HomeRequester",
    "HomeUnavailableError",
    "IntentMatch",
    "ManoeuvrePolicy",
    "MatchConfig",
    "MicrophoneSource",
    "MicrophoneUnavailableError",
    "ModelError",
    "NotificationSpeaker",
    "NullTts",
    "Outcome",
    "OutcomeKind",
    "PcmSource",
    "PhraseMatcher",
    "PushToTalk",
    "SentenceSet",
    "StreamResampler",
    "VadConfig",
    "VoiceAssistant",
    "VoiceConfig",
    "VoiceError",
    "VoiceModel",
    "WakeDetector",
    "known_models",
    "packaged_model",
    "read_wav",
    "resample",
]
