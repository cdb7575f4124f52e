"""Shim for tools that still call setup.py; all metadata lives in setup.cfg.

The C extensions are optional: when one does not build (no compiler, no
Python headers) the install still succeeds and the pure-Python code is used.
"""

from setuptools import Extension, setup


def _optional(name: str, source: str, *depends: str) -> Extension:
    return Extension(
        name,
        sources=[source],
        depends=list(depends),
        optional=True,
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
    )


ext_modules = [
    # Compiled fast path of inline_ips.decode.decode (pure-Python fallback: decode_py).
    _optional("inline_ips.decode._fastdecode", "inline_ips/decode/_fastdecode.c"),
    # The common case of FlowTable.lookup (fallback: the Python method, which it calls itself).
    _optional("inline_ips._fastflow", "inline_ips/_fastflow.c", "inline_ips/_slots.h"),
    # The common case of RateTracker.update (fallback: the Python method, which it calls itself).
    _optional("inline_ips.detect._fastrate", "inline_ips/detect/_fastrate.c", "inline_ips/_slots.h"),
    # The NFQUEUE receive loop (recvmmsg, batch verdicts); fallback: NetfilterQueue's run_socket.
    _optional("inline_ips.source._nfqloop", "inline_ips/source/_nfqloop.c"),
]

setup(ext_modules=ext_modules)
