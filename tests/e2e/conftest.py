"""End-to-end fixtures: a real gradserve server in this process on 127.0.0.1:0, a client
connected to it, and a fresh session per test."""

from __future__ import annotations

import gradserve as gs
import pytest

create_server = pytest.importorskip("gradserve.server").create_server


@pytest.fixture(scope="module")
def server():
    srv, port = create_server("127.0.0.1:0")
    srv.start()
    srv.address = f"127.0.0.1:{port}"
    yield srv
    srv.stop(0).wait()


@pytest.fixture(scope="module")
def client(server):
    c = gs.connect(server.address)
    yield c
    c.close()


@pytest.fixture
def s(client):
    with client.session() as session:
        yield session
