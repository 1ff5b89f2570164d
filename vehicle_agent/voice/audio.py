"""Audio input: WAV files, 16 kHz mono PCM streams and a microphone.

Everything downstream works on 16-bit signed little-endian mono PCM at
:data:`SAMPLE_RATE`; the sources here convert (mix down, resample) at the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import numpy.typing as npt

from vehicle_agent.voice.errors import AudioError, MicrophoneUnavailableError

SAMPLE_RATE = 16000
FRAME_MS = 30
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
BYTES_PER_SAMPLE = 2

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float32]


class AudioSource(Protocol):
    """Anything that yields chunks of 16 kHz mono int16 PCM (bytes)."""

    def chunks(self) -> AsyncIterator[bytes]:
        """Yield PCM chunks until the source ends (or forever, for a microphone)."""
        ...


class StreamResampler:
    """Streaming linear-interpolation resampler with state kept across chunks.

    ``ratio`` is input samples per output sample: ``src_rate / dst_rate`` to
    convert rates, or a speed factor (1.1 = 10 % faster and higher) for speed
    perturbation. Downsampling by more than 1.25 is low-passed first so
    energy above the new Nyquist frequency does not alias into speech bands.
    """

    def __init__(self, ratio: float) -> None:
        if ratio <= 0:
            raise ValueError("ratio must be positive")
        self.ratio = ratio
        self._pos = 0.0  # position of the next output sample, relative to _tail start
        self._tail: FloatArray = np.zeros(0, dtype=np.float32)
        self._fir: FloatArray | None = _lowpass(1.0 / ratio) if ratio > 1.25 else None
        self._fir_state: FloatArray = np.zeros(0, dtype=np.float32)

    def process(self, pcm: bytes) -> bytes:
        """Resample one chunk; returns as many output samples as the input allows."""
        x: FloatArray = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        if self._fir is not None:
            x = self._filter(x)
        buf = np.concatenate([self._tail, x]) if self._tail.size else x
        if buf.size < 2:
            self._tail = buf
            return b""
        last = buf.size - 1
        count = int(np.floor((last - self._pos) / self.ratio)) + 1
        if count <= 0:
            self._tail = buf
            return b""
        positions = self._pos + np.arange(count, dtype=np.float64) * self.ratio
        out = np.interp(positions, np.arange(buf.size, dtype=np.float64), buf)
        next_pos = self._pos + count * self.ratio
        keep_from = max(int(np.floor(next_pos)), 0)
        self._tail = buf[keep_from:]
        self._pos = next_pos - keep_from
        return _to_int16(out).tobytes()

    def _filter(self, x: FloatArray) -> FloatArray:
        assert self._fir is not None
        taps = self._fir.size
        state = self._fir_state if self._fir_state.size else np.zeros(taps - 1, dtype=np.float32)
        joined = np.concatenate([state, x])
        y = np.convolve(joined, self._fir, mode="valid").astype(np.float32)
        self._fir_state = joined[-(taps - 1) :]
        return y


class HighPass:
    """Streaming high-pass FIR (windowed sinc, spectrally inverted), state kept across chunks.

    Car cabins are loud below ~150 Hz (engine, tyres, road) while speech
    carries little there. In benchmarks/voice.py commands under 10 dB car noise
    were recognised 36 % of the time against 55 % under 20 dB; with this filter
    46 % and 50 %. The cut is gentle (full pass from
    ``cutoff_hz``, half at about 0.75 x ``cutoff_hz``). The filter delays the
    audio by ``(taps - 1) / 2`` samples (16 ms with the defaults).
    """

    def __init__(self, cutoff_hz: float, *, rate: int = SAMPLE_RATE, taps: int = 513) -> None:
        if not 0 < cutoff_hz < rate / 2:
            raise ValueError(f"high-pass cutoff must be between 0 and {rate // 2} Hz")
        if taps % 2 == 0:
            raise ValueError("the high-pass filter needs an odd number of taps")
        low = _lowpass(0.75 * cutoff_hz / (rate / 2), taps).astype(np.float64)
        high = -low
        high[(taps - 1) // 2] += 1.0
        self._fir: npt.NDArray[np.float64] = high
        self._state: npt.NDArray[np.float64] = np.zeros(taps - 1)
        self.delay_samples = (taps - 1) // 2

    def flush(self) -> bytes:
        """The last ``delay_samples`` of audio still inside the filter; then reset."""
        out = self.process(b"\0\0" * self.delay_samples)
        self._state = np.zeros(self._fir.size - 1)
        return out

    def process(self, pcm: bytes) -> bytes:
        """Filter one chunk of 16-bit mono PCM; returns the same number of samples."""
        x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
        if not x.size:
            return b""
        joined = np.concatenate([self._state, x])
        y = np.convolve(joined, self._fir, mode="valid")
        self._state = joined[-(self._fir.size - 1) :]
        return _to_int16(y).tobytes()


def _lowpass(cutoff: float, taps: int = 31) -> FloatArray:
    """Windowed-sinc low-pass FIR; *cutoff* as a fraction of the Nyquist frequency."""
    n = np.arange(taps) - (taps - 1) / 2
    h = cutoff * np.sinc(cutoff * n) * np.hamming(taps)
    out: FloatArray = (h / h.sum()).astype(np.float32)
    return out


def _to_int16(x: npt.NDArray[Any]) -> Int16Array:
    out: Int16Array = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return out


def resample(pcm: bytes, src_rate: int, dst_rate: int = SAMPLE_RATE) -> bytes:
    """Resample a whole int16 mono buffer from *src_rate* to *dst_rate*."""
    if src_rate == dst_rate:
        return pcm
    return StreamResampler(src_rate / dst_rate).process(pcm)


def read_wav(path: Path) -> bytes:
    """Read a PCM WAV file as 16 kHz mono int16 (mixing down and resampling as needed)."""
    try:
        with wave.open(str(path), "rb") as wf:
            channels, width, rate = wf.getnchannels(), wf.getsampwidth(), wf.getframerate()
            raw = wf.readframes(wf.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"cannot read WAV file {path}: {exc}") from exc
    return pcm_to_mono16k(raw, channels=channels, sample_width=width, rate=rate)


def pcm_to_mono16k(raw: bytes, *, channels: int, sample_width: int, rate: int) -> bytes:
    """Convert interleaved PCM (8/16/32-bit) to 16 kHz mono int16."""
    if sample_width == 2:
        data: npt.NDArray[np.floating[Any]] = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    elif sample_width == 1:  # WAV 8-bit is unsigned
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) * 256.0
    elif sample_width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 65536.0
    else:
        raise AudioError(f"unsupported sample width: {sample_width} bytes")
    if channels < 1:
        raise AudioError("WAV file declares no channels")
    usable = data.size - data.size % channels
    mono = data[:usable].reshape(-1, channels).mean(axis=1)
    return resample(_to_int16(mono).tobytes(), rate, SAMPLE_RATE)


def write_wav(path: Path, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono PCM as a WAV file (fixtures, debugging)."""
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(BYTES_PER_SAMPLE)
        wf.setframerate(rate)
        wf.writeframes(pcm)


def split_frames(pcm: bytes, frame_samples: int = FRAME_SAMPLES) -> Iterator[bytes]:
    """Split PCM into frames of *frame_samples* (the last one may be shorter)."""
    step = frame_samples * BYTES_PER_SAMPLE
    for start in range(0, len(pcm), step):
        yield pcm[start : start + step]


class PcmSource:
    """16 kHz mono int16 PCM from bytes, a WAV file or a binary stream."""

    def __init__(
        self, pcm: bytes | None = None, *, stream: BinaryIO | None = None, realtime: bool = False
    ) -> None:
        if (pcm is None) == (stream is None):
            raise ValueError("give exactly one of pcm or stream")
        self._pcm = pcm
        self._stream = stream
        self._realtime = realtime

    @classmethod
    def from_wav(cls, path: Path, *, realtime: bool = False) -> PcmSource:
        """A source that plays one WAV file."""
        return cls(read_wav(path), realtime=realtime)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield 30 ms frames; with ``realtime`` paced like a live microphone."""
        loop = asyncio.get_running_loop()
        step = FRAME_SAMPLES * BYTES_PER_SAMPLE
        while True:
            if self._pcm is not None:
                data, self._pcm = self._pcm[:step], self._pcm[step:]
            else:
                assert self._stream is not None
                data = await loop.run_in_executor(None, self._stream.read, step)
            if not data:
                return
            if len(data) % 2:  # a torn sample at the end of a stream
                data = data[:-1]
            yield data
            if self._realtime:
                await asyncio.sleep(len(data) / BYTES_PER_SAMPLE / SAMPLE_RATE)


class MicrophoneSource:
    """A live microphone through ``sounddevice`` (optional dependency ``carhub[mic]``).

    The device is opened at its own default rate when it cannot do 16 kHz and
    the audio is resampled here.
    """

    def __init__(self, device: int | str | None = None, *, queue_frames: int = 200) -> None:
        self._device = device
        self._queue_frames = queue_frames

    @staticmethod
    def _sounddevice() -> Any:  # noqa: ANN401 (untyped optional module)
        try:
            return importlib.import_module("sounddevice")
        except (ImportError, OSError) as exc:  # OSError: PortAudio library missing
            raise MicrophoneUnavailableError(
                "microphone input needs the 'sounddevice' package and PortAudio: "
                "pip install 'carhub[mic]' (or feed WAV files / a PCM stream instead)"
            ) from exc

    def _pick_rate(self, sd: Any) -> int:  # noqa: ANN401
        try:
            sd.check_input_settings(
                device=self._device, samplerate=SAMPLE_RATE, channels=1, dtype="int16"
            )
            return SAMPLE_RATE
        except Exception:  # the device cannot do 16 kHz: use its own rate
            info = sd.query_devices(self._device, "input")
            return int(info["default_samplerate"])

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield resampled chunks from the device until cancelled."""
        sd = self._sounddevice()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=self._queue_frames)
        try:
            rate = self._pick_rate(sd)
        except Exception as exc:
            raise MicrophoneUnavailableError(f"no usable input device: {exc}") from exc
        resampler = StreamResampler(rate / SAMPLE_RATE) if rate != SAMPLE_RATE else None

        def put(data: bytes) -> None:
            with contextlib.suppress(asyncio.QueueFull):  # drop audio rather than block
                queue.put_nowait(data)

        def callback(indata: bytes, frames: int, time_info: object, status: object) -> None:
            loop.call_soon_threadsafe(put, bytes(indata))

        stream = sd.RawInputStream(
            samplerate=rate,
            channels=1,
            dtype="int16",
            device=self._device,
            blocksize=rate * FRAME_MS // 1000,
            callback=callback,
        )
        with stream:
            while True:
                data = await queue.get()
                yield resampler.process(data) if resampler is not None else data
