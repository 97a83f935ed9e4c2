"""configs/config.yaml documents every key with its default; env overrides apply."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from imaccess.settings import MultiDevicePolicy, Settings, SettingsError, load_settings

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "config.yaml"


def _keys(obj: Any, prefix: str = "") -> set[str]:
    keys = set()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys |= _keys(value, f"{prefix}{f.name}.")
        else:
            keys.add(prefix + f.name)
    return keys


def _yaml_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        if isinstance(value, dict):
            keys |= _yaml_keys(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_config_file_documents_every_key_with_its_default() -> None:
    assert _yaml_keys(yaml.safe_load(CONFIG.read_text())) == _keys(Settings())
    assert load_settings(CONFIG, environ={}) == Settings()


def test_environment_overrides() -> None:
    s = load_settings(
        CONFIG,
        environ={
            "IMACCESS_LISTEN": "127.0.0.1:9443",
            "IMACCESS_NODE_ID": "edge-7",
            "IMACCESS_HEARTBEAT_INTERVAL": "5",
            "IMACCESS_MULTI_DEVICE_POLICY": "single_device",
            "IMACCESS_LIMITS_MAX_FRAME_SIZE": "40000",
        },
    )
    assert s.listen_address == ("127.0.0.1", 9443)
    assert s.node_id == "edge-7"
    assert s.heartbeat.interval == 5.0
    assert s.multi_device_policy is MultiDevicePolicy.SINGLE_DEVICE
    assert s.limits.max_frame_size == 40000


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("heartbeat:\n  intervall: 3\n")
    with pytest.raises(SettingsError, match=r"heartbeat\.intervall"):
        load_settings(path, environ={})


def test_bad_value_is_an_error() -> None:
    with pytest.raises(SettingsError, match="IMACCESS_HEARTBEAT_TIMEOUT"):
        load_settings(environ={"IMACCESS_HEARTBEAT_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match=r"heartbeat\.timeout must exceed"):
        load_settings(environ={"IMACCESS_HEARTBEAT_TIMEOUT": "10"})
