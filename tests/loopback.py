"""Loopback HTTP servers and MIBiG-shaped tarballs for the full-profile tests.

Shared by test_data_remote.py (downloads, parsing) and test_data_full_build.py (the table build):
every server binds 127.0.0.1 and serves a temporary folder, so no test reaches the internet.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it, and it is closed again)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    log: Path

    def gets(self, filename: str) -> int:
        """How many GET requests for ``filename`` the server has logged."""
        return self.log.read_text().count(f'"GET /{filename} ')


def serve(command: list[str], port: int, log: Path) -> Iterator[Server]:
    """Run a server subprocess until the test is done; wait (bounded) until it accepts."""
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"test server did not start: {log.read_text()}") from None
                time.sleep(0.05)
        yield Server(f"http://{HOST}:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def serve_folder(folder: Path, log: Path) -> Iterator[Server]:
    """``python -m http.server`` on a free loopback port, serving ``folder``, logging to ``log``."""
    port = free_port()
    yield from serve(
        [
            sys.executable,
            "-u",
            "-m",
            "http.server",
            "--bind",
            HOST,
            "--directory",
            str(folder),
            str(port),
        ],
        port,
        log,
    )


def tarball(path: Path, folder: str, members: dict[str, bytes]) -> Path:
    """A gzip tarball holding ``members`` under ``folder/``, as MIBiG's releases are laid out."""
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def json_record(bgc_id: str, classes: list[str], compounds: list[dict[str, str]]) -> bytes:
    """A MIBiG 3.1-shaped JSON record with the fields crossgran reads."""
    return json.dumps(
        {"cluster": {"mibig_accession": bgc_id, "biosyn_class": classes, "compounds": compounds}}
    ).encode()
