# -*- test-case-name: raftmux.test.test_h2_validate -*-
"""
The shell's checks of received header blocks refuse exactly what h2's
``validate_inbound_headers`` refuses (compared on random blocks), and stay
right when a field is checked from memory the second time.
"""

from h2.exceptions import ProtocolError
from h2.utilities import HeaderValidationFlags, validate_headers
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.h2._validate import checkRequest, checkResponse, checkTrailers

pseudo = st.sampled_from([b":method", b":path", b":scheme", b":authority", b":status",
                          b":protocol", b":bogus"])
regular = st.sampled_from([b"host", b"te", b"connection", b"content-type", b"x-a",
                           b"Upper", b"bad name", b"", b"a:b", b"\xff"]) | st.binary(max_size=6)
value = st.sampled_from([b"GET", b"CONNECT", b"/", b"", b"trailers", b"Trailers", b"gzip",
                         b" padded", b"a\r\nb", b"200", b"http", b"example.com"]) | \
    st.binary(max_size=6)
field = st.tuples(pseudo | regular, value)
block = st.lists(field, max_size=8)
goodRequest = st.permutations([(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
                               (b":authority", b"h")])


def h2Accepts(headers, response=False, trailer=False):
    flags = HeaderValidationFlags(is_client=response, is_trailer=trailer,
                                  is_response_header=response and not trailer,
                                  is_push_promise=False)
    try:
        list(validate_headers(headers, flags))
    except ProtocolError:
        return False
    return True


class AgreementTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(block)
    def test_requests(self, headers):
        for _ in range(2):  # the second time from memory
            self.assertEqual(checkRequest(headers) is None, h2Accepts(headers), headers)

    @settings(max_examples=300, deadline=None)
    @given(goodRequest, block)
    def test_nearlyGoodRequests(self, pseudoFields, rest):
        headers = list(pseudoFields) + rest
        self.assertEqual(checkRequest(headers) is None, h2Accepts(headers), headers)

    @settings(max_examples=250, deadline=None)
    @given(block)
    def test_responses(self, headers):
        self.assertEqual(checkResponse(headers) is None, h2Accepts(headers, response=True),
                         headers)

    @settings(max_examples=300, deadline=None)
    @given(block)
    def test_trailers(self, headers):
        self.assertEqual(checkTrailers(headers) is None,
                         h2Accepts(headers, response=True, trailer=True), headers)

    def test_examples(self):
        ok = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
              (b":path", b"/a"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
        self.assertIsNone(checkRequest(ok))
        self.assertIn("te", checkRequest(ok[:-1] + [(b"te", b"gzip")]))
        self.assertIn("after", checkRequest([(b"x", b"1")] + ok))
        self.assertIn("connection-specific", checkRequest(ok + [(b"connection", b"close")]))
        self.assertIn("illegal", checkRequest(ok + [(b"x", b"a\nb")]))
        self.assertIsNone(checkResponse([(b":status", b"200"), (b"grpc-status", b"0")]))
        self.assertIn("pseudo", checkTrailers([(b":status", b"200")]))
