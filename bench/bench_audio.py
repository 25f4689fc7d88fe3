"""Per-20 ms-frame cost of the edge audio DSP, against audioop and soxr; writes bench/RESULTS.md.

Run: .venv/bin/python bench/bench_audio.py   (soxr is a bench-only dependency: pip install soxr)
"""

from __future__ import annotations

import base64
import datetime
import math
import os
import platform
import re
import subprocess
import sys
import timeit
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.audio import mulaw
from edge.audio.framing import MULAW_8K_FRAME_BYTES, FrameChunker
from edge.audio.resampler import StreamingResampler
from edge.audio.speech import synthesize, to_rate
from edge.audio.vad import SpeechDetector

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop as _audioop

        audioop: ModuleType | None = _audioop
    except ImportError:
        audioop = None
try:
    import soxr as _soxr

    soxr: ModuleType | None = _soxr
except ImportError:
    soxr = None

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Edge audio DSP (issue 3)"
RNG = np.random.default_rng(20240520)


def cost_us(fn: Callable[[], object], number: int = 20000, repeat: int = 7) -> float:
    """Best-of-`repeat` mean cost in µs: the min filters out the other tenants of the 2 cores."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def tone(freq: float, rate: int, seconds: float, amplitude: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def level_db(samples: npt.NDArray[Any]) -> float:
    values = samples.astype(np.float64)
    return 10 * math.log10(float(np.mean(values * values)) + 1e-12)


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str = "") -> None:
        print(line)
        self.lines.append(line)


def bench_codec(report: Report) -> None:
    ulaw = mulaw.encode((RNG.standard_normal(160) * 4000).astype(np.int16))
    payload = base64.b64encode(ulaw).decode()
    pcm8 = (RNG.standard_normal(160) * 4000).astype(np.int16)
    pcm8_bytes = pcm8.tobytes()
    table = mulaw.DECODE_TABLE
    rows: list[tuple[str, float]] = [
        (f"base64.b64decode of the {len(payload)}-char payload", cost_us(lambda: base64.b64decode(payload))),
        (
            "μ-law decode, ours `decode_to_bytes` (→ PCM16 bytes)",
            cost_us(lambda: mulaw.decode_to_bytes(ulaw)),
        ),
        ("μ-law decode, ours `decode` (→ int16 ndarray)", cost_us(lambda: mulaw.decode(ulaw))),
        (
            "μ-law decode, numpy table fallback (no audioop)",
            cost_us(lambda: table.take(np.frombuffer(ulaw, dtype=np.uint8))),
        ),
        ("μ-law encode, ours `encode` (int16 ndarray)", cost_us(lambda: mulaw.encode(pcm8))),
        ("μ-law encode, ours `encode` (PCM16 bytes)", cost_us(lambda: mulaw.encode(pcm8_bytes))),
    ]
    if audioop is not None:
        codec = audioop
        rows.insert(2, ("μ-law decode, `audioop.ulaw2lin`", cost_us(lambda: codec.ulaw2lin(ulaw, 2))))
        rows.append(("μ-law encode, `audioop.lin2ulaw`", cost_us(lambda: codec.lin2ulaw(pcm8_bytes, 2))))
    report.add("| 160-sample frame (8 kHz, 20 ms) | µs/frame |")
    report.add("|---|---:|")
    for name, value in rows:
        report.add(f"| {name} | {value:.2f} |")
    report.add(f"\nDecode uses audioop when importable: {mulaw.has_audioop()}.")


def held_back(outputs: list[int], per_frame: int) -> tuple[list[int], int]:
    """Output lengths of the first frames, and the most samples ever owed to a 20 ms consumer."""
    owed = [per_frame * (i + 1) - sum(outputs[: i + 1]) for i in range(len(outputs))]
    return outputs[:8], max(owed)


def aliasing_db(process: Callable[[npt.NDArray[np.int16]], npt.NDArray[np.int16]]) -> float:
    """Level of a full-scale-ish 6 kHz tone at 24 kHz after ÷3, relative to the input (dB)."""
    samples = tone(6000, 24000, 1.0, 30000.0)
    out = np.concatenate([process(samples[i : i + 480]) for i in range(0, len(samples), 480)])
    return level_db(out[800:]) - level_db(samples)


def lfilter_alternative(
    up: int, down: int, taps: npt.NDArray[np.float64]
) -> Callable[[npt.NDArray[np.int16]], object]:
    state = {"zi": np.zeros(taps.size - 1)}

    def run(frame: npt.NDArray[np.int16]) -> object:
        stuffed = np.zeros(len(frame) * up)
        stuffed[::up] = frame
        out, state["zi"] = signal.lfilter(taps, [1.0], stuffed, zi=state["zi"])
        return out[::down].astype(np.int16)

    return run


def bench_resampling(report: Report) -> None:
    report.add(
        "| resampler | in→out per frame | µs/frame | first frames' output lengths "
        "| max held back (out samples) | group delay (out samples) | 6 kHz tone after 24k→8k |"
    )
    report.add("|---|---|---:|---|---:|---:|---:|")
    for src, dst in [(8000, 16000), (24000, 8000)]:
        n_in, n_out = src // 50, dst // 50
        frame = (RNG.standard_normal(n_in) * 4000).astype(np.int16)
        frames = [frame] * 25
        ours = StreamingResampler.for_rates(src, dst)
        cost = cost_us(partial(ours.process, frame))
        ours.reset()
        lengths, owed = held_back([len(ours.process(f)) for f in frames], n_out)
        alias = (
            f"{aliasing_db(StreamingResampler.for_rates(24000, 8000).process):.1f} dB" if src == 24000 else ""
        )
        report.add(
            f"| ours, FIR {ours.taps.size} taps | {src // 1000}k→{dst // 1000}k {n_in}→{n_out} | {cost:.2f} "
            f"| {lengths} | {owed} | {ours.delay_samples:.0f} ({ours.delay_samples / dst * 1000:.1f} ms) "
            f"| {alias} |"
        )
        alternative = lfilter_alternative(ours.up, ours.down, ours.taps)
        report.add(
            f"| same FIR via `scipy.signal.lfilter` + zi | {src // 1000}k→{dst // 1000}k | "
            f"{cost_us(partial(alternative, frame), number=5000):.2f} | | | | |"
        )
        if soxr is None:
            continue
        for quality in ["QQ", "LQ", "MQ", "HQ", "VHQ"]:
            stream = soxr.ResampleStream(src, dst, 1, dtype="int16", quality=quality)
            cost = cost_us(partial(stream.resample_chunk, frame), number=5000)
            fresh = soxr.ResampleStream(src, dst, 1, dtype="int16", quality=quality)
            lengths, owed = held_back([len(fresh.resample_chunk(f)) for f in frames], n_out)
            alias = ""
            if src == 24000:
                aliasing_stream = soxr.ResampleStream(24000, 8000, 1, dtype="int16", quality=quality)
                alias = f"{aliasing_db(aliasing_stream.resample_chunk):.1f} dB"
            report.add(
                f"| soxr ResampleStream {quality} | {src // 1000}k→{dst // 1000}k | {cost:.2f} "
                f"| {lengths} | {owed} ({owed / dst * 1000:.0f} ms) | (in held back) | {alias} |"
            )


def bench_pipeline(report: Report) -> None:
    speech, rate = synthesize("hello, I would like to book a table")
    speech_8k = to_rate(speech, rate, 8000)
    frames_ulaw = [mulaw.encode(speech_8k[i : i + 160]) for i in range(0, len(speech_8k) - 159, 160)]
    payloads = [base64.b64encode(f).decode() for f in frames_ulaw]
    pcm16 = (RNG.standard_normal(320) * 1000).astype(np.int16)
    detector = SpeechDetector(3)
    report.add("| per 20 ms frame | µs/frame |")
    report.add("|---|---:|")
    vad_cost = cost_us(lambda: detector.process(pcm16, 0))
    report.add(f"| VAD `SpeechDetector.process` (webrtcvad + step, 320 samples) | {vad_cost:.2f} |")

    resampler = StreamingResampler.for_rates(8000, 16000)
    chunker = FrameChunker(MULAW_8K_FRAME_BYTES)
    vad = SpeechDetector(3)
    count = len(payloads)
    position = [0]

    def one_frame() -> object:
        # What the edge does per inbound Twilio frame before handing audio to the bridge.
        index = position[0] % count
        position[0] += 1
        event = None
        for chunk in chunker.push(base64.b64decode(payloads[index])):
            pcm16k = resampler.process(mulaw.decode(chunk))
            event = vad.process(pcm16k, index * 20)
        return event

    total = cost_us(one_frame, number=count * 20)
    report.add(f"| **total: b64 decode + μ-law decode + framing + 8k→16k + VAD** | **{total:.2f}** |")
    verdict = "meets" if total <= 30.0 else "MISSES"
    report.add(
        f"\nTarget ≤ 30 µs per frame: {verdict} ({total:.1f} µs; espeak speech frames, aggressiveness 3)."
    )


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    soxr_version = getattr(soxr, "__version__", "absent") if soxr else "absent"
    return (
        f"{cpu}; `nproc` = {nproc or os.cpu_count()} (shared with other work while measuring); "
        f"Python {platform.python_version()}, numpy {np.__version__}, soxr {soxr_version}, "
        f"{platform.system()} {platform.machine()}"
    )


def write_section(body: list[str]) -> None:
    section = "\n".join([SECTION, "", *body]).rstrip() + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)


def main() -> None:
    report = Report()
    report.add(
        "Reproduce: `.venv/bin/python bench/bench_audio.py` (bench-only: `pip install soxr`). "
        f"Date: {datetime.date.today()}."
    )
    report.add(f"Machine: {machine()}.")
    report.add("Figures are the best of 7 runs (mean per call within a run).")
    report.add()
    report.add("### μ-law and base64")
    report.add()
    bench_codec(report)
    report.add()
    report.add("### Resampling, 20 ms frames")
    report.add()
    bench_resampling(report)
    report.add()
    report.add(
        "Max held back = the most output a 20 ms consumer was ever owed over the first 25 frames; "
        "ours returns every frame in full and its only latency is the FIR's group delay."
    )
    report.add()
    report.add("### VAD and the whole inbound path")
    report.add()
    bench_pipeline(report)
    write_section(report.lines)


if __name__ == "__main__":
    main()
