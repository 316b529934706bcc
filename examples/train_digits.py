"""Train an MLP and a small CNN on scikit-learn's 8x8 digits, on a gradserve server.

    pip install 'gradserve[examples]'
    python examples/train_digits.py              # starts its own server on a free port
    python examples/train_digits.py --target 127.0.0.1:50051 --model cnn
    gradserve demo --train                       # the same, installed

The 1,797 digit images ship with scikit-learn (no download). The full run (12 epochs)
reaches test accuracy >= 0.95 with the MLP and >= 0.97 with the CNN; --fast (3 epochs,
what the test suite runs) >= 0.93 and >= 0.95. The data is uploaded to the
session once; each step sends its batch's indices and buffered ops, and reads nothing back:
losses are fetched once per epoch. It prints `test accuracy: 0.9xx` for each model and
writes, under --out, a loss/accuracy plot (digits_training.png) and a picture of one
training step's backward graph (digits_cnn_graph.svg, or .dot without Graphviz).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time

try:  # run as a script (python examples/x.py) or imported from gradserve.examples
    from ._server import local_server
except ImportError:
    from _server import local_server

import gradserve as gs
import gradserve.nn as nn
import gradserve.nn.functional as F
import gradserve.optim as optim
import numpy as np


def load_digits(seed: int = 0, test_fraction: float = 0.2):
    """(x_train, y_train, x_test, y_test): images (N, 1, 8, 8) scaled to [0, 1], a fixed
    shuffled split."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - test_fraction))
    train, test = order[:cut], order[cut:]
    return x[train], y[train], x[test], y[test]


def make_mlp(session) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128, session=session), nn.ReLU(),
                         nn.Linear(128, 10, session=session))


def make_cnn(session) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, session=session), nn.BatchNorm2d(16, session=session),
        nn.ReLU(), nn.MaxPool2d(2),                                   # 16 x 4 x 4
        nn.Conv2d(16, 32, 3, padding=1, session=session), nn.ReLU(), nn.MaxPool2d(2),  # 32x2x2
        nn.Flatten(), nn.Linear(128, 10, session=session))


MODELS = {"mlp": make_mlp, "cnn": make_cnn}


def accuracy(model, x, y_np: np.ndarray) -> float:
    model.eval()
    with gs.no_grad():
        predicted = model(x).argmax(1).numpy()
    model.train()
    return float((predicted == y_np).mean())


def train(name: str, session, data, epochs: int, batch_size: int = 64, lr: float = 0.01,
          seed: int = 0, progress: bool = True, graph_out: str | None = None) -> dict:
    """Train one model; returns its per-epoch losses and accuracies and final accuracy."""
    x_train, y_train, x_test, y_test = data
    session.manual_seed(seed)
    model = MODELS[name](session)
    x, y = session.tensor(x_train), session.tensor(y_train)
    xt = session.tensor(x_test)
    opt = optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(x_train) // batch_size)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    rng = np.random.default_rng(seed)
    history = {"loss": [], "accuracy": []}
    bar = _progress(epochs * steps_per_epoch, name, progress)
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        losses = []
        for i in range(steps_per_epoch):
            idx = session.tensor(order[i * batch_size:(i + 1) * batch_size])
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if graph_out is not None:  # one step's picture, before backward frees it
                _save_graph(loss, model, graph_out)
                graph_out = None
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
            bar.update(1)
        epoch_losses = [float(v) for v in _values(losses)]  # one fetch per epoch
        history["loss"].extend(epoch_losses)
        history["accuracy"].append(accuracy(model, xt, y_test))
        bar.set_postfix(loss=f"{np.mean(epoch_losses):.3f}",
                        acc=f"{history['accuracy'][-1]:.3f}")
    bar.close()
    history["seconds"] = time.perf_counter() - start
    history["test_accuracy"] = history["accuracy"][-1]
    return history


def _values(tensors):
    from gradserve._default import values_of

    return values_of(tensors)


def _progress(total: int, name: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety
        tqdm = None
    if tqdm is None or not enabled:
        return _NoBar()
    return tqdm(total=total, desc=f"{name:>3}", unit="step", file=sys.stderr)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def _save_graph(loss, model, out: str) -> None:
    graph = gs.viz.graph(loss, params=dict(model.named_parameters()))
    base = os.path.join(out, "digits_cnn_graph")
    with open(base + ".dot", "w") as f:
        f.write(str(graph) + "\n")
    if shutil.which("dot"):
        graph.render(base + ".svg")
        print(f"wrote {base}.svg (the CNN's backward graph; DOT text in {base}.dot)")
    else:
        print(f"wrote {base}.dot (the CNN's backward graph); no .svg: Graphviz's `dot` is not "
              "on PATH (install graphviz to render it)")


def plot(histories: dict, path: str) -> None:
    """Loss per step and test accuracy per epoch for each model, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name, h in histories.items():
        ax_loss.plot(h["loss"], label=name, linewidth=1)
        ax_acc.plot(range(1, len(h["accuracy"]) + 1), h["accuracy"], marker="o", label=name)
    ax_loss.set(title="training loss", xlabel="step", ylabel="cross-entropy", yscale="log")
    ax_acc.set(title="test accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0.8, 1.0))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="host:port of a gradserve server (default: start one)")
    parser.add_argument("--in-process", action="store_true",
                        help="no server: train on in-process engine tensors")
    parser.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--fast", action="store_true", help="3 epochs (the test suite's mode)")
    parser.add_argument("--out", default=".", help="folder for the plot and the graph picture")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    epochs = 3 if args.fast else args.epochs
    os.makedirs(args.out, exist_ok=True)
    data = load_digits()
    names = ["mlp", "cnn"] if args.model == "both" else [args.model]
    histories = {}
    with contextlib.ExitStack() as stack:
        if args.in_process:
            session = gs.engine
            print("training in-process (gradserve.engine)")
        else:
            target = args.target or stack.enter_context(local_server())
            client = stack.enter_context(gs.connect(target))
            session = stack.enter_context(client.session())
            print(f"training on gradserve server {target}"
                  + ("" if args.target else " (started for this run)"))
        for name in names:
            h = train(name, session, data, epochs, progress=not args.no_progress,
                      graph_out=args.out if name == "cnn" else None)
            histories[name] = h
            print(f"[{name}] test accuracy: {h['test_accuracy']:.3f} "
                  f"({epochs} epochs, {h['seconds']:.1f} s)", flush=True)
    plot(histories, os.path.join(args.out, "digits_training.png"))
    print(f"wrote {os.path.join(args.out, 'digits_training.png')}")
    return {name: h["test_accuracy"] for name, h in histories.items()}


if __name__ == "__main__":
    main()
