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
