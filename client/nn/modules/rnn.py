"""gradserve.nn.modules.rnn: as torch.nn.modules.rnn, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._rnn import GRU, LSTM
from .._rnn_cells import RNN, GRUCell, LSTMCell, RNNCell

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]
