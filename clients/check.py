"""The generated Python client (openapi-python-client) types every event of the feed.

Run by scripts/generated-clients.sh after generating the client into $CLIENT_DIR: each
event type's example payload, wrapped as the feed sends it, parses into that type's own
model (the `type` discriminator picks it) and writes back unchanged.
"""

import importlib
import json
import re
from datetime import datetime
import sys

doc = json.load(open(sys.argv[1]))
package = importlib.import_module(sys.argv[2])
models = importlib.import_module(f"{sys.argv[2]}.models")
schemas = doc["components"]["schemas"]
mapping = schemas["EventView"]["discriminator"]["mapping"]

items = []
for wire, ref in mapping.items():
    variant = schemas[ref.rsplit("/", 1)[1]]
    payload_ref = variant["properties"]["payload"]["$ref"].rsplit("/", 1)[1]
    example = schemas[payload_ref].get("example")
    assert example is not None, f"{payload_ref} has no example"
    items.append(
        {
            "cursor": len(items) + 1,
            "type": wire,
            "program_id": 3,
            "resource_type": "deviation",
            "resource_id": "41",
            "payload": example,
            "occurred_at": "2026-11-28T02:00:00Z",
        }
    )

def same_instants(v):
    """Datetimes compare as instants (Python writes +00:00 for Z, no zero microseconds)."""
    if isinstance(v, dict):
        return {k: same_instants(x) for k, x in v.items()}
    if isinstance(v, list):
        return [same_instants(x) for x in v]
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)", v):
        return datetime.fromisoformat(v)
    return v


page = models.EventPage.from_dict({"items": items, "next_after": len(items)})
for item, sent in zip(page.items, items):
    want = mapping[sent["type"]].rsplit("/", 1)[1]
    got = type(item).__name__
    assert got == want, f"{sent['type']} parsed as {got}, not {want}"
    back = item.to_dict()
    assert same_instants(back) == same_instants(sent), f"{sent['type']} does not round-trip:\n{back}\n{sent}"
print(f"python client: {len(items)} event types, each parsed into its own model")
