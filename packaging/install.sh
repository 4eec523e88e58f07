#!/bin/sh
# mosaic installer: downloads the release archive for this machine, checks
# its sha256 against the release's SHA256SUMS (and the minisign signature of
# SHA256SUMS when `minisign` is installed), installs the binary into
# ~/.local/bin and runs `mosaic install`.
#
#   curl -fsSL https://HOST/OWNER/REPO/releases/download/vX.Y.Z/install.sh | sh
#
# Environment:
#   MOSAIC_RELEASE_URL   the repository's web URL, https://HOST/OWNER/REPO
#                        (Gitea or GitHub), default below
#   MOSAIC_VERSION       X.Y.Z to install (default: the newest release)
#   MOSAIC_TARGET        the target triple (default: from uname)
#   MOSAIC_INSTALL_DIR   where the binary goes (default: ~/.local/bin)
#   MOSAIC_NO_INSTALL=1  install the binary only; skip `mosaic install`
#
# POSIX sh; needs curl or wget, tar, gzip, and sha256sum or shasum.
set -eu

DEFAULT_RELEASE_URL="https://github.com/mosaic-fleet/mosaic"
# The release signing key (the same one embedded in the binary).
PUBKEY="RWS9MLadE0SpH6jC6VehpGXAgGZoz9l7Z5idA1Ed/eCVisUlpbN2m42v"

say() { printf 'mosaic-install: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

fetch() { # URL DEST
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 2 -o "$2" "$1" || return 1
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1" || return 1
    else
        die "neither curl nor wget is installed"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "neither sha256sum nor shasum is installed"
    fi
}

detect_target() {
    os=$(uname -s)
    arch=$(uname -m)
    [ "$os" = Linux ] || die "unsupported OS $os (mosaic ships Linux builds); set MOSAIC_TARGET to override"
    case "$arch" in
        x86_64|amd64) echo x86_64-unknown-linux-gnu ;;
        aarch64|arm64) echo aarch64-unknown-linux-gnu ;;
        *) die "unsupported CPU $arch; set MOSAIC_TARGET to override" ;;
    esac
}

repo_url=${MOSAIC_RELEASE_URL:-$DEFAULT_RELEASE_URL}
repo_url=${repo_url%/}
case "$repo_url" in
    github+*) repo_url=${repo_url#github+} ;;
    gitea+*) repo_url=${repo_url#gitea+} ;;
esac
scheme_host=$(printf '%s\n' "$repo_url" | sed -n 's#^\(https\{0,1\}://[^/]*\)/.*#\1#p')
owner_repo=$(printf '%s\n' "$repo_url" | sed -n 's#^https\{0,1\}://[^/]*/\([^/]*/[^/]*\)$#\1#p')
if [ -z "$scheme_host" ] || [ -z "$owner_repo" ]; then
    die "MOSAIC_RELEASE_URL=$repo_url is not https://HOST/OWNER/REPO"
fi
# Plain http only to this machine (a local mirror or a test server).
case "$scheme_host" in
    https://*|http://127.0.0.1|http://127.0.0.1:*|http://localhost|http://localhost:*) ;;
    *) die "MOSAIC_RELEASE_URL=$repo_url must use https (plain http only for 127.0.0.1 or localhost)" ;;
esac

target=${MOSAIC_TARGET:-$(detect_target)}
install_dir=${MOSAIC_INSTALL_DIR:-${HOME:?HOME is not set}/.local/bin}

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t mosaic-install)
trap 'rm -rf "$tmp"' EXIT INT TERM

version=${MOSAIC_VERSION:-}
version=${version#v}
if [ -z "$version" ]; then
    case "$scheme_host" in
        https://github.com) api="https://api.github.com/repos/$owner_repo/releases/latest" ;;
        *) api="$scheme_host/api/v1/repos/$owner_repo/releases?limit=1&pre-release=false&draft=false" ;;
    esac
    fetch "$api" "$tmp/latest.json" || die "cannot reach the release server at $api"
    version=$(tr ',' '\n' <"$tmp/latest.json" | sed -n 's/.*"tag_name" *: *"v\{0,1\}\([^"]*\)".*/\1/p' | head -n 1)
    [ -n "$version" ] || die "no release found at $api"
    printf '%s\n' "$version" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$' \
        || die "the newest release at $api is $version, not a stable X.Y.Z; set MOSAIC_VERSION to choose one"
fi

archive="mosaic-$version-$target.tar.gz"
base="$repo_url/releases/download/v$version"
say "downloading $archive (mosaic $version)"
fetch "$base/$archive" "$tmp/$archive" || die "cannot download $base/$archive"
fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS" || die "cannot download $base/SHA256SUMS"

if command -v minisign >/dev/null 2>&1; then
    # With minisign at hand a missing signature is a refusal, never a skip.
    fetch "$base/SHA256SUMS.minisig" "$tmp/SHA256SUMS.minisig" \
        || die "the release has no SHA256SUMS.minisig; nothing was installed"
    minisign -Vm "$tmp/SHA256SUMS" -P "$PUBKEY" -x "$tmp/SHA256SUMS.minisig" >/dev/null 2>&1 \
        || die "the signature of SHA256SUMS does not verify; nothing was installed"
    say "signature of SHA256SUMS verified"
else
    say "warning: minisign is not installed, so the signature of SHA256SUMS is not checked (the sha256 is); mosaic update checks signatures itself"
fi

want=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$tmp/SHA256SUMS" | head -n 1)
[ -n "$want" ] || die "SHA256SUMS does not list $archive; nothing was installed"
got=$(sha256_of "$tmp/$archive")
[ "$want" = "$got" ] || die "sha256 mismatch for $archive (expected $want, got $got); nothing was installed"
say "sha256 of $archive verified"

mkdir -p "$tmp/x"
tar -xzf "$tmp/$archive" -C "$tmp/x"
bin="$tmp/x/mosaic-$version-$target/mosaic"
[ -f "$bin" ] || die "$archive holds no mosaic-$version-$target/mosaic"

mkdir -p "$install_dir"
cp "$bin" "$install_dir/.mosaic.new.$$"
chmod 0755 "$install_dir/.mosaic.new.$$"
# The new binary must run here before it replaces anything.
ran=$("$install_dir/.mosaic.new.$$" --version 2>/dev/null) || ran=""
case "$ran" in
    *" $version") ;;
    *) rm -f "$install_dir/.mosaic.new.$$"; die "the downloaded mosaic does not run here (or is not $version); nothing was installed" ;;
esac
mv -f "$install_dir/.mosaic.new.$$" "$install_dir/mosaic"
say "installed $install_dir/mosaic"

case ":${PATH:-}:" in
    *":$install_dir:"*) ;;
    *) say "note: $install_dir is not on PATH; add it to your shell profile" ;;
esac

if [ "${MOSAIC_NO_INSTALL:-}" = 1 ]; then
    exit 0
fi
"$install_dir/mosaic" install
