"""`gradserve demo`: the seed example end to end, printing what PyTorch prints for it.
`gradserve demo --train` instead trains the digits MLP and CNN (examples/train_digits.py).

With no --target it starts an embedded server on a free loopback port, so it needs no setup.
"""

from __future__ import annotations

import argparse
import contextlib
import warnings


def run_seed(client, input_requires_grad: bool, out=print) -> dict:
    """Run the seed example in a fresh session; print and return its results."""
    with client.session(device="cpu") as s:
        input = s.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=input_requires_grad)
        w1 = s.tensor(2.0, requires_grad=True)
        w2 = s.tensor(3.0, requires_grad=True)
        l1 = input * w1
        l2 = l1 + w2
        loss = l2.mean()
        loss.backward()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reading non-leaf .grad warns, as in torch
            results = {
                "loss": loss, "w1.grad": w1.grad, "w2.grad": w2.grad, "input.grad": input.grad,
                "l1.grad": l1.grad, "l2.grad": l2.grad, "loss.grad": loss.grad,
            }
        out(f"# input.requires_grad={input_requires_grad}")
        for name, value in results.items():
            out(f"{name}: {value!r}")  # the repr: f"{t}" of a 0-dim tensor is its value
        out(f"loss.grad_fn: {loss.grad_fn.name()}")
        out(f"l2.grad_fn: {l2.grad_fn.name()}")
        out(f"l1.grad_fn: {l1.grad_fn.name()}")
        return {k: (None if v is None else v.detach().numpy().copy()) for k, v in results.items()}


def _train(args) -> int:
    try:
        from gradserve.examples import train_digits  # optional: the examples extra
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SystemExit(f"gradserve demo --train needs the examples: {e}") from None
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise SystemExit("gradserve demo --train needs scikit-learn, tqdm and matplotlib: "
                         "pip install 'gradserve[examples]'") from None
    argv = (["--target", args.target] if args.target else []) + (["--fast"] if args.fast
                                                                 else [])
    train_digits.main(argv)
    return 0


@contextlib.contextmanager
def _embedded_server():
    from ._server import create_server  # an embedded server only when no --target

    server, port = create_server("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1).wait()


def main(argv: list[str] | None = None) -> int:
    import gradserve as gs  # the SDK, loaded when the demo runs (not by `gradserve --help`)

    parser = argparse.ArgumentParser(prog="gradserve demo", description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="host:port of a running server (default: embedded)")
    parser.add_argument("--token", help="bearer token, when the server wants one")
    parser.add_argument("--train", action="store_true",
                        help="train an MLP and a CNN on the 8x8 digits instead (needs "
                        "gradserve[examples]); writes its plot and graph picture here")
    parser.add_argument("--fast", action="store_true", help="with --train: 3 epochs")
    args = parser.parse_args(argv)
    if args.train:
        return _train(args)
    with contextlib.ExitStack() as stack:
        target = args.target or stack.enter_context(_embedded_server())
        print(f"gradserve demo against {target}" + ("" if args.target else " (embedded)"))
        client = stack.enter_context(gs.connect(target, token=args.token))
        for requires in (False, True):
            run_seed(client, requires)
    return 0
