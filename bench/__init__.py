"""Benchmarks of imaccess: ``python -m bench <scenario>`` (see :mod:`bench.loadgen`).

``bench/quic_stacks.py`` and ``bench/webtransport_check/`` are the older stand-alone
measurements of the QUIC stack choice; they do not use this package.
"""
