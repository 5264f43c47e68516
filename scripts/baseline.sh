#!/usr/bin/env bash
# Builds the upgrade baseline (the release ops/upgrade-baseline names: a tag and its
# commit) into <target>/baseline/, for the test that starts the previous release on this
# release's schema (tests/e2e/upgrade.rs). It is built in the same target directory, so
# the dependencies it shares with this release are not built again. Its own crates do not
# overwrite this release's because their version differs (the workspace version moves on
# after each release tag: cargo tells path crates apart by name and version, not by
# folder). The binaries this release put in <target>/debug/ are linked again afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r tag commit < ops/upgrade-baseline
this="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
if [ "v$this" = "$tag" ]; then
  echo "baseline: the workspace version ($this) must move on from the baseline $tag" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-$PWD/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
# A fixed folder, so that a second run finds the baseline's crates built.
tree="$target/baseline-src"
git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
git worktree prune
git worktree add --detach -q "$tree" "$commit"
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true; git worktree prune' EXIT
echo "baseline: building $tag ($commit)"
(cd "$tree" && CARGO_TARGET_DIR="$target" cargo build --locked --bin cmo-api --bin cmo-worker)
mkdir -p "$target/baseline"
cp "$target/debug/cmo-api" "$target/debug/cmo-worker" "$target/baseline/"
echo "$tag $commit" > "$target/baseline/RELEASE"
# This release's binaries again in <target>/debug/.
cargo build --workspace --bins
echo "baseline: $tag in $target/baseline"
