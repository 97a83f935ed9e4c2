"""Arguments of ``python -m bench``: one sub-command per scenario, plus ``compare``."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from . import report
from .scenarios import chat, compare, connect, fanout, idle
from .scenarios.common import Options, Outcome, machine, results_dir
from .stacks import DEFAULT_STACK, STACKS, load_stack

__all__ = ["main"]

Runner = Callable[[Options], Coroutine[Any, Any, Outcome]]
SCENARIOS: dict[str, tuple[Runner, tuple[str, ...], str]] = {
    "idle": (idle.run, ("embedded", "cluster", "peer"), "hold N connections with heartbeats"),
    "chat": (chat.run, ("embedded", "cluster", "peer"), "1:1 chat at stepped rates"),
    "fanout": (fanout.run, ("embedded", "cluster"), "one broadcast to N connections"),
    "connect": (connect.run, ("embedded", "cluster", "peer"), "connection storm"),
}


def _rates(text: str) -> list[float] | None:
    if text == "max":
        return None
    return [float(x) for x in text.split(",") if x]


def _common(parser: argparse.ArgumentParser, targets: tuple[str, ...] | None) -> None:
    if targets is not None:
        parser.add_argument("--target", choices=targets, default=targets[0])
    parser.add_argument("--workers", type=int, default=1, help="load-generator processes")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=50, help="chat: user pairs")
    parser.add_argument("--seconds", type=float, default=5.0, help="hold / step duration")
    parser.add_argument(
        "--rates",
        "--rate",
        dest="rates",
        type=_rates,
        default=[200.0, 500.0, 1000.0],
        help="chat: messages/s steps, comma-separated, or 'max' (closed loop)",
    )
    parser.add_argument("--window", type=int, default=4, help="chat max: unacked per sender")
    parser.add_argument("--size", type=int, default=100, help="message content bytes")
    parser.add_argument("--drain", type=float, default=10.0, help="max wait after each step")
    parser.add_argument("--baseline", type=float, default=3.0, help="chat: idle CPU seconds")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="heartbeat interval s")
    parser.add_argument(
        "--keepalive",
        choices=("ping", "frame"),
        default="ping",
        help="QUIC clients: QUIC PING (as the SDK) or Heartbeat frame (as a browser)",
    )
    parser.add_argument(
        "--ramp-rate", type=float, default=300.0, help="new connections/s while ramping (0: max)"
    )
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight/worker")
    parser.add_argument("--broadcasts", type=int, default=3, help="fanout: broadcasts to send")
    parser.add_argument("--no-resume", action="store_true", help="connect: skip resumption")
    parser.add_argument("--all-rates", action="store_true", help="chat: go on past saturation")
    parser.add_argument(
        "--client-stack",
        choices=STACKS,
        default=DEFAULT_STACK,
        help="QUIC library of the load generator's clients (the server is aioquic either way)",
    )
    parser.add_argument("--server-cpus", help="pin the target, e.g. 0 or 0-1")
    parser.add_argument(
        "--server-sched",
        choices=("normal", "batch"),
        default="normal",
        help="scheduling policy of the target's processes (batch: woken ones do not preempt)",
    )
    parser.add_argument("--client-cpus", help="pin the load generator, e.g. 1")
    parser.add_argument("--out", help="results directory (default bench/results)")
    parser.add_argument("--name", help="result file name without extension")
    parser.add_argument("--no-png", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profiles of the server processes in each measured window"
        " (into <out>/<name>-profile/; needs py-spy)",
    )


def _options(args: argparse.Namespace) -> Options:
    return Options(
        target=getattr(args, "target", "cluster"),
        workers=args.workers,
        connections=args.connections,
        pairs=args.pairs,
        seconds=args.seconds,
        rates=args.rates,
        window=args.window,
        size=args.size,
        drain=args.drain,
        baseline=args.baseline,
        heartbeat=args.heartbeat,
        keepalive=args.keepalive,
        ramp_rate=args.ramp_rate or None,
        concurrency=args.concurrency,
        broadcasts=args.broadcasts,
        resume=not args.no_resume,
        stop_at_saturation=not args.all_rates,
        server_cpus=args.server_cpus,
        client_cpus=args.client_cpus,
        client_stack=args.client_stack,
        server_sched=args.server_sched,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="scenario", required=True)
    for name, (_, targets, help_text) in SCENARIOS.items():
        _common(commands.add_parser(name, help=help_text), targets)
    versus = commands.add_parser("compare", help="imaccess (cluster) and the peer, one run")
    versus.add_argument("--scenario", dest="compared", choices=compare.COMPARABLE, default="chat")
    _common(versus, None)
    args = parser.parse_args(argv)
    options = _options(args)
    if args.scenario == "compare":
        name = args.name or f"compare-{args.compared}"
    else:
        name = args.name or f"{args.scenario}-{options.target}"
    if args.profile:
        options.profile = str(results_dir(args.out) / f"{name}-profile")
    # Stop cleanly (workers and every server process) on SIGTERM, and on SIGINT even when
    # started in the background by a shell that set SIGINT to ignored: asyncio.run turns
    # SIGINT into cancelling the scenario, whose finally blocks stop what it started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    if args.scenario == "compare":
        outcome = asyncio.run(compare.run(options, args.compared))
    else:
        outcome = asyncio.run(SCENARIOS[args.scenario][0](options))
    outcome.result["machine"] = machine()
    # the QUIC clients' library; the Socket.IO peer's clients are aiohttp either way
    quic = args.scenario == "compare" or options.target != "peer"
    outcome.result["client_stack"] = load_stack(options.client_stack).describe() if quic else None
    outcome.result["options"] = {k: v for k, v in vars(args).items() if k != "scenario"}
    paths = report.write(outcome, results_dir(args.out), name, png=not args.no_png)
    print(json.dumps(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
