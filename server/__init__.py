"""gradserve.server: the gRPC server that hosts remote autograd sessions.

    >>> from gradserve.server import create_server
    >>> server, port = create_server("127.0.0.1:0")
    >>> server.start()

`gradserve serve` (or `python -m gradserve.server`) runs one from the command line.
"""

from ._server import GradserveServer, create_server

__all__ = ["GradserveServer", "create_server"]
