"""English half of the voice benchmark: pocketsphinx (model from its wheel) on synthetic speech.

Run through ``benchmarks/voice.py`` (both languages, one JSON). Test set,
generated at run time: 20 commands (8 car, 12 home: on/off, open/close,
lock/unlock, two brightness values, a temperature, a state question) x 3
tuning voices x 2 speeds x 2 car-noise levels (20 and 10 dB SNR) = 240; 8
out-of-grammar sentences x 3 voices = 24 (low noise, first speed). Held out:
every command and out-of-grammar sentence once more in three other espeak-ng
voices at 160 wpm and 15 dB, used for no choice of any threshold.

The recognizer runs with its confidence gate open and every row keeps its
confidence, so the gate (``sphinx.MIN_CONFIDENCE``) is applied afterwards:
a sweep on the tuning rows picks the threshold, and the held-out rows are
scored at the threshold picked on the tuning rows.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import numpy as np
from voice import (
    NoState,
    car_noise,
    false_wakes_on_noise,
    mix,
    pct,
    rss_mb,
    run_streaming,
    synth,
)

from vehicle_agent.voice import sphinx
from vehicle_agent.voice.assistant import OutcomeKind, VoiceAssistant, VoiceConfig
from vehicle_agent.voice.audio import SAMPLE_RATE
from vehicle_agent.voice.sphinx import SphinxEngine
from vehicle_agent.voice.wake import WakeDetector

ENTITIES = ["living room light", "garage door", "front door", "air conditioner", "porch light"]
AREAS = ["living room", "kitchen", "bedroom"]
COMMANDS = [
    "what is my speed",
    "how much fuel is left",
    "what is my range",
    "what is the battery level",
    "check the tires",
    "are the doors locked",
    "is any door open",
    "are there warnings",
    "turn on the living room light",
    "turn off the living room light",
    "open the garage door",
    "close the garage door",
    "lock the front door",
    "unlock the front door",
    "turn on the air conditioner",
    "turn off the porch light",
    "set the kitchen lights to fifty percent",
    "set the bedroom lights to thirty percent",
    "set the living room temperature to twenty one degrees",
    "is the garage door open",
]
OUT_OF_GRAMMAR = [
    "what is the weather today",
    "play some music",
    "call my mother",
    "open the window",
    "turn on the radio",
    "what time is it",
    "navigate to the airport",
    "close the sunroof",
]
WAKE = "hey car"
VOICES = [("en-us", 50), ("en+f3", 70), ("en-gb", 40)]
SPEEDS = [140, 175]
SNRS = {"low_noise_20dB": 20.0, "high_noise_10dB": 10.0}
HELD_OUT_VOICES = [("en-gb-scotland+f2", 60), ("en-us+m4", 45), ("en-029+f4", 55)]
HELD_OUT_SPEED = 160
HELD_OUT_SNR_DB = 15.0
THRESHOLDS = [-1.0, -0.0008, -0.0006, -0.0005, -0.0004, -0.0003, -0.0002, -0.0001, 0.0]


def _row(outcome: Any, confidence: float | None, **fields: object) -> dict[str, Any]:
    m = outcome.match
    return {
        **fields,
        "got": outcome.intent.key if outcome.intent else None,
        # Carried out (or answered): not refused, cancelled or left waiting for "yes".
        "accepted": outcome.kind
        not in (OutcomeKind.REJECTED, OutcomeKind.CANCELLED, OutcomeKind.CONFIRM),
        "action": bool(m and m.action),
        "confidence": confidence,
    }


def _area_of_its_light(row: dict[str, Any]) -> bool:
    """Same intent, and the area's lights instead of the one light named after the area."""
    got, want = str(row["got"]), str(row["want"])
    m_got, m_want = (
        re.fullmatch(r"(\w+)\(area=(.+)\)", got),
        re.fullmatch(r"(\w+)\(name=(.+)\)", want),
    )
    return bool(
        m_got
        and m_want
        and m_got.group(1) == m_want.group(1)
        and m_want.group(2) == f"{m_got.group(2)} light"
    )


def gated(row: dict[str, Any], threshold: float) -> bool:
    """Would the row be accepted with the confidence gate at *threshold*?"""
    c = row["confidence"]
    return bool(row["accepted"] and c is not None and c >= threshold)


def score(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Accuracy, false accepts and wrong actions of *rows* at a gate threshold."""
    inn = [r for r in rows if r["in_grammar"]]
    oog = [r for r in rows if not r["in_grammar"]]
    wrong = [r for r in rows if gated(r, threshold) and r["got"] != r["want"] and r["action"]]
    wrong_actions = [
        f"{r['text']} ({r['voice']}) -> {r['got']}" for r in wrong if not _area_of_its_light(r)
    ]
    return {
        "command_accuracy": round(
            sum(gated(r, threshold) and r["got"] == r["want"] for r in inn) / max(len(inn), 1), 3
        ),
        "false_accepts_out_of_grammar": round(
            sum(gated(r, threshold) for r in oog) / max(len(oog), 1), 3
        ),
        "accepted_wrong_in_grammar": sum(
            gated(r, threshold) and r["got"] != r["want"] for r in inn
        ),
        "wrong_home_actions": len(wrong_actions),
        "wrong_home_action_rows": wrong_actions,
        # "turn on the living room light" heard as "... lights" (the area's lights): the
        # same action on the area the light is named after; counted apart, not as wrong.
        "area_lights_for_its_light": sum(_area_of_its_light(r) for r in wrong),
        # Door and lock actions asked back; a wrong guess is cancelled by the driver's "no".
        "confirmations_asked": sum(bool(r["confirmation"]) for r in rows),
        "confirmations_of_a_wrong_action_cancelled": [
            f"{r['text']} ({r['voice']}): asked {r['confirmation']['asked']}"
            for r in rows
            if r["confirmation"] and r["confirmation"]["answer"] == "no" and not r["accepted"]
        ],
        "in_grammar": len(inn),
        "out_of_grammar": len(oog),
    }


def pick_threshold(rows: list[dict[str, Any]]) -> float:
    """The threshold with the most right commands among those that accept no
    out-of-grammar utterance of *rows* (ties: the stricter one)."""
    best: tuple[float, float] | None = None
    for t in sorted(THRESHOLDS, reverse=True):
        s = score(rows, t)
        if s["false_accepts_out_of_grammar"] > 0:
            continue
        if best is None or s["command_accuracy"] > best[0]:
            best = (s["command_accuracy"], t)
    return best[1] if best else max(THRESHOLDS)


async def english(quick: bool) -> dict[str, Any]:
    """The English figures (see the module docstring)."""
    voices = VOICES[:1] if quick else VOICES
    rss0 = rss_mb()
    t0 = time.perf_counter()
    engine = SphinxEngine(min_confidence=-1e9)  # gate applied afterwards (module docstring)
    load_s = time.perf_counter() - t0
    assistant = VoiceAssistant(engine, state=NoState(), config=VoiceConfig(language="en"))
    await assistant.update_vocabulary({"language": "en", "entities": ENTITIES, "areas": AREAS})
    rss_model = rss_mb() - rss0
    recognizer = assistant._decoder._passes[0].recognizer
    sentences = assistant.sentences
    noise = car_noise(300.0)

    async def one(
        text: str, want: str | None, voice: str, pitch: int, speed: int, snr: float, offset: int
    ) -> Any:
        pcm = mix(synth(text, voice, speed, pitch), noise, snr, offset)
        outcome, latency, cpu = await run_streaming(assistant, pcm)
        asked: dict[str, Any] = {}
        confidence = getattr(recognizer, "confidence", None)
        if outcome.kind is OutcomeKind.CONFIRM:
            # The driver hears "Unlock the front door?" and answers truthfully.
            heard = outcome.intent.key if outcome.intent else None
            answer = "yes" if heard == want else "no"
            reply = mix(synth(answer, voice, speed, pitch), noise, snr, offset + 17_000)
            outcome, _, _ = await run_streaming(assistant, reply)
            asked = {"asked": heard, "answer": answer, "final": str(outcome.kind)}
        return outcome, latency, cpu, len(pcm) / 2 / SAMPLE_RATE, confidence, asked

    rows: list[dict[str, Any]] = []
    audio_s = cpu_s = 0.0
    offset = 0
    conditions = list(itertools.product(voices, SPEEDS, SNRS.items()))
    items = [(c, True) for c in COMMANDS] + [(c, False) for c in OUT_OF_GRAMMAR]
    for text, in_grammar in items:
        match = sentences.recognize(text)
        assert match is not None or not in_grammar, text
        want = match.key if in_grammar and match else None
        conds = (
            conditions
            if in_grammar
            else list(itertools.product(voices, SPEEDS[:1], list(SNRS.items())[:1]))
        )
        for (voice, pitch), speed, (noise_name, snr) in conds:
            offset += 37_111
            outcome, latency, cpu, seconds, confidence, asked = await one(
                text, want, voice, pitch, speed, snr, offset
            )
            audio_s += seconds
            cpu_s += cpu
            rows.append(
                _row(
                    outcome,
                    confidence,
                    confirmation=asked,
                    text=text,
                    in_grammar=in_grammar,
                    voice=voice,
                    speed=speed,
                    noise=noise_name,
                    want=want,
                    latency_s=round(latency, 4),
                )
            )
            print(f"en {text} {voice} {speed} {noise_name}: got={rows[-1]['got']}", flush=True)
    held: list[dict[str, Any]] = []
    if not quick:
        for text, in_grammar in items:
            match = sentences.recognize(text)
            want = match.key if in_grammar and match else None
            for voice, pitch in HELD_OUT_VOICES:
                offset += 37_111
                outcome, _, _, _, confidence, asked = await one(
                    text, want, voice, pitch, HELD_OUT_SPEED, HELD_OUT_SNR_DB, offset
                )
                held.append(
                    _row(
                        outcome,
                        confidence,
                        confirmation=asked,
                        text=text,
                        in_grammar=in_grammar,
                        voice=voice,
                        want=want,
                    )
                )
                print(f"en held-out {text} {voice}: got={held[-1]['got']}", flush=True)
    shipped = sphinx.MIN_CONFIDENCE
    tuned = pick_threshold(rows)
    lat = [float(r["latency_s"]) for r in rows]

    # Wake phrase: grammar mode against filler words, one pass.
    wake = WakeDetector(SphinxEngine(min_confidence=tuned), WAKE, language="en")
    wake_hits = wake_n = 0
    for (voice, pitch), speed, (_, snr) in conditions:
        offset += 37_111
        wake_n += 1
        wake_hits += wake.detect_blocking(mix(synth(WAKE, voice, speed, pitch), noise, snr, offset))
    false_on_speech = 0
    for text in OUT_OF_GRAMMAR + COMMANDS:
        offset += 37_111
        false_on_speech += wake.detect_blocking(
            mix(synth(text, "en-us", 175, 50), noise, 20.0, offset)
        )
    noise_minutes = 1.0 if quick else 3.0
    false_wakes, segments = false_wakes_on_noise(wake, noise, noise_minutes)
    held_wake = sum(
        wake.detect_blocking(
            mix(synth(WAKE, v, HELD_OUT_SPEED, p), noise, HELD_OUT_SNR_DB, 9_000_000 + i * 37_111)
        )
        for i, (v, p) in enumerate(HELD_OUT_VOICES)
    )
    wake.close()
    assistant.close()
    return {
        "engine": "pocketsphinx 5.1.1, en-us model and cmudict from its wheel (no download)",
        "grammar_phrases": len(assistant.grammar.phrases),
        "guessed_words": assistant.grammar.guessed,
        "utterances": {
            "commands": len(COMMANDS),
            "voices": [v for v, _ in voices],
            "speeds_wpm": SPEEDS,
            "noise": list(SNRS),
        },
        "confidence_gate": {
            "code_default_at_run": shipped,
            "figures_below_use": "picked_on_tuning_voices (held-out voices never tuned on)",
            "picked_on_tuning_voices": tuned,
            "rule": "most right commands with no false accept on the tuning voices",
            "sweep_tuning_voices": {str(t): score(rows, t) for t in THRESHOLDS},
        },
        "pipeline": {
            **score(rows, tuned),
            "latency_end_of_speech_to_intent_ms": {
                "p50": round(pct(lat, 50) * 1000, 1),
                "p95": round(pct(lat, 95) * 1000, 1),
                "max": round(max(lat) * 1000, 1),
            },
            "real_time_factor": round(cpu_s / audio_s, 3),
            "passes (speeds)": list(assistant.speeds),
        },
        "held_out_voices": (
            {
                "voices": [v for v, _ in HELD_OUT_VOICES],
                "speed_wpm": HELD_OUT_SPEED,
                "snr_db": HELD_OUT_SNR_DB,
                **score(held, tuned),
            }
            if held
            else {"skipped": "--quick"}
        ),
        "wake": {
            "phrase": WAKE,
            "approach": "the wake phrase alone in the grammar; phone-loop confidence, "
            "coverage and gap checks",
            "detection_rate": round(wake_hits / wake_n, 3),
            "n": wake_n,
            "held_out_voices_detected": f"{held_wake}/{len(HELD_OUT_VOICES)}",
            "false_wakes_on_other_speech": f"{false_on_speech}/{len(OUT_OF_GRAMMAR + COMMANDS)}",
            "false_wakes_per_hour_of_noise": round(false_wakes * 60 / noise_minutes, 1),
            "noise_minutes": noise_minutes,
            "vad_segments_in_noise": segments,
        },
        "model_load": {
            "seconds": round(load_s, 2),
            "rss_delta_mb_engine_and_grammar": round(rss_model, 1),
        },
        "accuracy_by_voice": {
            v: round(
                float(
                    np.mean(
                        [
                            gated(r, tuned) and r["got"] == r["want"]
                            for r in rows
                            if r["voice"] == v and r["in_grammar"]
                        ]
                    )
                ),
                3,
            )
            for v, _ in voices
        },
        "rows": rows,
        "held_out_rows": held,
    }
