"""JWT verification for AuthRequest, and token issuing for the dev gateway and tests.

Only the one configured algorithm is ever accepted, so ``alg: none`` and HS256 tokens
signed with a public key as the HMAC secret are refused before any key is used.
Time claims are checked here rather than by PyJWT so that ``now`` is injectable.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import AllowedPublicKeys, get_default_algorithms

from imaccess.protocol.codes import Code
from imaccess.settings import AuthSettings

__all__ = ["AuthError", "Identity", "TokenVerifier", "issue_token"]

SUPPORTED = frozenset({"HS256", "RS256", "ES256", "EdDSA"})
INT64_MAX = 2**63 - 1
# Canonical form only (no sign, no leading zero, at most 19 digits), so one user id has
# exactly one spelling and int() never sees an oversized string.
_SUB = re.compile(r"[1-9][0-9]{0,18}")


class AuthError(Exception):
    """Carries the close code the client must see; the message is safe to log and send."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    expires_at: float | None


class TokenVerifier:
    """Loads keys once so a bad key file fails at startup, not on the first login."""

    def __init__(self, settings: AuthSettings) -> None:
        alg, pem, jwks = settings.algorithm, settings.public_key_file, settings.jwks_file
        _check_algorithm(alg)
        self._settings = settings
        self._key: AllowedPublicKeys | bytes | None = None
        self._jwks: list[jwt.PyJWK] = []
        if alg == "HS256":
            # A key file with HS256 is almost surely a forgotten algorithm setting; running
            # on the (default) shared secret instead would be a silent downgrade.
            if pem or jwks:
                raise ValueError("auth.public_key_file/jwks_file need an asymmetric algorithm")
            if not settings.secret:
                raise ValueError("auth.secret must not be empty for HS256")
            self._key = settings.secret.encode()
        elif bool(pem) == bool(jwks):
            raise ValueError(f"{alg} needs exactly one of auth.public_key_file, auth.jwks_file")
        elif pem:
            self._key = _load_pem(pem, alg)
        else:
            self._jwks = _load_jwks(jwks, alg)

    def verify(self, token: str, now: float | None = None) -> Identity:
        now = time.time() if now is None else now
        s = self._settings
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=[s.algorithm],
                audience=s.audience or None,
                issuer=s.issuer or None,
                options={
                    "require": ["exp", "sub"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": bool(s.audience),
                    "verify_iss": bool(s.issuer),
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise AuthError(Code.AUTH_INVALID_TOKEN, _describe(exc, token)) from None
        exp = _time_claim(claims, "exp") or 0.0  # presence is enforced by "require"
        if exp <= now - s.leeway:
            raise AuthError(Code.AUTH_TOKEN_EXPIRED, "token has expired")
        for name in ("nbf", "iat"):
            if (_time_claim(claims, name) or 0.0) > now + s.leeway:
                raise AuthError(Code.AUTH_INVALID_TOKEN, f"token is not valid yet ({name})")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not _SUB.fullmatch(sub) or int(sub) > INT64_MAX:
            raise AuthError(Code.AUTH_INVALID_TOKEN, "sub must be a positive int64 user id")
        return Identity(user_id=int(sub), expires_at=exp)

    def _key_for(self, token: str) -> AllowedPublicKeys | bytes | jwt.PyJWK:
        if self._key is not None:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(self._jwks) == 1:
            return self._jwks[0]
        for jwk in self._jwks:
            if kid is not None and jwk.key_id == kid:
                return jwk
        raise jwt.InvalidKeyError("no JWKS key matches the token's kid")


def issue_token(
    settings: AuthSettings,
    user_id: int,
    ttl: float | None = None,
    now: float | None = None,
    private_key_pem: bytes | None = None,
    *,
    kid: str | None = None,
) -> str:
    """Mint a token the matching verifier accepts; ``kid`` selects a key in a JWKS."""
    if isinstance(user_id, bool) or not 0 < user_id <= INT64_MAX:
        raise ValueError(f"user_id must be a positive int64, got {user_id!r}")
    _check_algorithm(settings.algorithm)
    now = time.time() if now is None else now
    ttl = settings.dev_token_ttl if ttl is None else ttl
    payload: dict[str, Any] = {"sub": str(user_id), "iat": int(now), "exp": int(now + ttl)}
    payload |= {k: v for k, v in (("aud", settings.audience), ("iss", settings.issuer)) if v}
    key = settings.secret.encode() if settings.algorithm == "HS256" else private_key_pem
    if key is None:
        raise ValueError(f"{settings.algorithm} needs private_key_pem to sign")
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=settings.algorithm, headers=headers)


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in SUPPORTED:
        raise ValueError(f"auth.algorithm {algorithm!r} is not one of {sorted(SUPPORTED)}")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{what} {path!r} cannot be read: {exc.strerror or exc}") from exc


def _load_pem(path: str, algorithm: str) -> AllowedPublicKeys:
    data = _read(path, "auth.public_key_file")
    try:
        key = load_pem_public_key(data)
        return cast("AllowedPublicKeys", get_default_algorithms()[algorithm].prepare_key(key))
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ValueError(f"auth.public_key_file {path!r}: no {algorithm} public key") from exc


def _load_jwks(path: str, algorithm: str) -> list[jwt.PyJWK]:
    """Keeps only signing keys of the configured algorithm; a mixed JWKS is normal."""
    data = _read(path, "auth.jwks_file")
    try:
        entries = json.loads(data)["keys"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"auth.jwks_file {path!r} is not a JWKS document") from exc
    keys: list[jwt.PyJWK] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            jwk = jwt.PyJWK(entry, algorithm=algorithm)
            jwk.Algorithm.prepare_key(jwk.key)  # e.g. refuses a P-384 key for ES256
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if entry.get("alg", algorithm) == algorithm:
            keys.append(jwk)
    if not keys:
        raise ValueError(f"auth.jwks_file {path!r} has no usable {algorithm} signing key")
    return keys


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    try:
        number = float(value)  # an int beyond float range raises OverflowError here
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(number):
        raise AuthError(Code.AUTH_INVALID_TOKEN, f"{name} must be a finite number")
    return number


def _describe(exc: Exception, token: str) -> str:
    """PyJWT's reasons help clients, but nothing derived from the token may be echoed."""
    reason = str(exc)[:120] or type(exc).__name__
    if any(len(p) >= 4 and p in reason for p in (token, *token.split("."))):
        reason = type(exc).__name__
    return f"invalid token: {reason}"
