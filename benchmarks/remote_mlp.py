"""Remote vs in-process: the training step a user writes, per-op costs, waits, bulk transfer.

    python benchmarks/remote_mlp.py [--rounds 12] [--steps 10] [--mb 256] [--out FILE]

The server is a `gradserve serve` process on loopback, as users run it; the in-process side
runs in this process. Both use one BLAS thread (set below, before numpy loads; --blas-threads
changes it): on 2 CPUs, client and server each get one. Everything is compared inside this one
run, sides alternating round by round, medians reported (shared machines are noisy).

1. The step a PyTorch user writes, through the public API only: `gs.nn.Sequential(Linear,
   ReLU, Linear, ReLU, Linear)`, `F.cross_entropy` on class indices, `optim.SGD`,
   `zero_grad / backward / step` and `loss.item()` every step. Medium: batch 64,
   784-512-512-10; tiny: batch 32, 64-64-10; float32. Both sides start from the same weights
   and must end with the same ones. Per remote step: waits, ops, requests, the client's CPU
   time, the server's CPU time and minor page faults (from /proc), against the in-process
   step's page faults.
2. Per op: a chain of 1,000 ops (add, mul alternately) on 2-element float32 tensors that
   record a graph. The client's CPU per recorded op, the server's CPU per op (from /proc,
   over recording + one wait) and the same chain in the in-process engine; the server's
   overhead per op is its CPU per op minus the engine's time per op.
3. Waits to build a 1,000-op graph, run backward and fetch 10 grads.
(1b) When torch is installed, the tiny step trained the torch way across two processes:
   torch.distributed.rpc with a RemoteModule, distributed autograd and a
   DistributedOptimizer (TensorPipe on the loopback interface only).
4. Upload + download of a large float32 tensor against a bare gRPC byte stream.

Targets (issue 6): medium step remote <= 1.3x in-process; tiny step remote <= 1.2 ms or
<= 0.5x torch.distributed.rpc's step, whichever is reachable; client <= 15 us per recorded
op (issue 18: <= 8); server overhead <= 10 us per op (issue 18: <= 6); server page faults per
step near the in-process engine's; <= 3 waits for the 1,000-op graph; transfer >= 50% of raw gRPC.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # before numpy loads: BLAS reads these once
    _threads = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--blas-threads=")), "1")
    for _key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_key] = _threads

import argparse  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent import futures  # noqa: E402

import gradserve as gs  # noqa: E402
import numpy as np  # noqa: E402
from gradserve import engine  # noqa: E402
from gradserve.engine.core.memory import keep_freed_memory as kept_freed_memory  # noqa: E402

nn, F, optim = gs.nn, gs.nn.functional, gs.optim
SHAPES = {"medium": (64, (784, 512, 512, 10)), "tiny": (32, (64, 64, 10))}
CHAIN = 1000


# -- the server process ----------------------------------------------------------------------
class ServerProcess:
    """`gradserve serve` on a free loopback port, with its CPU time and page faults read from
    /proc (every thread's schedstat: nanoseconds on CPU)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradserve.server", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=os.environ)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if m is None:
            self.proc.kill()
            raise RuntimeError(f"gradserve serve said {line!r}")
        self.address = m.group(1)

    def cpu_seconds(self) -> float:
        total = 0
        task_dir = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:  # a thread that just ended
                pass
        return total / 1e9

    def minor_faults(self) -> int:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# -- 1. the training step ----------------------------------------------------------------------
def build(session, sizes):
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out, session=session))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_step(model, opt, x, y) -> float:
    """The step as a PyTorch user writes it; the same code for both tensor kinds."""
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def bench_roundtrip(client, n: int = 500) -> float:
    """Seconds for a bare Pipeline round trip: an empty request and its answer (the floor a
    remote step that waits once cannot go under: what is left is the transport)."""
    with client.session() as s:
        for _ in range(50):
            s.synchronize()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            s.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def bench_step(client, server: ServerProcess, shape: str, rounds: int, steps: int) -> dict:
    """The step in-process, remote (captured steps replayed: the default) and remote with
    replay turned off (every batch sent as its entries), sides alternating round by round;
    the server's CPU and faults and the client's CPU are those of the replaying side."""
    batch, sizes = SHAPES[shape]
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    ys = rng.integers(0, sizes[-1], batch)
    engine.manual_seed(1)
    local = build(engine, sizes)
    lopt = optim.SGD(local.parameters(), lr=0.01)
    lx, ly = engine.tensor(xs), engine.tensor(ys)
    out = {"local": [], "remote": [], "remote_eager": [], "local_faults": [],
           "server_faults": [], "server_cpu": [], "client_cpu": [], "waits": [], "ops": [],
           "requests": [], "replays": []}
    with client.session() as s, client.session() as e:
        e._plans.enabled = False
        sides = {}
        for name, sess in (("remote", s), ("remote_eager", e)):
            model = build(sess, sizes)
            model.load_state_dict(local.state_dict())
            sides[name] = (model, optim.SGD(model.parameters(), lr=0.01), sess.tensor(xs),
                           sess.tensor(ys))
        for _ in range(3):  # warm caches, allocators and the stream
            train_step(local, lopt, lx, ly)
            for side in sides.values():
                train_step(*side)
        for _ in range(rounds):  # alternate, so noise from other processes hits every side
            for _ in range(steps):
                f0, t0 = _faults(), time.perf_counter()
                train_step(local, lopt, lx, ly)
                out["local"].append(time.perf_counter() - t0)
                out["local_faults"].append(_faults() - f0)
            for _ in range(steps):
                t0 = time.perf_counter()
                train_step(*sides["remote_eager"])
                out["remote_eager"].append(time.perf_counter() - t0)
            stats0 = (s.stats.waits, s.stats.ops, s.stats.requests, s._plans.replays)
            sf0, sc0, cc0 = server.minor_faults(), server.cpu_seconds(), time.thread_time()
            for _ in range(steps):
                t0 = time.perf_counter()
                train_step(*sides["remote"])
                out["remote"].append(time.perf_counter() - t0)
            out["client_cpu"].append((time.thread_time() - cc0) / steps)
            out["server_cpu"].append((server.cpu_seconds() - sc0) / steps)
            out["server_faults"].append((server.minor_faults() - sf0) / steps)
            for key, before, now in zip(("waits", "ops", "requests", "replays"), stats0, (
                    s.stats.waits, s.stats.ops, s.stats.requests, s._plans.replays),
                    strict=True):
                out[key].append((now - before) / steps)
        got = [sess.fetch(*sides[name][0].parameters()) for name, sess in
               (("remote", s), ("remote_eager", e))]
    for side in got:  # the same steps, the same weights
        for a, b in zip(side, local.parameters(), strict=True):
            np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-3, atol=1e-5)
    return {k: statistics.median(v) for k, v in out.items()}


# -- 1b. the same tiny step through torch.distributed.rpc (when torch is installed) ----------------
def _rpc_server(port: int) -> None:  # pragma: no cover - runs in its own process
    import torch
    import torch.distributed.rpc as rpc

    torch.set_num_threads(1)
    rpc.init_rpc("server", rank=1, world_size=2, rpc_backend_options=_rpc_options(port))
    rpc.shutdown()


def _rpc_options(port: int):
    import torch.distributed.rpc as rpc

    # TensorPipe over loopback only: the uv transport on the `lo` interface
    return rpc.TensorPipeRpcBackendOptions(init_method=f"tcp://127.0.0.1:{port}",
                                           _transports=["uv"], _channels=["basic"])


def bench_torch_rpc(steps: int) -> float | None:
    """ms per tiny step trained the torch way across processes: a RemoteModule on a server
    process, distributed autograd and a DistributedOptimizer, loss.item() each step."""
    try:
        import torch
        import torch.distributed.autograd as dist_autograd
        import torch.distributed.rpc as rpc
        import torch.multiprocessing as mp
        from torch.distributed.nn import RemoteModule
        from torch.distributed.optim import DistributedOptimizer
    except ImportError:
        return None
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(TP_SOCKET_IFNAME="lo", GLOO_SOCKET_IFNAME="lo")
    server = mp.get_context("spawn").Process(target=_rpc_server, args=(port,))
    server.start()
    torch.set_num_threads(1)
    rpc.init_rpc("client", rank=0, world_size=2, rpc_backend_options=_rpc_options(port))
    try:
        batch, sizes = SHAPES["tiny"]
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(torch.nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        model = RemoteModule("server/cpu", torch.nn.Sequential, args=tuple(layers))
        opt = DistributedOptimizer(torch.optim.SGD, model.remote_parameters(), lr=0.01)
        x, y = torch.randn(batch, sizes[0]), torch.randint(0, sizes[-1], (batch,))
        times = []
        for i in range(steps + 10):
            t0 = time.perf_counter()
            with dist_autograd.context() as ctx:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                dist_autograd.backward(ctx, [loss])
                opt.step(ctx)
                loss.item()
            if i >= 10:
                times.append(time.perf_counter() - t0)
        return statistics.median(times)
    finally:
        rpc.shutdown()
        server.join(timeout=30)


# -- 2. per-op costs -----------------------------------------------------------------------------
def _chain(a, b):
    h = a
    for _ in range(CHAIN // 2):
        h = h + b
        h = h * b
    return h


def bench_per_op(client, server: ServerProcess, rounds: int) -> dict:
    """Per op of the chain: the engine's time, and the client's and server's CPU on a session
    that replays its batches (the chain's 64-op batches repeat: replayed from the third) and
    on one that sends every batch as its entries, rounds alternating."""
    ea, eb = engine.tensor([1.0, 2.0], requires_grad=True), engine.tensor([0.5, 0.25])
    times = {k: [] for k in ("engine", "client", "server", "client_eager", "server_eager")}
    with client.session() as s, client.session() as e:
        e._plans.enabled = False
        sides = [(sess, sess.tensor([1.0, 2.0], requires_grad=True), sess.tensor([0.5, 0.25]),
                  suffix) for sess, suffix in ((s, ""), (e, "_eager"))]
        for r in range(rounds + 2):
            t0 = time.perf_counter()
            h = _chain(ea, eb)
            engine_time = time.perf_counter() - t0
            del h
            if r >= 2:
                times["engine"].append(engine_time)
            for sess, ra, rb, suffix in sides:
                sess.synchronize()
                sc0, cc0 = server.cpu_seconds(), time.thread_time()
                h = _chain(ra, rb)
                record = time.thread_time() - cc0
                sess.synchronize()
                serve = server.cpu_seconds() - sc0
                del h
                if r >= 2:
                    times["client" + suffix].append(record)
                    times["server" + suffix].append(serve)
    return {k: 1e6 * statistics.median(v) / CHAIN for k, v in times.items()}


# -- 3. waits for a big graph ---------------------------------------------------------------------
def bench_waits(client) -> dict:
    with client.session() as s:
        before = s.stats.waits
        leaves = [s.randn(8, requires_grad=True) for _ in range(10)]
        h = leaves[0]
        ops = 0
        while ops < 1000:
            h = (h * leaves[ops % 10]).tanh() + leaves[(ops + 3) % 10]
            ops += 3
        h.sum().backward()
        grads = s.fetch(*leaves, grad=True)
        assert all(g.shape == (8,) for g in grads)
        return {"ops": ops + 1, "waits": s.stats.waits - before}


# -- 4. bulk transfer ------------------------------------------------------------------------------
def _raw_grpc_throughput(nbytes: int, chunk: int) -> float:
    """Bytes/s of a bare gRPC stream up then down over loopback (no gradserve code)."""
    import grpc

    payload = b"\0" * chunk
    n = nbytes // chunk

    def up(request_iterator, context):
        total = sum(len(m) for m in request_iterator)
        return total.to_bytes(8, "little")

    def down(request, context):
        for _ in range(int.from_bytes(request, "little")):
            yield payload

    handler = grpc.method_handlers_generic_handler("bench.Raw", {
        "Up": grpc.stream_unary_rpc_method_handler(up),
        "Down": grpc.unary_stream_rpc_method_handler(down),
    })
    opts = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]
    server = grpc.server(futures.ThreadPoolExecutor(4), options=opts)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=opts) as ch:
            up_call = ch.stream_unary("/bench.Raw/Up")
            down_call = ch.unary_stream("/bench.Raw/Down")
            t0 = time.perf_counter()
            up_call(payload for _ in range(n))
            got = sum(len(m) for m in down_call(n.to_bytes(8, "little")))
            elapsed = time.perf_counter() - t0
            assert got == n * chunk
    finally:
        server.stop(None)
    return 2 * n * chunk / elapsed


def bench_transfer(client, mb: int, rounds: int = 3) -> dict:
    """Medians over `rounds`, raw and SDK alternating (loopback throughput swings run to run)."""
    nbytes = mb << 20
    data = np.random.default_rng(0).standard_normal(nbytes // 4).astype(np.float32)
    raw, sdk = [], []
    with client.session() as s:
        for _ in range(rounds):
            raw.append(_raw_grpc_throughput(nbytes, 1 << 20))
            t0 = time.perf_counter()
            t = s.tensor(data)
            back = t.numpy()
            sdk.append(2 * nbytes / (time.perf_counter() - t0))
            assert np.array_equal(back, data)
            del t, back
    raw_bps, sdk_bps = statistics.median(raw), statistics.median(sdk)
    return {"mb": mb, "raw_MBps": raw_bps / 2**20, "sdk_MBps": sdk_bps / 2**20,
            "ratio": sdk_bps / raw_bps}


# -- report ------------------------------------------------------------------------------------
def _verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def render(args, steps: dict, per_op: dict, waits: dict, transfer: dict, rpc: float | None,
           load: tuple[float, float], roundtrip: float) -> str:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}, BLAS threads "
        f"{os.environ.get('OPENBLAS_NUM_THREADS')} per process; 1-minute load average "
        f"{load[0]:.2f} at the start, {load[1]:.2f} at the end.", "",
        f"Training step as a user writes it (medians over {args.rounds} rounds of "
        f"{args.steps} steps per side, sides alternating). Allocators: the in-process side "
        f"keeps freed memory because importing gradserve.engine asks glibc to "
        f"({'applied' if kept_freed_memory() else 'NOT applied here'}: engine/core/memory.py), "
        "the server because `gradserve serve` tunes its own malloc; the page-fault columns "
        "show both sides warm. 'remote' replays captured steps (the default); 'replay off' "
        "sends every batch as its entries:", "",
        "| step | in-process ms | remote ms | remote / in-process | remote, replay off ms "
        "| replays | waits | ops | requests | client CPU ms | server CPU ms "
        "| faults in-process | faults server |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |"]
    for name, r in steps.items():
        batch, sizes = SHAPES[name]
        lines.append(
            f"| {name}: batch {batch}, {'-'.join(map(str, sizes))} | {1e3 * r['local']:.2f} | "
            f"{1e3 * r['remote']:.2f} | **{r['remote'] / r['local']:.2f}x** | "
            f"{1e3 * r['remote_eager']:.2f} | {r['replays']:.0f} | {r['waits']:.0f} | "
            f"{r['ops']:.0f} | {r['requests']:.0f} | "
            f"{1e3 * r['client_cpu']:.2f} | {1e3 * r['server_cpu']:.2f} | "
            f"{r['local_faults']:.0f} | {r['server_faults']:.0f} |")
    medium, tiny = steps["medium"], steps["tiny"]
    ratio = medium["remote"] / medium["local"]
    overhead = per_op["server"] - per_op["engine"]
    lines += [
        "",
        f"- medium step remote / in-process: **{ratio:.2f}x** (issue 18: <= 1.15x, "
        f"both sides warm: {_verdict(ratio <= 1.15)})",
        f"- tiny step remote: **{1e3 * tiny['remote']:.2f} ms**, "
        f"**{tiny['remote'] / tiny['local']:.2f}x** the in-process step (issue 18: <= 2.0x: "
        f"{_verdict(tiny['remote'] <= 2.0 * tiny['local'])}); a bare Pipeline round trip "
        f"(an empty request and its answer, median of 500): {1e3 * roundtrip:.3f} ms, so "
        f"the tiny step is **{1e3 * (tiny['remote'] - roundtrip):.2f} ms** above the "
        f"transport's floor (issue 18: <= 0.15 ms: "
        f"{_verdict(tiny['remote'] - roundtrip <= 0.15e-3)})",
        (f"- the same tiny step through torch.distributed.rpc (RemoteModule, distributed "
         f"autograd, DistributedOptimizer, item() each step; a server process on loopback): "
         f"{1e3 * rpc:.2f} ms; gradserve / rpc: **{tiny['remote'] / rpc:.2f}x** (issue 18: "
         f"<= 0.35x: {_verdict(tiny['remote'] <= 0.35 * rpc)})" if rpc else
         "- torch.distributed.rpc: not measured (--no-rpc, or torch is not installed)"),
        "",
        f"Per op, a {CHAIN}-op chain recording a graph (medians over {args.rounds} runs), "
        "microseconds; its 64-op batches repeat, so the default session replays them:", "",
        "| measure | us/op | target |", "| --- | ---: | --- |",
        f"| in-process engine, whole op | {per_op['engine']:.2f} | |",
        f"| client CPU per recorded op | **{per_op['client']:.2f}** | <= 8 (issue 18): "
        f"{_verdict(per_op['client'] <= 8)} |",
        f"| server CPU per op | {per_op['server']:.2f} | |",
        f"| server overhead per op (server CPU - engine) | **{overhead:.2f}** | <= 6 "
        f"(issue 18): {_verdict(overhead <= 6)} |",
        f"| replay off: client CPU per op | {per_op['client_eager']:.2f} | |",
        f"| replay off: server overhead per op | "
        f"{per_op['server_eager'] - per_op['engine']:.2f} | |",
        "",
        "| other | result | target |", "| --- | --- | --- |",
        f"| {waits['ops']}-op graph + backward + fetch 10 grads | **{waits['waits']} waits** "
        f"| <= 3: {_verdict(waits['waits'] <= 3)} |",
        f"| raw gRPC stream up+down, {transfer['mb']} MiB (median of 3) "
        f"| {transfer['raw_MBps']:.0f} MiB/s | |",
        f"| SDK upload+download, {transfer['mb']} MiB (median of 3) "
        f"| {transfer['sdk_MBps']:.0f} MiB/s (**{100 * transfer['ratio']:.0f}%** of raw) "
        f"| >= 50%: {_verdict(transfer['ratio'] >= 0.5)} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10, help="steps per round and side")
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--blas-threads", default="1", help="BLAS threads per process")
    parser.add_argument("--no-rpc", action="store_true",
                        help="skip the torch.distributed.rpc comparison")
    parser.add_argument("--out", help="write the markdown report here too")
    args = parser.parse_args()

    load_start = os.getloadavg()[0]
    server = ServerProcess()
    try:
        with gs.connect(server.address) as client:
            steps = {name: bench_step(client, server, name, args.rounds, args.steps)
                     for name in SHAPES}
            roundtrip = bench_roundtrip(client)
            per_op = bench_per_op(client, server, args.rounds)
            waits = bench_waits(client)
            transfer = bench_transfer(client, args.mb)
    finally:
        server.stop()
    rpc = None if args.no_rpc else bench_torch_rpc(args.rounds * args.steps)
    text = render(args, steps, per_op, waits, transfer, rpc, (load_start, os.getloadavg()[0]),
                  roundtrip)
    print(text)
    if args.out:
        command = "python " + " ".join([os.path.relpath(__file__), *sys.argv[1:]])
        with open(args.out, "w") as f:
            f.write(f"# benchmarks/remote_mlp.py\n\nCommand: `{command}`\n\n{text}\n")


if __name__ == "__main__":
    main()
