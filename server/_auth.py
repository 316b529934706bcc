"""Who is calling: bearer tokens from a token file, or everyone is "anonymous".

A token file has one token per line, either `name:token` or a bare `token`; blank lines and
lines starting with `#` are skipped. Callers send the metadata `authorization: Bearer <token>`.
The name becomes the owner of the sessions the caller creates. A bare token gets the name
`token-<first 8 hex digits of its sha256>`, so two bare tokens are two owners and the log
never shows a token.

Without a token file every caller is `anonymous`: a session id (128 random bits) is then the
only thing that grants access to a session.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from ._errors import UnauthenticatedError

ANONYMOUS = "anonymous"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """The tokens that may call, keyed by their sha256 so lookups never compare secrets."""

    def __init__(self, tokens: dict[str, str]) -> None:
        """`tokens` maps token -> owner name."""
        self._by_digest = {_digest(token): name for token, name in tokens.items()}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TokenTable:
        """Read a token file (see the module docstring); raises ValueError when it has none."""
        tokens: dict[str, str] = {}
        with open(path, encoding="utf-8") as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                name, sep, token = line.partition(":")
                if not sep:
                    token = name
                    name = "token-" + hashlib.sha256(token.encode()).hexdigest()[:8]
                name, token = name.strip(), token.strip()
                if not name or not token:
                    raise ValueError(f"{path}:{lineno}: expected 'name:token' or 'token'")
                tokens[token] = name
        if not tokens:
            raise ValueError(f"{path}: no tokens (every caller would be refused)")
        return cls(tokens)

    def __len__(self) -> int:
        return len(self._by_digest)

    def owner(self, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        """The owner name for a call's metadata; UnauthenticatedError when missing or wrong."""
        header = None
        for key, value in metadata:
            if key == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
                break
        if header is None:
            raise UnauthenticatedError(
                "this server wants a bearer token: send metadata 'authorization: Bearer <token>'"
            )
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("the authorization metadata must read 'Bearer <token>'")
        name = self._by_digest.get(_digest(token.strip()))
        if name is None:
            raise UnauthenticatedError("unknown bearer token")
        return name


def identify(metadata: Iterable[tuple[str, str | bytes]], tokens: TokenTable | None) -> str:
    """The caller's identity: the token's name, or ANONYMOUS when the server has no tokens."""
    return ANONYMOUS if tokens is None else tokens.owner(metadata)
