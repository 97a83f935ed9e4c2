from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from imaccess.auth import INT64_MAX, AuthError, Identity, TokenVerifier, issue_token
from imaccess.protocol.codes import Code
from imaccess.settings import AuthSettings

SECRET = "test-secret-" + "0123456789abcdef" * 4  # long enough for HS512 too
NOW = 1_700_000_000.0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate(algorithm: str) -> PrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {algorithm: generate(algorithm) for algorithm in ("RS256", "ES256", "EdDSA")}


def hs_settings(**kw: Any) -> AuthSettings:
    return AuthSettings(secret=SECRET, **kw)


def file_settings(tmp_path: Path, algorithm: str, key: PrivateKey, **kw: Any) -> AuthSettings:
    path = tmp_path / f"{algorithm}.pem"
    path.write_bytes(public_pem(key))
    return AuthSettings(algorithm=algorithm, public_key_file=str(path), **kw)


def hs256(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256", **kw: Any) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm, **kw)


def refused(
    verifier: TokenVerifier,
    token: str,
    code: Code = Code.AUTH_INVALID_TOKEN,
    now: float = NOW,
) -> AuthError:
    with pytest.raises(AuthError) as info:
        verifier.verify(token, now=now)
    assert info.value.code is code
    if token:
        assert token not in str(info.value)
        assert token not in info.value.message
    return info.value


def good_claims(**kw: Any) -> dict[str, Any]:
    return {"sub": "42", "iat": int(NOW), "exp": int(NOW) + 60, **kw}


# --- round trips ---------------------------------------------------------------------------


def test_hs256_round_trip() -> None:
    settings = hs_settings()
    token = issue_token(settings, 42, ttl=60, now=NOW)
    assert TokenVerifier(settings).verify(token, now=NOW + 1) == Identity(42, NOW + 60)


def test_default_ttl_comes_from_settings() -> None:
    settings = hs_settings(dev_token_ttl=3600.0)
    identity = TokenVerifier(settings).verify(issue_token(settings, 7, now=NOW), now=NOW)
    assert identity.expires_at == NOW + 3600


def test_largest_int64_user_id() -> None:
    settings = hs_settings()
    token = issue_token(settings, INT64_MAX, now=NOW)
    assert TokenVerifier(settings).verify(token, now=NOW).user_id == INT64_MAX


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_asymmetric_round_trip_with_public_key_file(
    tmp_path: Path, keys: dict[str, PrivateKey], algorithm: str
) -> None:
    key = keys[algorithm]
    settings = file_settings(tmp_path, algorithm, key)
    token = issue_token(settings, 42, ttl=60, now=NOW, private_key_pem=private_pem(key))
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert TokenVerifier(settings).verify(token, now=NOW) == Identity(42, NOW + 60)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_asymmetric_wrong_key_is_refused(
    tmp_path: Path, keys: dict[str, PrivateKey], algorithm: str
) -> None:
    other = generate(algorithm)
    settings = file_settings(tmp_path, algorithm, keys[algorithm])
    token = issue_token(settings, 42, now=NOW, private_key_pem=private_pem(other))
    refused(TokenVerifier(settings), token)


def test_asymmetric_issue_needs_private_key(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(ValueError, match="private_key_pem"):
        issue_token(file_settings(tmp_path, "ES256", keys["ES256"]), 1, now=NOW)


# --- JWKS ----------------------------------------------------------------------------------


def write_jwks(tmp_path: Path, entries: list[tuple[str | None, ec.EllipticCurvePrivateKey]]) -> str:
    jwks = []
    for kid, key in entries:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        if kid is not None:
            jwk["kid"] = kid
        jwks.append(jwk)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": jwks}))
    return str(path)


def test_jwks_chooses_key_by_kid(tmp_path: Path) -> None:
    a, b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    settings = AuthSettings(algorithm="ES256", jwks_file=write_jwks(tmp_path, [("a", a), ("b", b)]))
    verifier = TokenVerifier(settings)
    for kid, key, user in (("a", a, 1), ("b", b, 2)):
        token = issue_token(settings, user, now=NOW, private_key_pem=private_pem(key), kid=kid)
        assert verifier.verify(token, now=NOW).user_id == user
    # Signed by a but claiming b's kid; an unknown kid; no kid with two keys to choose from.
    refused(verifier, issue_token(settings, 1, now=NOW, private_key_pem=private_pem(a), kid="b"))
    refused(verifier, issue_token(settings, 1, now=NOW, private_key_pem=private_pem(a), kid="c"))
    refused(verifier, issue_token(settings, 1, now=NOW, private_key_pem=private_pem(a)))


def test_jwks_single_key_used_without_kid(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    settings = AuthSettings(algorithm="ES256", jwks_file=write_jwks(tmp_path, [(None, key)]))
    token = issue_token(settings, 5, now=NOW, private_key_pem=private_pem(key))
    assert TokenVerifier(settings).verify(token, now=NOW).user_id == 5


def test_jwks_skips_keys_of_other_types(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path = Path(write_jwks(tmp_path, [("ec", ec_key)]))
    doc = json.loads(path.read_text())
    rsa_public = keys["RS256"].public_key()
    assert isinstance(rsa_public, rsa.RSAPublicKey)
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_public, as_dict=True)
    p384_jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), True)
    doc["keys"] += [{**rsa_jwk, "kid": "rsa"}, {**p384_jwk, "kid": "p384"}, "junk"]
    path.write_text(json.dumps(doc))
    settings = AuthSettings(algorithm="ES256", jwks_file=str(path))
    verifier = TokenVerifier(settings)
    token = issue_token(settings, 9, now=NOW, private_key_pem=private_pem(ec_key), kid="ec")
    assert verifier.verify(token, now=NOW).user_id == 9
    rsa_token = jwt.encode(good_claims(), keys["RS256"], algorithm="RS256", headers={"kid": "rsa"})
    refused(verifier, rsa_token)

    del doc["keys"][0]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="no usable ES256"):
        TokenVerifier(settings)


# --- expiry and time claims ----------------------------------------------------------------


def test_expired_token() -> None:
    settings = hs_settings(leeway=5.0)
    verifier = TokenVerifier(settings)
    token = issue_token(settings, 42, ttl=60, now=NOW)
    assert verifier.verify(token, now=NOW + 64.9).user_id == 42  # within the leeway
    refused(verifier, token, Code.AUTH_TOKEN_EXPIRED, now=NOW + 65)
    refused(verifier, token, Code.AUTH_TOKEN_EXPIRED, now=NOW + 10 * 86400)


def test_missing_exp() -> None:
    refused(TokenVerifier(hs_settings()), hs256({"sub": "42"}))


@pytest.mark.parametrize("exp", ["soon", float("nan"), float("inf"), True])
def test_exp_must_be_a_finite_number(exp: object) -> None:
    refused(TokenVerifier(hs_settings()), hs256(good_claims(exp=exp)))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(claim: str) -> None:
    refused(TokenVerifier(hs_settings()), hs256(good_claims(**{claim: int(NOW) + 30})))


# --- signature and algorithm attacks -------------------------------------------------------


def test_wrong_secret() -> None:
    token = issue_token(AuthSettings(secret="another-secret-that-is-32-bytes-long!"), 42, now=NOW)
    refused(TokenVerifier(hs_settings()), token)


def test_alg_none_is_refused() -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(good_claims())}."
        refused(TokenVerifier(hs_settings()), token)


def test_hs256_with_public_key_as_secret_is_refused(
    tmp_path: Path, keys: dict[str, PrivateKey]
) -> None:
    settings = file_settings(tmp_path, "RS256", keys["RS256"])
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(good_claims())}"
    mac = hmac.new(public_pem(keys["RS256"]), signing_input.encode(), hashlib.sha256).digest()
    refused(TokenVerifier(settings), f"{signing_input}.{b64url(mac)}")


def test_other_algorithms_are_refused(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    # Same secret, but HS512 is not the configured algorithm.
    refused(TokenVerifier(hs_settings()), hs256(good_claims(), algorithm="HS512"))
    # A valid ES256 token against an RS256 verifier, and RS512 with the right RSA key.
    rs = file_settings(tmp_path, "RS256", keys["RS256"])
    es_token = jwt.encode(good_claims(), keys["ES256"], algorithm="ES256")
    rs512 = jwt.encode(good_claims(), keys["RS256"], algorithm="RS512")
    refused(TokenVerifier(rs), es_token)
    refused(TokenVerifier(rs), rs512)


# --- claims --------------------------------------------------------------------------------


def test_missing_sub() -> None:
    claims = good_claims()
    del claims["sub"]
    refused(TokenVerifier(hs_settings()), hs256(claims))


@pytest.mark.parametrize(
    "sub",
    ["abc", "1.5", "1e3", "", " 42", "+42", "042", "٤٢", "9223372036854775808", "9" * 400, 42],
)
def test_non_integer_sub(sub: object) -> None:
    refused(TokenVerifier(hs_settings()), hs256(good_claims(sub=sub)))


@pytest.mark.parametrize("sub", ["0", "-1", "-9223372036854775808"])
def test_zero_or_negative_sub(sub: str) -> None:
    refused(TokenVerifier(hs_settings()), hs256(good_claims(sub=sub)))


@pytest.mark.parametrize("user_id", [0, -1, INT64_MAX + 1, True])
def test_issue_refuses_bad_user_ids(user_id: int) -> None:
    with pytest.raises(ValueError):
        issue_token(hs_settings(), user_id, now=NOW)


def test_audience_and_issuer() -> None:
    settings = hs_settings(audience="im", issuer="https://idp")
    verifier = TokenVerifier(settings)
    assert verifier.verify(issue_token(settings, 1, now=NOW), now=NOW).user_id == 1
    refused(verifier, hs256(good_claims(aud="other", iss="https://idp")))
    refused(verifier, hs256(good_claims(aud="im", iss="https://evil")))
    refused(verifier, hs256(good_claims(iss="https://idp")))  # aud missing
    refused(verifier, hs256(good_claims(aud="im")))  # iss missing
    # When not configured, aud/iss in a token are not held against it.
    assert TokenVerifier(hs_settings()).verify(
        hs256(good_claims(aud="x", iss="y")), now=NOW
    ) == Identity(42, NOW + 60)


@pytest.mark.parametrize(
    "token", ["", "garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "\x00\xff"]
)
def test_garbage(token: str) -> None:
    refused(TokenVerifier(hs_settings()), token)


def test_message_never_contains_the_token(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    bad_header = f"{b64url(b'{not json')}.{segment(good_claims())}.{b64url(b'sig')}"
    bad_payload = f"{segment({'alg': 'HS256'})}.{b64url(b'[1, 2')}.{b64url(b'sig')}"
    tokens = [
        hs256(good_claims(), secret="wrong-secret-wrong-secret-wrong-secret"),
        hs256(good_claims(exp=int(NOW) - 100)),
        hs256(good_claims(sub="not-a-number")),
        hs256(
            good_claims(),
            secret="wrong-secret-wrong-secret-wrong-secret",
            headers={"kid": "k" * 40},
        ),
        bad_header,
        bad_payload,
        "x" * 500,
    ]
    verifier = TokenVerifier(hs_settings())
    for token in tokens:
        with pytest.raises(AuthError) as info:
            verifier.verify(token, now=NOW)
        message = str(info.value)
        assert message and token not in message
        assert not any(part in message for part in token.split(".") if len(part) >= 4)


# --- construction --------------------------------------------------------------------------

Build = Callable[[Path], AuthSettings]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda p: AuthSettings(algorithm="HS512"), "not one of"),
        (lambda p: AuthSettings(algorithm="none"), "not one of"),
        (lambda p: AuthSettings(secret=""), "must not be empty"),
        (lambda p: AuthSettings(public_key_file=str(p / "k.pem")), "asymmetric"),
        (lambda p: AuthSettings(algorithm="RS256"), "exactly one"),
        (
            lambda p: AuthSettings(
                algorithm="RS256", public_key_file=str(p / "a"), jwks_file=str(p / "b")
            ),
            "exactly one",
        ),
        (lambda p: AuthSettings(algorithm="RS256", public_key_file=str(p / "nope.pem")), "read"),
        (lambda p: AuthSettings(algorithm="ES256", jwks_file=str(p / "nope.json")), "read"),
    ],
)
def test_bad_configuration(tmp_path: Path, build: Build, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TokenVerifier(build(tmp_path))


def test_key_file_of_the_wrong_kind(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(ValueError, match="no RS256 public key"):
        TokenVerifier(file_settings(tmp_path, "RS256", keys["ES256"]))
    with pytest.raises(ValueError, match="no ES256 public key"):  # P-384 is not ES256
        TokenVerifier(file_settings(tmp_path, "ES256", ec.generate_private_key(ec.SECP384R1())))
    private = tmp_path / "private.pem"
    private.write_bytes(private_pem(keys["EdDSA"]))
    with pytest.raises(ValueError, match="no EdDSA public key"):
        TokenVerifier(AuthSettings(algorithm="EdDSA", public_key_file=str(private)))
    junk = tmp_path / "jwks.json"
    junk.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JWKS"):
        TokenVerifier(AuthSettings(algorithm="ES256", jwks_file=str(junk)))
