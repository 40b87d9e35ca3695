"""The bounds a request to the decision service must keep, in one place (issue 16).

Each bound turns a request that would cost unbounded memory or CPU, or crash a handler, into a 4xx
naming the place. They are deliberately generous for real callers: a decision input is a handful of
numbers, booleans and short strings.
"""

from __future__ import annotations

# The largest integer a JSON number can carry exactly through IEEE doubles (JavaScript's
# Number.MAX_SAFE_INTEGER + 1). Beyond it two different inputs can decide the same way, and Python's
# int() of a 5,000-digit literal raises (sys.int_info.default_max_str_digits) — a 500 before this bound.
# The protocol-file loader bounds its numbers with the same value (branch hostile-parse); the two are to be
# unified at merge.
MAX_SAFE_INTEGER = 2**53

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH = 1000
MAX_JSON_DEPTH = 32

# The request line and headers together (what h11 buffers before it has a complete request head), and any
# one header line. nginx's defaults are 8 KiB per line; Node's total is 16 KiB.
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADER_LINE_BYTES = 8 * 1024

# A value quoted back in an error message is escaped and cut to this many characters, so a hostile 200 KB
# string (or a lone surrogate, which no UTF-8 response can carry) never becomes the response.
MAX_QUOTED_CHARS = 200
