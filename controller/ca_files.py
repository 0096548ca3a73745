"""A self-managed CA's files on disk: a 0700 directory, a 0600 key, every write atomic.

Each file is written to a fresh temp file at its final mode and renamed over the old one, so a
reader (or a restart after a crash) sees the old content or the new, never a mix, and the key is
never readable by others, not even for an instant.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from controller.ca_signer import CaError, Signer, pem

ROOT_CERT = "root-cert.pem"
ROOT_KEY = "root-key.pem"
TRUST_BUNDLE = "trust-bundle.pem"


def make_private_dir(directory: Path) -> None:
    """The CA directory is the controller's alone; tighten it even if it already existed."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as error:
        raise CaError(f"{directory}: cannot create the CA directory: {error}") from None


def check_private_mode(key_path: Path) -> None:
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise CaError(
            f"{key_path} is readable by others (mode {mode:o}); run chmod 600 {key_path}, "
            "and consider the key compromised if others could read it"
        )


def persist(directory: Path, signer: Signer) -> None:
    """Bundle first: a crash part-way leaves trust wider, never narrower than the signing root."""
    bundle = b"".join(pem(root) for root in signer.roots)
    _write_atomic(directory / TRUST_BUNDLE, bundle, 0o644)
    key_pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(directory / ROOT_KEY, key_pem, 0o600)
    _write_atomic(directory / ROOT_CERT, pem(signer.cert), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Create a fresh temp file at its final mode (O_EXCL: never someone else's file), then
    rename it over the target, so readers see the old or the new content, never a mix."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise CaError(f"{path}: cannot write: {error}") from None
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
