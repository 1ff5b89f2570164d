"""The home's names survive a restart of the car; damaged files never stop it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from vehicle_agent.voice.vocabulary_store import VocabularyError, VocabularyFile, validate

VOCAB = {"language": "ko", "entities": ["거실 조명", "차고 문"], "areas": ["거실"]}


def test_saved_vocabulary_loads_back_and_replaces_the_old_one(tmp_path: Path) -> None:
    store = VocabularyFile(tmp_path / "state")
    assert store.load() is None  # nothing saved yet
    store.save({**VOCAB, "extra": "dropped"})
    assert store.load() == VOCAB
    store.save({"language": "ko", "entities": ["에어컨"], "areas": []})
    assert VocabularyFile(tmp_path / "state").load() == {
        "language": "ko",
        "entities": ["에어컨"],
        "areas": [],
    }
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["voice-vocabulary.json"]


@pytest.mark.parametrize(
    "content", ["{not json", json.dumps({"entities": "거실", "areas": []}), json.dumps([1, 2])]
)
def test_damaged_file_is_reported_and_ignored(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "voice-vocabulary.json").write_text(content, encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert VocabularyFile(tmp_path).load() is None
    assert "ignoring the saved home vocabulary" in caplog.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("names", "must be an object"),
        ({"language": 3, "entities": [], "areas": []}, "'language' must be a string"),
        ({"entities": ["a", 2], "areas": []}, "'entities' must be a list of names"),
        ({"entities": [], "areas": None}, "'areas' must be a list of names"),
    ],
)
def test_bad_vocabulary_is_refused_before_saving(
    tmp_path: Path, body: object, message: str
) -> None:
    with pytest.raises(VocabularyError, match=message):
        validate(body)
    with pytest.raises(VocabularyError):
        VocabularyFile(tmp_path).save(body)  # type: ignore[arg-type]
    assert not (tmp_path / "voice-vocabulary.json").exists()
