"""What /metrics says about device memory, kept apart from how the page is rendered
(`_metrics.py`), so that either can change alone.

For every GPU the server serves: the bytes in use by arrays and the bytes its memory pool
holds (in use plus freed blocks cupy keeps for reuse), both read from cupy's pool for the
whole device; and for every device, cpu included, the bytes live sessions hold there, from
the counts sessions keep after each call (no session lock is taken).
"""

from __future__ import annotations

from gradserve.engine.seam import backend


def device_memory(runtime) -> list[tuple[str, str, list[tuple[str, int]]]]:
    """(metric name, help text, [(device, value), ...]) per gauge.

    >>> from gradserve.server._runtime import Runtime
    >>> gauges = {name: samples for name, _, samples in device_memory(Runtime(devices=["cpu"]))}
    >>> gauges["gradserve_device_session_bytes"], gauges["gradserve_device_memory_pool_bytes"]
    ([('cpu', 0)], [])
    """
    held = dict.fromkeys(runtime.devices, 0)
    for session in runtime.sessions.sessions():
        for device, n in session.bytes_by_device.items():
            held[device] = held.get(device, 0) + n
    used, pool = [], []
    for device in runtime.devices:
        memory = backend(device).memory()
        if memory is not None:
            used.append((device, memory[0]))
            pool.append((device, memory[1]))
    return [
        ("gradserve_device_session_bytes",
         "Bytes live sessions hold per device (tensors + grads).", sorted(held.items())),
        ("gradserve_device_memory_used_bytes",
         "GPU memory in use by arrays (cupy's memory pool), all sessions.", used),
        ("gradserve_device_memory_pool_bytes",
         "GPU memory held by cupy's memory pool: in use plus cached for reuse.", pool),
    ]
