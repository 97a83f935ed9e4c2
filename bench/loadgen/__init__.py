"""The load generator behind ``python -m bench``.

One coordinator process starts the target (embedded gateway, local cluster, or the
Socket.IO peer), pins it and itself to the requested CPUs, and drives worker processes
(:mod:`.worker`) over pipes. Each worker multiplexes many client connections over one
UDP socket (:mod:`.quicmux`; QUIC library qh3 by default or aioquic, ``--client-stack``,
:mod:`.stacks`), speaking frames through the SDK's sans-I/O
:class:`imaccess.client.core.ClientCore` (:mod:`.imclient`), or Socket.IO over raw
WebSockets for the peer (:mod:`.sioclient`). Latencies go into log-bucket histograms
(:mod:`.hist`), server CPU and RSS come from psutil (:mod:`.procstats`), results are
JSON plus PNG plots (:mod:`.report`, :mod:`.plots`).

Modules: ``cli`` (arguments), ``targets`` (start/stop what is measured),
``embedded_server`` (the embedded gateway as a child process that can also broadcast),
``pool`` (coordinator side of the workers), ``worker`` (one load process),
``recorder`` (what a worker counts), ``stacks`` (the clients' QUIC library),
``scenarios/`` (idle, chat, fanout, connect, compare).
"""
