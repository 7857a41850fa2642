# -*- test-case-name: raftmux.test.test_h2_connection -*-
"""
Graceful GOAWAY on top of ``h2``.

``h2``'s connection state machine goes to CLOSED as soon as a GOAWAY is
sent or received, and from then on refuses every frame, so the streams a
GOAWAY lets finish (those at or below its last stream ID) could not.  The
shell gives each ``H2Connection`` this state machine instead: GOAWAY,
either way, leaves an open connection open; which streams may still start
is the shell's business (it refuses new ones itself).  Every other input is
``h2``'s own machine's.
"""

from h2.connection import ConnectionInputs, ConnectionState, H2ConnectionStateMachine

_SEND_GOAWAY = ConnectionInputs.SEND_GOAWAY
_RECV_GOAWAY = ConnectionInputs.RECV_GOAWAY
_OPEN = frozenset({ConnectionState.IDLE, ConnectionState.CLIENT_OPEN,
                   ConnectionState.SERVER_OPEN})


class GracefulStateMachine(H2ConnectionStateMachine):
    """``h2.connection.H2ConnectionStateMachine``, except that GOAWAY keeps it open."""

    #: set once a GOAWAY was sent or received
    goAway = False

    def process_input(self, input_):
        if (input_ is _SEND_GOAWAY or input_ is _RECV_GOAWAY) and self.state in _OPEN:
            self.goAway = True
            return []
        return H2ConnectionStateMachine.process_input(self, input_)

    def close(self):
        """Really close (a connection error): every later input is refused."""
        self.state = ConnectionState.CLOSED
