"""Structured logs carry node, connection and user ids, and never a token."""

from __future__ import annotations

import io
import json
import logging

import pytest

from imaccess.client import AuthFailed
from imaccess.logs import _JsonFormatter
from imaccess.settings import Settings

from .conftest import ClientFactory, token_for


async def test_logs_name_the_connection_and_never_the_token(
    client: ClientFactory, settings: Settings
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        good = token_for(settings, 5)
        await client(5, token=good)
        bad = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        with pytest.raises(AuthFailed):
            await client(5, token=bad)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = stream.getvalue()
    assert good not in text and bad not in text and good.split(".")[2] not in text
    records = [json.loads(line) for line in text.splitlines()]
    authenticated = [r for r in records if r["msg"] == "authenticated"]
    assert authenticated and authenticated[0]["user_id"] == 5
    assert authenticated[0]["node_id"] == "access-1" and authenticated[0]["conn_id"] > 0
    assert authenticated[0]["transport"] == "quic"
    assert any(r["msg"] == "auth refused" and r["code"] == 2001 for r in records)
