"""`make run`: one simulated phone call through the whole Switchboard stack, on this machine, with no keys.

It starts Redis, the function host (function_app.py, as `func start` serves it), the media host and a
local ACS; a caller dials the scenario's number; the call goes Event Grid -> answer -> media socket ->
turns -> handoffs -> transfer (or hang-up) -> call record. It prints the live transcript, then a
latency table, writes the stereo WAV and the call record to --out, stops everything and exits 0 when
the call completed end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Literal

from agents import AgentLibrary
from local_stack.callers.scripted import Line, Voiced, telephone_voice
from local_stack.phone_call import CallResult, PhoneCall
from local_stack.processes import StackError
from local_stack.report import latency_table, write_record, write_stereo_wav
from local_stack.script import Script, ScriptError, default_script, load_script
from local_stack.stack import LocalStack, StackOptions
from switchboard.settings import PROJECT_ROOT, get_settings

WIRE_RATE = 24000  # what the app asks ACS for (PCM 24 kHz mono)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="banking", help="whose number the caller dials (default: banking)")
    parser.add_argument("--script", type=Path, help="a caller script (YAML, see local_stack/scripts/banking.yaml)")
    parser.add_argument("--engines", choices=["embedded", "azure"], default="embedded",
                        help="embedded (default, no keys) or azure (the Speech/OpenAI settings in the environment)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "out", help="where the WAV, record and logs go")
    parser.add_argument("--functions-port", type=int, default=7071)
    parser.add_argument("--media-port", type=int, default=8765)
    return parser.parse_args(argv)


def scenario_number(scenario: str) -> str:
    catalog = AgentLibrary.load(get_settings().agents_dir).current
    found = catalog.scenarios.get(scenario)
    if found is None:
        raise ScriptError(f"unknown scenario {scenario!r} (have: {', '.join(sorted(catalog.scenarios))})")
    if not found.spec.phone_numbers:
        raise ScriptError(f"scenario {scenario!r} has no phone number to dial")
    return found.spec.phone_numbers[0]


async def caller_voice(lines: list[Line]) -> Voiced:
    """Every line synthesized before the call (the caller does not think while it talks)."""
    from media_host.engines.embedded.build import get_hibari_tts  # noqa: PLC0415 - loads the model

    speak = telephone_voice(get_hibari_tts(), WIRE_RATE)
    ready = {line.text: await speak(line.text) for line in lines if line.text}

    async def voice(text: str) -> bytes:
        return ready[text] if text in ready else await speak(text)

    return voice


def succeeded(result: CallResult) -> list[str]:
    """What went wrong end to end (empty: the call completed and left its record)."""
    problems = []
    if result.answer is None:
        problems.append("the call was never answered")
    if result.media is None or not result.media.agent.frames:
        problems.append("no agent audio reached the caller")
    if (result.status or {}).get("runtime_status") != "Completed":
        problems.append(f"the orchestration did not complete: {result.status}")
    if result.record is None:
        problems.append("no call record")
    return problems


async def place(options: StackOptions, script: Script, to: str) -> tuple[CallResult, list[str], LocalStack]:
    """Start the stack, place the call, stop the stack (raising StackError if it did not stop cleanly)."""
    lines = script.caller_lines()
    print(f"preparing the caller's {len(lines)} lines (embedded TTS) ...")
    voice = await caller_voice(lines)
    print(f"starting Redis, the function host, the media host and the local ACS ({options.engines} engines) ...")
    began = time.monotonic()
    async with LocalStack(options) as stack:
        print(f"stack up in {time.monotonic() - began:.1f} s: functions {stack.functions_url}, "
              f"media host {stack.media_url}, ACS {stack.acs.endpoint}")
        call = PhoneCall(stack, lines, voice, to=to, caller=script.caller, json_lines=options.log_format == "json")
        result = await call.run()
        problems = succeeded(result)
        print("stopping the stack ...")
    return result, problems, stack


def log_format() -> Literal["text", "json"]:
    """LOG_FORMAT=json makes every line (ours and the hosts') a JSON object; readable text otherwise."""
    return "json" if os.environ.get("LOG_FORMAT", "").lower() == "json" else "text"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        script = load_script(args.script or default_script(args.scenario))
        to = scenario_number(script.scenario if args.script else args.scenario)
    except ScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = StackOptions(out=args.out, engines=args.engines, functions_port=args.functions_port,
                           media_port=args.media_port, log_format=log_format())
    try:
        result, problems, _ = asyncio.run(place(options, script, to))
    except (StackError, TimeoutError) as exc:
        print(f"error: {exc or 'the call did not finish in time'}\n(logs in {args.out})", file=sys.stderr)
        return 1
    print("\nlatency per turn\n" + latency_table(result))
    if result.media is not None and result.media.agent.frames:
        wav = args.out / "call.wav"
        seconds = write_stereo_wav(wav, result.media)
        print(f"\naudio: {wav} ({seconds:.0f} s, caller left, agent right)")
    write_record(args.out / "call_record.json", result.record)
    print(f"record: {args.out / 'call_record.json'}")
    print(f"logs: {args.out / 'function_host.log'}, {args.out / 'media_host.log'}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0
