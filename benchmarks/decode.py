"""Decode throughput: the agent's CAN pipeline vs a bare cantools decode_message loop.

Replays data/can/rav4_highway_60s.log as fast as possible:

* pipeline_fps: read + parse the log file, decode, map to VSS, state store
  (the RAV4 profile), i.e. everything the agent does per frame;
* pipeline_decode_only_fps: the same with frames pre-read into memory;
* full_decode_fps: FrameDecoder decoding every known frame (no profile);
* cantools_fps: a bare ``db.decode_message(id, data, decode_choices=False)``
  loop over the same pre-read frames (``cantools_choices_fps`` with cantools'
  default decode_choices=True).

``ratio`` = pipeline_fps / cantools_fps (the with-read pipeline against the
decode-only cantools loop: the conservative comparison). Each figure is the
median of several runs. Writes benchmarks/results/decode.json.

    .venv/bin/python benchmarks/decode.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vehicle_agent.can_input import read_log  # noqa: E402
from vehicle_agent.dbc_loader import bitstruct_c_available  # noqa: E402
from vehicle_agent.dbc_sources import BUNDLED_DBC_DIR  # noqa: E402
from vehicle_agent.decoder import FrameDecoder  # noqa: E402
from vehicle_agent.pipeline import CanPipeline  # noqa: E402
from vehicle_agent.profile import load_profile, resolve_dbc_files  # noqa: E402

LOG = ROOT / "data" / "can" / "rav4_highway_60s.log"
DBC_DIR = BUNDLED_DBC_DIR


def timed(fn):
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    profile = load_profile("toyota_rav4")
    template = CanPipeline.from_profile(profile, dbc_dir=DBC_DIR)
    dbcs = template.dbcs
    frames = list(read_log(LOG))
    buses = {bus: dbs[0] for bus, dbs in dbcs.databases.items()}
    files = resolve_dbc_files(profile, dbc_dir=DBC_DIR)
    assert set(files) == set(buses)

    def pipeline_with_read():
        return CanPipeline(profile, dbcs).feed_all(read_log(LOG))

    def pipeline_in_memory():
        return CanPipeline(profile, dbcs).feed_all(frames)

    def full_decode():
        decoder = FrameDecoder(dbcs.databases)
        decode = decoder.decode_message
        for msg in frames:
            decode(msg)
        return len(frames)

    def bare_cantools(choices):
        def loop():
            for msg in frames:
                db = buses.get(msg.channel)
                if db is None:
                    continue
                # try/except rather than contextlib.suppress: cheaper per frame
                try:  # noqa: SIM105
                    db.decode_message(msg.arbitration_id, msg.data, decode_choices=choices)
                except KeyError:
                    pass  # ID not in the DBC
            return len(frames)

        return loop

    cases = {
        "pipeline_fps": pipeline_with_read,
        "pipeline_decode_only_fps": pipeline_in_memory,
        "full_decode_fps": full_decode,
        "cantools_fps": bare_cantools(False),
        "cantools_choices_fps": bare_cantools(True),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, fn in cases.items():  # interleaved so machine noise hits all alike
            samples[name].append(timed(fn))
    medians = {name: round(statistics.median(v)) for name, v in samples.items()}

    check = CanPipeline(profile, dbcs)
    check.feed_all(frames)
    result = {
        **medians,
        "ratio": round(medians["pipeline_fps"] / medians["cantools_fps"], 2),
        "ratio_decode_only": round(
            medians["pipeline_decode_only_fps"] / medians["cantools_fps"], 2
        ),
        "frames": len(frames),
        "runs": args.runs,
        "python": platform.python_version(),
        "bitstruct_c": bitstruct_c_available(),
        "pipeline_counters": check.decoder.stats.as_dict(),
        "samples": {name: [round(x) for x in v] for name, v in samples.items()},
    }
    out = ROOT / "benchmarks" / "results" / "decode.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name in cases:
        print(f"{name:26s} {medians[name]:>10,} frames/s")
    print(f"ratio (pipeline with read / bare cantools): {result['ratio']}")
    print(f"ratio (pipeline decode only / bare cantools): {result['ratio_decode_only']}")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
