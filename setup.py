"""Shim for tools that still call setup.py; all metadata lives in setup.cfg.

The C extensions are optional: when one does not build (no compiler, no
Python headers) the install still succeeds and the pure-Python code is used.
"""

from setuptools import Extension, setup

ext_modules = [
    # Compiled fast path of inline_ips.decode.decode (pure-Python fallback: decode_py).
    Extension(
        "inline_ips.decode._fastdecode",
        sources=["inline_ips/decode/_fastdecode.c"],
        optional=True,
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
    ),
    # The common case of FlowTable.lookup (fallback: the Python method, which it calls itself).
    Extension(
        "inline_ips._fastflow",
        sources=["inline_ips/_fastflow.c"],
        depends=["inline_ips/_slots.h"],
        optional=True,
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
    ),
    # The common case of RateTracker.update (fallback: the Python method, which it calls itself).
    Extension(
        "inline_ips.detect._fastrate",
        sources=["inline_ips/detect/_fastrate.c"],
        depends=["inline_ips/_slots.h"],
        optional=True,
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
    ),
    # The NFQUEUE receive loop (recvmmsg, batch verdicts); fallback: NetfilterQueue's run_socket.
    Extension(
        "inline_ips.source._nfqloop",
        sources=["inline_ips/source/_nfqloop.c"],
        optional=True,
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
    ),
]

setup(ext_modules=ext_modules)
