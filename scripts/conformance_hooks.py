"""Schemathesis hooks for scripts/conformance.sh (loaded through SCHEMATHESIS_HOOKS).

The fuzzer would otherwise generate Idempotency-Key headers, and Hypothesis reuses short
minimal strings, so many generated POSTs became replays of an earlier request (the first
2xx answered again for 24 h, as documented) or `422 key_reused`, and never reached the
handler. Idempotency itself is covered end to end (tests/e2e/idempotency.rs).
"""

import schemathesis


@schemathesis.hook
def map_headers(ctx, headers):
    if not headers:
        return headers
    return {k: v for k, v in headers.items() if k.lower() != "idempotency-key"}


@schemathesis.hook
def map_query(ctx, query):
    """A list's `cursor` is only ever a value the list itself gave (`next_cursor`); any
    other string, however well-formed, is a 422 by design, which the positive-data pass
    would report as valid data refused. Cursors are covered end to end
    (tests/e2e/paging.rs)."""
    if not query:
        return query
    return {k: v for k, v in query.items() if k != "cursor"}
