"""The peer: the same 1:1 chat relay built the way a Python team would otherwise build it.

python-socketio on aiohttp (WebSocket transport only), ``AsyncRedisManager`` so that
two server processes share rooms through one redis-server, the same HS256 JWT in the
connect ``auth``, a room ``user:<id>`` per user, and a ``chat`` event that is acked to
the sender and emitted to the recipient's room. ``python -m bench.peer.server`` runs
one process; the harness starts two and a redis-server (``bench.loadgen.targets``).
"""
