"""Sessions through Envoy (deploy/envoy) in front of real `gradserve serve` replicas, on
loopback: each session stays on the replica that created it, through scale-out and the death
of another replica; the SDK reports a dead replica's sessions as lost."""

from __future__ import annotations

import base64
import json
import signal
import subprocess

import gradserve as gs
import grpc
import numpy as np
import pytest
from gradserve import engine
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1 import gradserve_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow

RNG = np.random.default_rng(7)
X = RNG.standard_normal((16, 4)).astype(np.float32)
Y = (X @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)).astype(np.float32)


class Regression:
    """Least squares by hand-written SGD, on a remote session or in-process (`engine`)."""

    def __init__(self, where) -> None:
        self.x, self.y = where.tensor(X), where.tensor(Y)
        self.w = where.tensor(np.zeros((4, 1), np.float32), requires_grad=True)
        self.steps = 0

    def step(self) -> None:
        loss = ((self.x @ self.w - self.y) ** 2).mean()
        loss.backward()
        with gs.no_grad():
            self.w -= 0.05 * self.w.grad
        self.w.grad = None
        self.steps += 1

    def check(self) -> None:
        """The weights equal an in-process run of as many steps, bit for bit."""
        reference = Regression(engine)
        for _ in range(self.steps):
            reference.step()
        np.testing.assert_array_equal(self.w.detach().numpy(), reference.w.detach().numpy())


def replica_of(client: gs.Client, session: gs.Session) -> str:
    """The replica Envoy pinned the session to, read from the route it gave the client."""
    route = client.route(session.id)
    assert route, f"Envoy gave session {session.id} no route"
    return base64.b64decode(route).decode()


def holders(replicas, session_id: str) -> list[str]:
    """The replicas that answer for `session_id` when asked directly, bypassing Envoy."""
    found = []
    for replica in replicas:
        with grpc.insecure_channel(replica.address) as channel:
            stub = pb_grpc.GradserveServiceStub(channel)
            try:
                stub.DescribeSession(pb.SessionRef(session_id=session_id), timeout=10)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND, e
            else:
                found.append(replica.address)
    return found


def new_session(client: gs.Client, live: dict, placed: dict) -> str:
    """Open a session and take its first step (which opens its Pipeline stream); the replica
    it went to. Probes that land elsewhere than a test waits for stay open: they count."""
    s = client.session()
    live[s] = Regression(s)
    live[s].step()
    s.synchronize()  # a step's ops are sent ahead; make sure its stream is open
    placed[s] = replica_of(client, s)
    return placed[s]


def test_sessions_stay_on_their_replica_through_scale_out_and_a_replica_death(
        replicas, envoy, helpers):
    first = replicas(3)
    proxy = envoy("envoy.yaml", [r.address for r in first])
    client = gs.connect(proxy.address)
    try:
        # Each session's first step opens its Pipeline stream, which Envoy counts as an
        # active request on its replica: new sessions go to the least busy replica.
        live, placed = {}, {}
        for _ in range(9):
            new_session(client, live, placed)
        per_replica = {r.address: sorted(s.id for s in live if placed[s] == r.address)
                       for r in first}
        assert all(len(ids) == 3 for ids in per_replica.values()), per_replica
        for r in first:
            assert r.created() == set(per_replica[r.address])
        for s in live:
            assert holders(first, s.id) == [placed[s]]

        for _ in range(3):
            for model in live.values():
                model.step()

        # Scale out: a fourth replica moves none of the live sessions. Once Envoy's workers
        # have it, it takes the new sessions, being the least busy.
        (fourth,) = replicas(1)
        everyone = [*first, fourth]
        proxy.set_replicas([r.address for r in everyone])
        helpers.wait_for("a new session on the fourth replica",
                 lambda: new_session(client, live, placed) == fourth.address)
        for model in live.values():
            model.step()
        for _ in range(2):
            assert new_session(client, live, placed) == fourth.address
        assert {s: replica_of(client, s) for s in live} == placed
        assert fourth.created() >= {s.id for s in live if placed[s] == fourth.address}

        # A replica dies: its sessions are lost, with a message that says so; the others
        # carry on, and new sessions land on the survivors.
        victim = first[0]
        victim.kill()
        for s, model in live.items():
            if placed[s] == victim.address:
                with pytest.raises(gs.SessionLostError, match="replica holding it is gone"):
                    model.step()  # sent ahead, without waiting: the loss shows at the wait
                    s.synchronize()
                with pytest.raises(gs.SessionLostError, match="replica holding it is gone"):
                    s.info()
            else:
                model.step()
        survivors = [r for r in everyone if r is not victim]
        for _ in range(4):
            assert new_session(client, live, placed) != victim.address
        for s, model in live.items():
            if placed[s] != victim.address:
                model.step()
                model.check()
                assert holders(survivors, s.id) == [placed[s]]
                s.close()
    finally:
        client.close()


def test_seed_example_streams_attach_and_grpcurl_health_through_envoy(replicas, envoy, helpers):
    proxy = envoy("envoy.yaml", [r.address for r in replicas(2)])
    with gs.connect(proxy.address) as client, client.session(device="cpu") as s:
        input = s.tensor([[1., 2.], [3., 4.]], requires_grad=False)
        w1 = s.tensor(2.0, requires_grad=True)
        w2 = s.tensor(3.0, requires_grad=True)
        loss = (input * w1 + w2).mean()
        loss.backward()
        assert (w1.grad.item(), w2.grad.item(), input.grad) == (2.5, 1.0, None)
        assert loss.grad_fn.name() == "MeanBackward0"
        assert repr(w1.grad) == "tensor(2.5000)"

        # 2 MiB go up on an Upload stream and come back on a Fetch stream. The session's
        # Pipeline stream keeps its replica the busier one, so without the route these
        # calls would go to the other replica, which does not hold the session.
        values = np.arange(1 << 19, dtype=np.float32)
        big = s.from_numpy(values)
        np.testing.assert_array_equal((big * 2).numpy(), values * 2)

        s.synchronize()
        with gs.connect(proxy.address) as other:
            again = other.attach(s.id, route=client.route(s.id))
            assert again.get(big.id).sum().item() == float(values.sum())

    out = subprocess.run(
        [helpers.tool("grpcurl"), "-plaintext", "-d",
         '{"service": "gradserve.v1.GradserveService"}', proxy.address,
         "grpc.health.v1.Health/Check"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "SERVING"}


def test_ring_hash_fallback_pins_sessions_by_their_id(replicas, envoy):
    # No route header here: the client proposes each session's id in x-session-id, so the
    # hash places CreateSession where the session's later calls will go.
    servers = replicas(3)
    proxy = envoy("envoy-ring-hash.yaml", [r.address for r in servers])
    with gs.connect(proxy.address) as client:
        sessions = [client.session() for _ in range(12)]
        models = [Regression(s) for s in sessions]
        for _ in range(3):
            for model in models:
                model.step()
        for s, model in zip(sessions, models, strict=True):
            assert client.route(s.id) is None
            model.check()
            (holder,) = holders(servers, s.id)
            assert s.id in next(r for r in servers if r.address == holder).created()
        assert sum(1 for r in servers if r.created()) >= 2  # spread by the hash


def test_a_rolling_update_behind_envoy_moves_the_session(replicas, envoy, tmp_path):
    """Replicas sharing a --state-dir: SIGTERM to the replica a session is pinned to; the
    session goes on, on the other replica, through the same Envoy, bit for bit."""
    servers = replicas(2, "--state-dir", str(tmp_path))
    proxy = envoy("envoy.yaml", [r.address for r in servers])
    with gs.connect(proxy.address) as client, client.session() as s:
        model = Regression(s)
        for _ in range(5):
            model.step()
        s.synchronize()
        (victim,) = [r for r in servers if r.address == replica_of(client, s)]
        (other,) = [r for r in servers if r is not victim]
        victim.proc.send_signal(signal.SIGTERM)
        assert victim.proc.wait(timeout=30) == 0
        proxy.set_replicas([other.address])  # as Kubernetes drops the terminated pod
        for _ in range(5):
            model.step()
        model.check()
        assert replica_of(client, s) == other.address
        assert any(e["event"] == "session.restored" and e["session"] == s.id
                   for e in other.events)
