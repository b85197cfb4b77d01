#!/usr/bin/env bash
# Builds the portable release tarball: stripped, size-optimised binaries linked against a
# glibc floor of 2.17 (cargo-zigbuild), so they start on every OS ParallelCluster supports
# (Amazon Linux 2 has glibc 2.26, RHEL 8 2.28, Ubuntu 20.04 2.31). Not static glibc: a
# static glibc cannot load NSS modules, and LDAP/AD users (sssd) would become unknown.
#
#   scripts/release.sh              x86_64 release in dist/
#   ARCH=aarch64 scripts/release.sh Graviton release (needs `rustup target add
#                                   aarch64-unknown-linux-gnu`; zig cross-links it)
#
# Then checks it: every binary starts (`--version`, native arch only) and needs no glibc
# symbol newer than 2.17. Prints the sizes the README quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${ARCH:-$(uname -m)}
floor=2.17
triple="$arch-unknown-linux-gnu"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name="cost-tags-$version-$arch"
# Its own target directory: a release build does not hold the lock of the dev build.
tdir=${CARGO_TARGET_DIR:-target/release-zig}
export CARGO_TARGET_DIR=$tdir

python3 -c 'import ziglang' 2>/dev/null || python3 -m pip install -q ziglang
command -v cargo-zigbuild >/dev/null 2>&1 || cargo install -q --locked cargo-zigbuild
rustup target list --installed 2>/dev/null | grep -qx "$triple" || rustup target add "$triple"

cargo zigbuild -j2 -q --release --target "$triple.$floor" --bins
# All four: cost-tags runs the install (scripts/multi-runner/cost-tags.sh hands over to it).
bins=(project-check cost-prolog cost-epilog cost-tags)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/bin" "$stage/$name/scripts" dist
for b in "${bins[@]}"; do install -m 755 "$tdir/$triple/release/$b" "$stage/$name/bin/$b"; done
cp -r scripts/slurm scripts/multi-runner scripts/iam "$stage/$name/scripts/"
cp -r README.md docs "$stage/$name/"
tar -C "$stage" --owner=0 --group=0 -czf "dist/$name.tar.gz" "$name"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")

echo "== release dist/$name.tar.gz ($(du -k "dist/$name.tar.gz" | cut -f1) KiB)"
status=0
for b in "${bins[@]}"; do
    f="$stage/$name/bin/$b"
    need=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    if [ "$arch" = "$(uname -m)" ]; then
        "$f" --version >/dev/null || { echo "FAIL: $b does not start"; status=1; }
    fi
    if [ "$(printf '%s\n%s\n' "$need" "$floor" | sort -V | tail -1)" != "$floor" ]; then
        echo "FAIL: $b needs GLIBC_$need, above the floor $floor"; status=1
    fi
    printf '  %-14s %6s KiB  highest glibc symbol GLIBC_%s\n' "$b" "$(du -k "$f" | cut -f1)" "$need"
done
cat "dist/$name.tar.gz.sha256"
exit $status
