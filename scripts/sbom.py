#!/usr/bin/env python3
"""The software bill of materials (CycloneDX 1.5 JSON) of cmo-orchestrator.

    scripts/sbom.py generate   # writes docs/validation/sbom.cdx.json from `cargo metadata`
    scripts/sbom.py check      # CI: the committed SBOM lists exactly Cargo.lock's packages

The SBOM is committed and checked, not regenerated on every run: a change to Cargo.lock
without a regenerated SBOM fails CI, naming what was added, removed or changed. Every
locked crate is listed; `scope` is `required` for what the shipped binaries (cmo-api,
cmo-worker) link and `excluded` for build, test and bench tools.
"""
import json
import subprocess
import sys

if sys.version_info < (3, 11):
    sys.exit("sbom.py needs Python 3.11 or newer (tomllib)")
import tomllib  # noqa: E402
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SBOM = ROOT / "docs" / "validation" / "sbom.cdx.json"
SHIPPED = ("api", "worker")


def purl(name, version):
    return f"pkg:cargo/{name}@{version}"


def locked():
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    return {
        (p["name"], p["version"])
        for p in lock["package"]
        if p.get("source")  # workspace members have no source
    }


def generate():
    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1"], cwd=ROOT
        )
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])
    # What the shipped binaries link: normal dependencies, transitively.
    required, stack = set(), [i for i in members if packages[i]["name"] in SHIPPED]
    while stack:
        node = nodes[stack.pop()]
        for dep in node["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]) and dep["pkg"] not in required:
                required.add(dep["pkg"])
                stack.append(dep["pkg"])
    version = next(p["version"] for i, p in packages.items() if i in members)
    components = []
    for pid, p in sorted(packages.items(), key=lambda kv: (kv[1]["name"], kv[1]["version"])):
        if pid in members:
            continue
        component = {
            "type": "library",
            "bom-ref": purl(p["name"], p["version"]),
            "name": p["name"],
            "version": p["version"],
            "purl": purl(p["name"], p["version"]),
            "scope": "required" if pid in required else "excluded",
        }
        if p.get("license"):
            component["licenses"] = [{"expression": p["license"]}]
        if p.get("repository"):
            component["externalReferences"] = [{"type": "vcs", "url": p["repository"]}]
        components.append(component)
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "component": {
                "type": "application",
                "bom-ref": "cmo-orchestrator",
                "name": "cmo-orchestrator",
                "version": version,
            },
            "tools": {"components": [{"type": "application", "name": "scripts/sbom.py"}]},
        },
        "components": components,
    }
    SBOM.parent.mkdir(parents=True, exist_ok=True)
    SBOM.write_text(json.dumps(bom, indent=2) + "\n")
    print(f"sbom: {len(components)} components ({sum(c['scope'] == 'required' for c in components)} shipped) -> {SBOM.relative_to(ROOT)}")


def check():
    bom = json.loads(SBOM.read_text())
    assert bom["bomFormat"] == "CycloneDX", "not a CycloneDX document"
    listed = {(c["name"], c["version"]) for c in bom["components"]}
    purls_ok = all(c["purl"] == purl(c["name"], c["version"]) for c in bom["components"])
    lock = locked()
    missing, extra = sorted(lock - listed), sorted(listed - lock)
    if missing or extra or not purls_ok:
        print("sbom: docs/validation/sbom.cdx.json does not match Cargo.lock; run scripts/sbom.py generate", file=sys.stderr)
        for name, version in missing:
            print(f"  not in the SBOM: {name} {version}", file=sys.stderr)
        for name, version in extra:
            print(f"  not in Cargo.lock: {name} {version}", file=sys.stderr)
        sys.exit(1)
    print(f"sbom: {len(listed)} components match Cargo.lock")


if __name__ == "__main__":
    {"generate": generate, "check": check}[sys.argv[1] if len(sys.argv) > 1 else "check"]()
