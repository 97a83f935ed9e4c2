"""Python client SDK: ``async with Client(host, port, token=...) as client: ...``."""

from .core import ClientCore, DeliveryCursor, backoff_delay
from .sdk import AuthFailed, Client, ClientError, Disconnected, SendFailed

__all__ = [
    "AuthFailed",
    "Client",
    "ClientCore",
    "ClientError",
    "DeliveryCursor",
    "Disconnected",
    "SendFailed",
    "backoff_delay",
]
