"""Remote vs in-process: one MLP training step, round trips per graph, bulk transfer.

    python benchmarks/remote_mlp.py [--steps 20] [--mb 256] [--out benchmarks/results/remote_mlp.md]

Three measurements, each compared inside this one run (shared machines are noisy):
1. One training step (forward, cross-entropy, backward, SGD) for batch 64, 784-512-512-10
   float32, run by the same code on engine tensors and on a remote session over loopback.
2. The waits (blocking round trips) needed to build a 1,000-op graph, run backward and fetch
   the grads of its leaves.
3. Upload + download of a large float32 tensor through the SDK against the raw throughput of
   a bare gRPC byte stream (same chunk size, same loopback) measured here too.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from concurrent import futures

import gradserve as gs
import numpy as np
from gradserve import engine
from gradserve.server import create_server

SIZES = (784, 512, 512, 10)
BATCH = 64


def make_params(factory, seed: int):
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        bound = 1 / np.sqrt(fan_in)
        params.append(factory(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)))
        params.append(factory(rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)))
    for p in params:
        p.requires_grad_(True)
    return params


def train_step(params, x, y, lr=0.01):
    """The same code for engine tensors and remote tensors."""
    h = x
    for i in range(0, len(params), 2):
        h = h._op("linear", h, params[i], params[i + 1])
        if i + 2 < len(params):
            h = h.relu()
    loss = h._op("cross_entropy", h, y)
    loss.backward()
    with gs.no_grad():
        for p in params:
            p.sub_(p.grad * lr)
            p.grad = None
    return loss


def timed(run) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def bench_step(client, steps: int) -> dict:
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    ys = rng.integers(0, SIZES[-1], BATCH)

    params = make_params(lambda a: engine.tensor(a), 1)
    x, y = engine.tensor(xs), engine.tensor(ys)
    with client.session() as s:
        rparams = make_params(lambda a: s.tensor(a), 1)
        rx, ry = s.tensor(xs), s.tensor(ys)
        local, remote = [], []
        for i in range(steps + 2):
            # alternate, so load from other processes hits both sides alike
            lt = timed(lambda: train_step(params, x, y).item())
            rt = timed(lambda: train_step(rparams, rx, ry).item())
            if i >= 2:  # the first steps warm caches and thread pools
                local.append(lt)
                remote.append(rt)
        # both sides ran the same steps from the same start: the weights must agree
        np.testing.assert_allclose(s.fetch(*rparams)[0], params[0].detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
    return {"local_ms": 1e3 * statistics.median(local),
            "remote_ms": 1e3 * statistics.median(remote)}


def bench_waits(client) -> dict:
    with client.session() as s:
        before = s.stats.waits
        leaves = [s.randn(8, requires_grad=True) for _ in range(10)]
        h = leaves[0]
        ops = 0
        while ops < 1000:
            h = (h * leaves[ops % 10]).tanh() + leaves[(ops + 3) % 10]
            ops += 3
        loss = h.sum()
        loss.backward()
        grads = s.fetch(*leaves, grad=True)
        assert all(g.shape == (8,) for g in grads)
        return {"ops": ops + 1, "waits": s.stats.waits - before}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--out", help="write the markdown table here too")
    args = parser.parse_args()

    server, port = create_server("127.0.0.1:0")
    server.start()
    try:
        with gs.connect(f"127.0.0.1:{port}") as client:
            step = bench_step(client, args.steps)
            waits = bench_waits(client)
            transfer = bench_transfer(client, args.mb)
    finally:
        server.stop(None)

    lines = [
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, numpy {np.__version__}",
        "",
        "| measurement | result | target |",
        "| --- | --- | --- |",
        f"| MLP step 64x784-512-512-10, in-process | {step['local_ms']:.2f} ms | |",
        f"| same step through the client over loopback | {step['remote_ms']:.2f} ms "
        f"(**{step['remote_ms'] / step['local_ms']:.2f}x** in-process) | <= 1.3x |",
        f"| {waits['ops']}-op graph + backward + fetch 10 grads "
        f"| **{waits['waits']} waits** | <= 3 |",
        f"| raw gRPC stream up+down, {transfer['mb']} MiB (median of 3) "
        f"| {transfer['raw_MBps']:.0f} MiB/s | |",
        f"| SDK upload+download, {transfer['mb']} MiB (median of 3) "
        f"| {transfer['sdk_MBps']:.0f} MiB/s "
        f"(**{100 * transfer['ratio']:.0f}%** of raw) | >= 50% |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# benchmarks/remote_mlp.py\n\n")
            f.write("Command: `python benchmarks/remote_mlp.py "
                    f"--steps {args.steps} --mb {args.mb} --out {args.out}`\n\n{text}\n")


if __name__ == "__main__":
    main()
