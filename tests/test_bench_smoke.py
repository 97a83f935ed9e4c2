"""Smoke tests of the benchmark harness (``python -m bench``): every scenario at a tiny
size against the embedded gateway, chat against the cluster and against the Socket.IO
peer. They check that results have their keys and plausible values, never how fast
anything was: the machine is shared and timed assertions would flake.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen.hist import LogHistogram
from bench.loadgen.profiling import summarise
from bench.loadgen.scenarios.compare import _ratios

REPO = Path(__file__).resolve().parents[1]

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None and not Path("/usr/sbin/redis-server").exists(),
    reason="redis-server not installed",
)


def bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run ``python -m bench ARGS`` from the repository root; its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(tmp_path), "--name", "result"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    paths = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(paths["png"]).stat().st_size > 1000
    result: dict[str, Any] = json.loads(Path(paths["json"]).read_text())
    assert result["machine"]["cpus"] >= 1
    return result


def check_chat(result: dict[str, Any], target: str, pairs: int) -> None:
    assert result["target"] == target
    assert result["connect"]["connected"] == 2 * pairs
    (step,) = result["steps"]
    assert step["sent"] > 0
    assert step["delivered"] == step["sent"] == step["acked"]
    assert step["lost"] == 0 and step["refused"] == 0
    assert step["send_to_delivery_ms"]["count"] == step["sent"]
    assert 0 < step["send_to_delivery_ms"]["p50"] <= step["send_to_delivery_ms"]["p99"]
    assert step["send_to_ack_ms"]["p99"] > 0
    assert step["server_cpu_s"] >= 0
    assert result["max_delivered_per_s"] > 0
    assert result["idle_baseline"]["server_cpu_s"] >= 0


@pytest.mark.parametrize(
    ("target", "nodes"),
    [("embedded", 1), pytest.param("cluster", 2, marks=needs_redis),
     pytest.param("peer", 2, marks=needs_redis)],
)  # fmt: skip
def test_chat(tmp_path: Path, target: str, nodes: int) -> None:
    result = bench(tmp_path, "chat", "--target", target, "--pairs", "3", "--seconds", "1",
                   "--rates", "40", "--baseline", "0.3")  # fmt: skip
    check_chat(result, target, 3)
    assert result["nodes"] == nodes


def test_idle_embedded(tmp_path: Path) -> None:
    result = bench(tmp_path, "idle", "--target", "embedded", "--connections", "8",
                   "--seconds", "1.5", "--heartbeat", "0.5")  # fmt: skip
    assert result["connections_held"] == result["connections_requested"] == 8
    assert result["heartbeats_echoed"] > 0
    assert result["heartbeats_echoed"] <= result["heartbeats_sent"]
    assert result["heartbeat_rtt_ms"]["p99"] > 0
    assert result["rss_per_connection_bytes"] is not None
    assert result["server_cpu_per_heartbeat_us"] is not None
    assert result["disconnects"] == 0


@pytest.mark.parametrize("stack", ["qh3", "aioquic"])
def test_connect_embedded(tmp_path: Path, stack: str) -> None:
    result = bench(tmp_path, "connect", "--target", "embedded", "--connections", "8",
                   "--client-stack", stack)  # fmt: skip
    assert result["client_stack"]["name"] == stack
    full, resumed = result["phases"]["full"], result["phases"]["resumed"]
    assert full["connected"] == resumed["connected"] == 8
    assert full["resumed"] == 0
    assert resumed["resumed"] == 8  # every second connection used its session ticket
    assert full["time_to_authenticated_ms"]["count"] == 8
    assert full["per_second"] > 0


def test_fanout_embedded(tmp_path: Path) -> None:
    result = bench(tmp_path, "fanout", "--target", "embedded", "--connections", "8",
                   "--broadcasts", "2")  # fmt: skip
    assert result["connected"] == 8
    assert [r["deliveries"] for r in result["broadcasts"]] == [8, 8]
    assert result["send_to_delivery_ms"]["count"] == 16
    assert result["deliveries_per_s"] > 0


def test_histogram_percentiles_within_two_percent() -> None:
    hist = LogHistogram()
    for ms in range(1, 1001):
        hist.record(ms / 1000)
    for q, expected in ((50, 0.5), (99, 0.99), (100, 1.0)):
        value = hist.percentile(q)
        assert value is not None
        assert abs(value - expected) / expected < 0.02
    other = LogHistogram()
    other.record(2.0)
    hist.merge(other)
    assert hist.total == 1001 and hist.max_s == 2.0


def test_compare_ratios() -> None:
    def step(rate: float, per_core: float, p99: float) -> dict[str, Any]:
        latency = {"p99": p99}
        return {"offered_per_s": rate, "delivered_per_core_s": per_core,
                "send_to_delivery_ms": latency, "send_to_ack_ms": latency}  # fmt: skip

    ours = {"steps": [step(100, 400, 10)], "max_delivered_per_core_s": 400,
            "max_delivered_per_s": 100}  # fmt: skip
    theirs = {"steps": [step(100, 200, 20)], "max_delivered_per_core_s": 200,
              "max_delivered_per_s": 100}  # fmt: skip
    ratios = _ratios("chat", ours, theirs)
    assert ratios["max_delivered_per_core_s"] == 2.0
    assert ratios["at_equal_rate"][0]["p99_delivery"] == 0.5


def test_quic_connection_side_by_side() -> None:
    from bench.quic_connection import run

    result = run(connections=4, rounds=3, repeats=1)
    aioquic, compact = result["aioquic"], result["compact"]
    # memory is traced, not timed: the compact connection holds less than half
    assert (
        compact["server_heap_per_connection_bytes"] * 2
        < aioquic["server_heap_per_connection_bytes"]
    )
    # aioquic keeps a record of each ACK it sent in answer to a PING; the gateway one
    assert aioquic["sent_packet_records_after_3_keepalives"] >= 3
    assert compact["sent_packet_records_after_3_keepalives"] <= 1
    assert compact["server_cpu_per_keepalive_us"] > 0


def test_profile_of_each_measured_window(tmp_path: Path) -> None:
    result = bench(tmp_path, "chat", "--target", "embedded", "--pairs", "3", "--seconds", "1",
                   "--rates", "100", "--baseline", "0.3", "--profile")  # fmt: skip
    (step,) = result["steps"]
    profile = step["profile"]
    assert profile["label"] == "rate-100"
    summary = profile["processes"]["embedded"]
    assert summary["samples"] > 0
    # the gateway answered QUIC packets in that window: aioquic must show in its samples
    assert summary["inclusive_by_component"]["aioquic"] > 0
    assert abs(sum(summary["self_by_component"].values()) - 1) < 0.01
    assert 0 <= summary["loop_share"] < 1
    stacks = tmp_path / "result-profile" / summary["stacks"]
    with gzip.open(stacks, "rt") as packed:
        assert "aioquic/" in packed.read()


def test_profile_summary_by_component_and_function() -> None:
    collapsed = "\n".join(
        [
            "main (imaccess/cli.py:9);Runner.run (asyncio/runners.py:118) 5",
            "main (imaccess/cli.py:9);Runner.run (asyncio/runners.py:118);"
            "peer (imaccess/transport/quic.py:10);send (aioquic/quic/connection.py:20) 3",
            "main (imaccess/cli.py:9);Runner.run (asyncio/runners.py:118);"
            "peer (imaccess/transport/quic.py:12);send (aioquic/quic/connection.py:25) 1",
            "main (imaccess/cli.py:9);Runner.run (asyncio/runners.py:118);"
            "parse (nats/protocol/parser.py:7) 1",
        ]
    )
    summary = summarise(collapsed)
    assert summary["samples"] == 10
    # the loop's own samples (its C code, or waiting for the CPU) are apart from the shares
    assert summary["loop_share"] == 0.5
    assert summary["self_by_component"] == {"aioquic": 0.8, "nats.py": 0.2}
    # under the loop only: the entry frames above it are on every stack and not counted
    assert summary["inclusive_by_component"] == {"imaccess": 0.8, "aioquic": 0.8, "nats.py": 0.2}
    # one function over two of its lines
    assert summary["top_self"]["send (aioquic/quic/connection.py)"] == 0.8
    assert summary["top_inclusive"]["peer (imaccess/transport/quic.py)"] == 0.8


async def test_nats_ops(nats_url: str) -> None:
    from bench.nats_ops import measure

    result = await measure(nats_url, count=40, concurrency=10)
    assert set(result) == {
        "jetstream_publish_one_in_flight_us",
        "jetstream_publish_10_in_flight_us",
        "core_publish_us",
        "core_publish_with_headers_us",
        "received_by_callback_us",
        "received_by_callback_with_headers_us",
    }
    assert result["jetstream_publish_one_in_flight_us"] > 0
