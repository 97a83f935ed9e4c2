"""One typed settings object, loaded from YAML, overridden by environment variables.

Every key has a default, so no file is needed. A key's environment variable is
``IMACCESS_`` followed by its dotted path upper-cased with dots as underscores:
``heartbeat.interval`` ← ``IMACCESS_HEARTBEAT_INTERVAL``, ``listen`` ← ``IMACCESS_LISTEN``.
``configs/config.yaml`` documents every key. Unknown keys in the file are an error,
so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    "AdminSettings",
    "AuthSettings",
    "DrainSettings",
    "FilesSettings",
    "HeartbeatSettings",
    "HttpSettings",
    "LimitsSettings",
    "LocationSettings",
    "LogicSettings",
    "MultiDevicePolicy",
    "NatsSettings",
    "QuicSettings",
    "RedisSettings",
    "Settings",
    "SettingsError",
    "load_settings",
]

ENV_PREFIX = "IMACCESS_"
MAX_WORKERS = 64
"""Most worker processes per node (their index is a connection ID's first byte mod N)."""
DEV_SECRET = "imaccess-development-secret-change-me-before-production"


class SettingsError(ValueError):
    pass


class MultiDevicePolicy(StrEnum):
    SINGLE_DEVICE = "single_device"
    """A new login kicks every other connection of the user."""
    MULTI_DEVICE = "multi_device"
    """All devices coexist (a reconnect of the same device_id still replaces its old one)."""
    SINGLE_PER_PLATFORM = "single_per_platform"
    """One connection per platform: a login kicks the user's others on that platform."""


@dataclass(slots=True)
class QuicSettings:
    idle_timeout: float = 90.0
    max_streams_bidi: int = 100
    max_streams_uni: int = 50
    max_datagram_frame_size: int = 65536
    certificate: str = ""
    """PEM certificate chain; empty: a development ECDSA certificate is generated."""
    private_key: str = ""
    state_dir: str = ".imaccess"
    """Where the development certificate is kept."""
    socket_buffer: int = 4 * 1024 * 1024
    """Bytes of kernel receive and send buffer for the UDP socket (SO_RCVBUF/SO_SNDBUF;
    past ``net.core.rmem_max`` only as root). Linux's default, ~208 KiB, is about a hundred
    datagrams: a loop turn's stall under a ramp of tens of thousands of connections
    overflowed it, and each datagram the kernel dropped cost a retransmission."""
    retry: bool = False
    """Validate client addresses with a QUIC Retry before any handshake work (RFC 9000
    §8.1): spoofed source addresses cost the node one stateless packet. Costs a round trip."""


@dataclass(slots=True)
class AuthSettings:
    algorithm: str = "HS256"
    """HS256 (shared secret), or RS256 / ES256 / EdDSA with a public key or a JWKS file."""
    secret: str = DEV_SECRET
    public_key_file: str = ""
    jwks_file: str = ""
    audience: str = ""
    issuer: str = ""
    leeway: float = 5.0
    deadline: float = 10.0
    """Seconds a new connection has to send its AuthRequest."""
    dev_token_ttl: float = 86400.0


@dataclass(slots=True)
class HeartbeatSettings:
    interval: float = 30.0
    timeout: float = 90.0


@dataclass(slots=True)
class LimitsSettings:
    max_connections: int = 100_000
    """Connections one access node holds; more are refused with NODE_FULL."""
    max_connections_per_ip: int = 256
    """Connections from one client address; more are refused with TOO_MANY_CONNECTIONS."""
    message_rate: float = 20.0
    """Chat messages per second per user (token bucket refill), per access node."""
    message_burst: int = 60
    """Chat messages a user may send at once before the rate applies."""
    auth_failures_per_minute: int = 30
    """Failed authentications per client address per minute; then AUTH_BLOCKED."""
    max_control_frame_size: int = 32 * 1024
    """Largest frame on the control stream (auth, heartbeat, sync)."""
    max_frame_size: int = 64 * 1024
    """Largest frame on the message stream, and of any frame the node sends."""
    max_outbound_bytes: int = 1024 * 1024
    """Bytes queued towards one connection before it is closed as a slow consumer."""
    max_content_bytes: int = 16 * 1024


@dataclass(slots=True)
class LogicSettings:
    inbox_limit: int = 10_000
    """Messages kept per user inbox in memory; older ones are dropped first."""
    sync_batch: int = 200
    """Most messages in one SyncResponse."""
    dedupe_window: float = 24 * 3600.0
    """How long a msg_id is remembered for de-duplication."""
    linger: float = 0.01
    """Seconds a worker waits after upstream messages arrive before it processes them,
    so that more join the batch (each batch costs a Redis round trip, its pushes and
    acks, whatever its size). Adds up to this much to every message's latency: 10 ms
    bought 1.15-1.23x the messages per server core-second at 200-400 msg/s
    (BENCHMARKS.md, "Sixth round")."""


@dataclass(slots=True)
class DrainSettings:
    deadline: float = 30.0
    """Seconds a draining node waits for clients to leave before closing the rest."""
    reconnect_spread: float = 5.0
    """Clients are told to reconnect after a delay drawn uniformly from [0, spread] s."""
    task_grace: float = 5.0
    """Seconds in-flight requests of the last connections get after the deadline."""


@dataclass(slots=True)
class AdminSettings:
    listen: str = "127.0.0.1:9091"
    """host:port of the admin HTTP listener (/metrics, /healthz, /readyz); empty: off."""


@dataclass(slots=True)
class HttpSettings:
    listen: str = "127.0.0.1:8080"
    """host:port of the HTTP listener for browsers (WebSocket at /ws, the demo page);
    empty: off."""


@dataclass(slots=True)
class FilesSettings:
    directory: str = ".imaccess/files"
    """Where uploaded files are kept; in a cluster, a directory every access node shares."""
    max_size: int = 100 * 1024 * 1024
    """Largest file accepted, in bytes."""
    max_transfers: int = 4
    """Uploads plus downloads running at once on one connection."""
    stall_timeout: float = 30.0
    """Seconds an upload may go without receiving a byte before it is reset."""
    send_window: int = 256 * 1024
    """Bytes of a download the node keeps unacknowledged (its memory per download)."""


@dataclass(slots=True)
class LocationSettings:
    ttl: float = 180.0
    """Seconds a location entry lives without a refresh (nodes refresh every ttl / 3)."""
    node_ttl: float = 10.0
    """Seconds a node stays 'alive' without renewing; its locations are ignored after."""


@dataclass(slots=True)
class NatsSettings:
    url: str = "nats://127.0.0.1:4222"
    """One server URL, or several separated by commas (a cluster)."""
    upstream: str = "jetstream"
    """jetstream: durable, acked, de-duplicated upstream; core: at-most-once, lower latency."""
    stream: str = "IM_UPSTREAM"
    replicas: int = 1
    """JetStream replicas of the upstream stream (3 on a 3-node cluster)."""
    partitions: int = 16
    """Upstream is split by sender into this many partitions, each processed in order."""
    duplicate_window: float = 120.0
    """Seconds JetStream de-duplicates upstream publishes by Nats-Msg-Id."""
    max_age: float = 86400.0
    """Seconds an upstream message is kept in the stream."""
    ack_wait: float = 30.0
    """Seconds before an unacknowledged upstream message is redelivered to Logic."""
    request_timeout: float = 5.0
    ping_interval: float = 5.0
    """Seconds between client pings: how soon a frozen NATS server is noticed."""


@dataclass(slots=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    cluster: bool = False
    """Connect to a Redis Cluster (url names any one of its nodes)."""


@dataclass(slots=True)
class Settings:
    node_id: str = "access-1"
    listen: str = "127.0.0.1:8443"
    """host:port of the QUIC listener (UDP)."""
    workers: int = 1
    """Processes of one ``imaccess access`` node, one per core: worker ``i`` is routing
    target ``<node_id>-w<i>`` with admin port + i, QUIC datagrams steered to it by
    connection ID (:mod:`imaccess.workers`). ``imaccess dev`` is always one process."""
    multi_device_policy: MultiDevicePolicy = MultiDevicePolicy.MULTI_DEVICE
    log_level: str = "INFO"
    log_format: str = "text"
    """text: one line per record with key=value fields; json: one JSON object per line."""
    quic: QuicSettings = field(default_factory=QuicSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    logic: LogicSettings = field(default_factory=LogicSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    files: FilesSettings = field(default_factory=FilesSettings)
    drain: DrainSettings = field(default_factory=DrainSettings)
    locations: LocationSettings = field(default_factory=LocationSettings)
    nats: NatsSettings = field(default_factory=NatsSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)

    @property
    def listen_address(self) -> tuple[str, int]:
        return split_host_port(self.listen)


def split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise SettingsError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the YAML file (if any), then ``IMACCESS_*`` variables."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path}: the top level must be a mapping")
        data = loaded
    settings = _build(Settings, data, "")
    _apply_env(settings, os.environ if environ is None else environ, "")
    if settings.heartbeat.timeout <= settings.heartbeat.interval:
        raise SettingsError("heartbeat.timeout must exceed heartbeat.interval")
    if not 1 <= settings.workers <= MAX_WORKERS:
        raise SettingsError(f"workers must be 1..{MAX_WORKERS}")
    if settings.nats.partitions < 1:
        raise SettingsError("nats.partitions must be at least 1")
    if settings.logic.inbox_limit < 1 or settings.logic.sync_batch < 1:
        raise SettingsError("logic.inbox_limit and logic.sync_batch must be at least 1")
    if not 0 <= settings.logic.linger <= 1:
        raise SettingsError("logic.linger must be between 0 and 1 second")
    limits = settings.limits
    if limits.max_outbound_bytes < 2 * limits.max_frame_size:
        raise SettingsError("limits.max_outbound_bytes must be at least 2 x limits.max_frame_size")
    if limits.max_content_bytes > limits.max_frame_size // 2:
        raise SettingsError("limits.max_content_bytes must be at most limits.max_frame_size / 2")
    return settings


T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise SettingsError(
            f"unknown settings key(s): {', '.join(prefix + k for k in sorted(unknown))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, Mapping):
                raise SettingsError(f"{prefix}{name} must be a mapping")
            kwargs[name] = _build(kind, value, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(kind, value, prefix + name)
    return cls(**kwargs)


def _apply_env(obj: Any, environ: Mapping[str, str], prefix: str) -> None:
    hints = _field_types(type(obj))
    for f in dataclasses.fields(obj):
        kind = hints[f.name]
        path = prefix + f.name
        if dataclasses.is_dataclass(kind):
            _apply_env(getattr(obj, f.name), environ, path + ".")
            continue
        var = ENV_PREFIX + path.replace(".", "_").upper()
        if var in environ:
            setattr(obj, f.name, _coerce(kind, environ[var], var))


def _coerce(kind: Any, value: Any, where: str) -> Any:
    try:
        if isinstance(kind, type) and issubclass(kind, Enum):
            return kind(value)
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
        if typing.get_origin(kind) in (list, types.GenericAlias):
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(i).strip() for i in items if str(i).strip()]
    except (TypeError, ValueError):
        raise SettingsError(
            f"{where}: {value!r} is not a valid {getattr(kind, '__name__', kind)}"
        ) from None
    raise SettingsError(f"{where}: unsupported setting type {kind!r}")
