"""A two-layer character-level transformer trained on The Zen of Python, on a gradserve
server.

    python examples/char_transformer.py            # starts its own server on a free port
    python examples/char_transformer.py --target 127.0.0.1:50051

The text ships with Python (`import this`). The model is token and position embeddings,
two pre-norm TransformerEncoderLayers (MultiheadAttention with a causal mask, LayerNorm,
GELU), a final LayerNorm and a linear head; it trains with AdamW, a cosine learning-rate
schedule and gradient-norm clipping. The full run's loss falls below 0.5 nats per
character (from ln(vocab) = 3.6 at the start); it prints the loss and a generated sample.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
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

TARGET_LOSS = 0.5  # the full run's promise (nats per character)
FAST_TARGET_LOSS = 2.5  # what --fast (the test suite's run) must reach


def zen_of_python() -> str:
    """The Zen of Python, from the `this` module (whose first import prints it: muted)."""
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


class CharTransformer(nn.Module):
    """Embeddings, `layers` causal transformer blocks, LayerNorm and a linear head."""

    def __init__(self, vocab: int, block: int, d_model: int = 64, heads: int = 4,
                 layers: int = 2, session=None) -> None:
        super().__init__()
        self.block = block
        self.tokens = nn.Embedding(vocab, d_model, session=session)
        self.positions = nn.Embedding(block, d_model, session=session)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model,
                                       dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True, session=session)
            for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model, session=session)
        self.head = nn.Linear(d_model, vocab, session=session)
        session = session if session is not None else gs.engine
        steps = np.arange(block)
        # float mask: -inf above the diagonal, so position t attends to 0..t only
        self.register_buffer("mask", session.tensor(
            np.where(steps[None, :] > steps[:, None], -np.inf, 0.0).astype(np.float32)))
        self.register_buffer("steps", session.tensor(steps))

    def forward(self, idx):
        length = idx.shape[1]
        x = self.tokens(idx) + self.positions(self.steps[:length])
        mask = self.mask[:length, :length]
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.head(self.norm(x))


def train(session, text: str, steps: int, block: int = 32, batch: int = 16, lr: float = 3e-3,
          seed: int = 0, log=print) -> tuple[CharTransformer, dict, list[float]]:
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    session.manual_seed(seed)
    model = CharTransformer(len(chars), block, session=session)
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 20)
    rng = np.random.default_rng(seed)
    losses = []
    pending = []
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(data) - block - 1, batch)
        window = np.stack([data[s:s + block + 1] for s in starts])
        x, y = session.tensor(window[:, :-1]), session.tensor(window[:, 1:])
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        pending.append(loss.detach())
        if step % 25 == 0 or step == steps:  # read losses in batches: one wait each time
            from gradserve._default import values_of

            losses += [float(v) for v in values_of(pending)]
            pending = []
            log(f"step {step:4d}  loss {np.mean(losses[-25:]):.3f}  "
                f"lr {sched.get_last_lr()[0]:.5f}")
    return model, {"chars": chars, "stoi": stoi}, losses


def sample(model: CharTransformer, vocab: dict, session, prompt: str = "Beautiful",
           length: int = 200, temperature: float = 0.6, seed: int = 0) -> str:
    """Generate characters one at a time (each one reads the model's output back)."""
    rng = np.random.default_rng(seed)
    ids = [vocab["stoi"][c] for c in prompt if c in vocab["stoi"]]
    model.eval()
    with gs.no_grad():
        for _ in range(length):
            context = session.tensor(np.array([ids[-model.block:]], dtype=np.int64))
            logits = model(context)[0, -1].numpy() / temperature
            p = np.exp(logits - logits.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    model.train()
    return "".join(vocab["chars"][i] for i in ids)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split()),  # the first paragraph
        epilog="With no --target it starts `python -m gradserve.server` on a free loopback "
               "port for the run (and says which), then stops it.")
    parser.add_argument("--target", help="host:port of a gradserve server (default: start one)")
    parser.add_argument("--in-process", action="store_true", help="no server: engine tensors")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default: 600)")
    parser.add_argument("--fast", action="store_true", help="60 steps (the test suite's run)")
    args = parser.parse_args(argv)
    steps, goal = (60, FAST_TARGET_LOSS) if args.fast else (args.steps, TARGET_LOSS)
    text = zen_of_python()
    with contextlib.ExitStack() as stack:
        if args.in_process:
            session = gs.engine
            print("training in-process (gradserve.engine)")
        else:
            target = args.target
            if target is None:
                target = stack.enter_context(local_server())
                print(f"started a gradserve server on {target} for this run")
            session = stack.enter_context(stack.enter_context(gs.connect(target)).session())
            print(f"training on gradserve server {target}")
        start = time.perf_counter()
        model, vocab, losses = train(session, text, steps)
        seconds = time.perf_counter() - start
        final = float(np.mean(losses[-25:]))
        print(f"final loss {final:.3f} after {steps} steps ({seconds:.1f} s); target < {goal}")
        print("sample:\n" + sample(model, vocab, session))
    return {"loss": final, "target": goal, "seconds": seconds}


if __name__ == "__main__":
    main()
