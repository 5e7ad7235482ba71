"""What SIGINT and SIGTERM ask of the daemon: only a second Ctrl-C cuts the stop short."""

from __future__ import annotations

import signal

import pytest

from edge_asr.cli.run import StopSignals

INT, TERM = signal.SIGINT, signal.SIGTERM


def actions(*signals: int) -> list[str]:
    """The policy's answers to signals arriving in this order (the first one starts a stop)."""
    policy, stopping, said = StopSignals(), False, []
    for signum in signals:
        said.append(policy.on(signum, stopping))
        stopping = stopping or said[-1] == "stop"
    return said


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        ((INT,), ["stop"]),
        ((TERM,), ["stop"]),
        ((INT, INT), ["stop", "now"]),  # Ctrl-C twice
        ((INT, TERM), ["stop", "ignore"]),  # Ctrl-C, then a wrapper passes it on
        ((TERM, INT), ["stop", "ignore"]),  # the wrapper's TERM came first: same Ctrl-C
        ((TERM, INT, INT), ["stop", "ignore", "now"]),  # ... and then a second Ctrl-C
        ((TERM, TERM), ["stop", "ignore"]),  # systemd repeating itself
        ((INT, TERM, INT), ["stop", "ignore", "now"]),
    ],
)
def test_stop_signals(signals: tuple[int, ...], expected: list[str]) -> None:
    assert actions(*signals) == expected


def test_a_sigint_before_the_stop_began_counts_toward_a_second_ctrl_c() -> None:
    # The daemon may stop for its own reasons (its source ended); a Ctrl-C then starts
    # nothing new, and the next one means "now".
    policy = StopSignals()
    assert policy.on(INT, stopping=True) == "ignore"
    assert policy.on(INT, stopping=True) == "now"
