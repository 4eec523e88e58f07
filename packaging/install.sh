#!/bin/sh
# mosaic installer: downloads the release archive for this machine, checks
# its sha256 against the release's SHA256SUMS (and the minisign signature of
# SHA256SUMS when `minisign` is installed), installs the binary, puts its
# directory on PATH and runs `mosaic install`.
#
#   curl --proto '=https' --tlsv1.2 -sSf https://HOST/OWNER/REPO/releases/latest/download/install.sh | sh
#   curl … | sh -s -- -y --no-modify-path         # options after `sh -s --`
#
# Run `sh install.sh --help` for the options. Environment:
#   MOSAIC_RELEASE_URL   the repository's web URL, https://HOST/OWNER/REPO
#                        (Gitea or GitHub), default below
#   MOSAIC_VERSION       X.Y.Z to install, as --version (default: the newest)
#   MOSAIC_TARGET        the target triple (default: from uname)
#   MOSAIC_INSTALL_DIR   as --bin-dir
#   XDG_BIN_HOME         the binary directory when neither is given
#   MOSAIC_NO_INSTALL=1  install the binary only; skip `mosaic install`
#
# POSIX sh; needs curl or wget, tar, gzip, and sha256sum or shasum.
#
# Everything happens in functions, and the last line calls main: a download
# cut off part-way defines some functions and runs nothing. The trap below
# (cleared by main) turns such a cut into a failure that says so.
set -u
trap 'printf "mosaic-install: error: this script is incomplete (the download was cut off); nothing was installed\n" >&2; exit 1' EXIT

DEFAULT_RELEASE_URL="https://github.com/mosaic-fleet/mosaic"
# The release signing key (the same one embedded in the binary). Only
# --pubkey FILE replaces it, for a mirror that re-signs or for tests.
PUBKEY="RWS9MLadE0SpH6jC6VehpGXAgGZoz9l7Z5idA1Ed/eCVisUlpbN2m42v"
# The suffix that marks the PATH line this script adds to a shell profile
# (--uninstall removes exactly such lines).
PATH_MARK="# added by mosaic install.sh"

usage() {
    cat <<'EOF'
mosaic installer

Usage: install.sh [OPTIONS]

Downloads the mosaic release for this machine, verifies it (sha256 always;
the minisign signature when `minisign` is installed), installs the binary,
adds its directory to PATH in your shell profile and runs `mosaic install`.

Options:
  -y, --yes             do not ask for confirmation
  -q, --quiet           print errors only
      --version X.Y.Z   install this release (default: the newest stable one)
      --bin-dir DIR     install the binary into DIR (default:
                        $XDG_BIN_HOME, else ~/.local/bin)
      --no-modify-path  do not edit shell profiles; print the line to add
      --pubkey FILE     verify the signature with this minisign public key
                        file instead of the release key built into this
                        script (for mirrors that re-sign, and for tests)
      --uninstall       remove what an earlier run installed (the binary and
                        the PATH lines, as its receipt records them)
  -h, --help            print this help and install nothing

The receipt is ${XDG_STATE_HOME:-~/.local/state}/mosaic/install-receipt.
Environment: MOSAIC_RELEASE_URL, MOSAIC_VERSION, MOSAIC_TARGET,
MOSAIC_INSTALL_DIR, XDG_BIN_HOME, MOSAIC_NO_INSTALL=1 (see the script's
header).
EOF
}

say() {
    [ "$QUIET" = 1 ] || printf 'mosaic-install: %s\n' "$*" >&2
}

warn() {
    printf 'mosaic-install: warning: %s\n' "$*" >&2
}

err() {
    printf 'mosaic-install: error: %s\n' "$*" >&2
}

need_cmd() {
    command -v "$1" >/dev/null 2>&1 || {
        err "$1 is needed and is not installed"
        return 1
    }
}

# fetch URL DEST: https with TLS 1.2 or later only (plain http only to this
# machine, which parse_release_url already enforced).
fetch() {
    case "$1" in
        https://*) secure=1 ;;
        *) secure=0 ;;
    esac
    if command -v curl >/dev/null 2>&1; then
        if [ "$secure" = 1 ]; then
            curl --proto '=https' --tlsv1.2 -fsSL --retry 2 -o "$2" "$1"
        else
            curl --proto '=http' -fsSL --retry 2 -o "$2" "$1"
        fi
    elif command -v wget >/dev/null 2>&1; then
        if [ "$secure" = 1 ]; then
            wget --https-only --secure-protocol=TLSv1_2 -q -O "$2" "$1"
        else
            wget -q -O "$2" "$1"
        fi
    else
        err "neither curl nor wget is installed"
        return 1
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        err "neither sha256sum nor shasum is installed"
        return 1
    fi
}

detect_target() {
    os=$(uname -s)
    arch=$(uname -m)
    if [ "$os" != Linux ]; then
        err "unsupported OS $os (mosaic ships Linux builds); set MOSAIC_TARGET to override"
        return 1
    fi
    case "$arch" in
        x86_64 | amd64) echo x86_64-unknown-linux-gnu ;;
        aarch64 | arm64) echo aarch64-unknown-linux-gnu ;;
        *)
            err "unsupported CPU $arch; set MOSAIC_TARGET to override"
            return 1
            ;;
    esac
}

# Sets REPO_URL, SCHEME_HOST, OWNER_REPO from MOSAIC_RELEASE_URL.
parse_release_url() {
    REPO_URL=${MOSAIC_RELEASE_URL:-$DEFAULT_RELEASE_URL}
    REPO_URL=${REPO_URL%/}
    case "$REPO_URL" in
        github+*) REPO_URL=${REPO_URL#github+} ;;
        gitea+*) REPO_URL=${REPO_URL#gitea+} ;;
    esac
    SCHEME_HOST=$(printf '%s\n' "$REPO_URL" | sed -n 's#^\(https\{0,1\}://[^/]*\)/.*#\1#p')
    OWNER_REPO=$(printf '%s\n' "$REPO_URL" | sed -n 's#^https\{0,1\}://[^/]*/\([^/]*/[^/]*\)$#\1#p')
    if [ -z "$SCHEME_HOST" ] || [ -z "$OWNER_REPO" ]; then
        err "MOSAIC_RELEASE_URL=$REPO_URL is not https://HOST/OWNER/REPO"
        return 1
    fi
    # Plain http only to this machine (a local mirror or a test server).
    case "$SCHEME_HOST" in
        https://* | http://127.0.0.1 | http://127.0.0.1:* | http://localhost | http://localhost:*) ;;
        *)
            err "MOSAIC_RELEASE_URL=$REPO_URL must use https (plain http only for 127.0.0.1 or localhost)"
            return 1
            ;;
    esac
}

is_version() {
    printf '%s\n' "$1" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$'
}

# The newest stable release's version, from the releases API.
latest_version() {
    case "$SCHEME_HOST" in
        https://github.com) api="https://api.github.com/repos/$OWNER_REPO/releases/latest" ;;
        *) api="$SCHEME_HOST/api/v1/repos/$OWNER_REPO/releases?limit=1&pre-release=false&draft=false" ;;
    esac
    fetch "$api" "$TMP/latest.json" || {
        err "cannot reach the release server at $api"
        return 1
    }
    v=$(tr ',' '\n' <"$TMP/latest.json" | sed -n 's/.*"tag_name" *: *"v\{0,1\}\([^"]*\)".*/\1/p' | head -n 1)
    if [ -z "$v" ]; then
        err "no release found at $api"
        return 1
    fi
    if ! is_version "$v"; then
        err "the newest release at $api is $v, not a stable X.Y.Z; pass --version to choose one"
        return 1
    fi
    echo "$v"
}

# confirm QUESTION: yes with -y or without a terminal; else asks on the
# terminal (stdin may be the script itself, as in `curl … | sh`).
confirm() {
    [ "$YES" = 1 ] && return 0
    if ! { true </dev/tty; } 2>/dev/null; then
        return 0
    fi
    printf '%s [Y/n] ' "$1" >/dev/tty
    answer=
    read -r answer </dev/tty || answer=n
    case "$answer" in
        "" | y | Y | yes | Yes | YES) return 0 ;;
        *) return 1 ;;
    esac
}

receipt_path() {
    printf '%s/mosaic/install-receipt\n' "${XDG_STATE_HOME:-$HOME/.local/state}"
}

# The shell profiles to put the PATH line in: ~/.profile always (created if
# missing: sh, dash, bash login shells read it), ~/.bashrc and ~/.zshrc
# when they exist (interactive bash and zsh do not read ~/.profile).
profiles() {
    echo "$HOME/.profile"
    for f in "$HOME/.bashrc" "$HOME/.zshrc"; do
        [ -f "$f" ] && echo "$f"
    done
    return 0
}

# add_path_line LINE: appends LINE to each profile lacking it (a newline
# first if the file does not end with one); prints `profile=FILE` for each
# profile that holds it afterwards and `created=FILE` for each it created.
add_path_line() {
    profiles >"$TMP/profiles" || return 1
    while IFS= read -r f; do
        if [ -f "$f" ] && grep -qxF -e "$1" "$f"; then
            printf 'profile=%s\n' "$f"
            continue
        fi
        if [ ! -e "$f" ]; then
            printf 'created=%s\n' "$f"
        elif [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then
            printf '\n' >>"$f"
        fi
        printf '%s\n' "$1" >>"$f" || {
            err "cannot write $f (see --no-modify-path)"
            return 1
        }
        printf 'profile=%s\n' "$f"
    done <"$TMP/profiles"
}

# missing_dirs DIR: DIR and each ancestor that does not exist yet, deepest
# first, as `dir=PATH` lines (what `mkdir -p DIR` is about to create).
missing_dirs() {
    d=$1
    while [ ! -e "$d" ] && [ "$d" != / ] && [ "$d" != . ]; do
        printf 'dir=%s\n' "$d"
        d=$(dirname "$d")
    done
}

# write_receipt: the receipt of this install, keeping what an earlier
# install recorded (so --uninstall removes that too). Lines: version=,
# target=, url= (this install); binary=, profile=, path_line=, created=
# (profiles this script created), dir= (directories it created).
write_receipt() {
    receipt=$(receipt_path)
    rdir=$(dirname "$receipt")
    RECORD="$RECORD
$(missing_dirs "$rdir")"
    mkdir -p "$rdir" || return 1
    {
        echo "# mosaic install.sh receipt: what install.sh installed; install.sh --uninstall removes it"
        echo "version=$VERSION"
        echo "target=$TARGET"
        echo "url=$ARCHIVE_URL"
        printf '%s\n' "$RECORD" | sed '/^$/d'
        if [ -f "$receipt" ]; then
            grep -E '^(binary|profile|path_line|created|dir)=' "$receipt"
        fi
    } | awk '!seen[$0]++' >"$receipt.new" && mv -f "$receipt.new" "$receipt"
}

install_mosaic() {
    need_cmd tar || return 1
    need_cmd gzip || return 1
    need_cmd mktemp || return 1
    parse_release_url || return 1
    TARGET=${MOSAIC_TARGET:-}
    if [ -z "$TARGET" ]; then
        TARGET=$(detect_target) || return 1
    fi
    if [ -z "$BIN_DIR" ]; then
        BIN_DIR=${MOSAIC_INSTALL_DIR:-${XDG_BIN_HOME:-$HOME/.local/bin}}
    fi
    case "$BIN_DIR" in
        /*) ;;
        *)
            err "the binary directory $BIN_DIR is not an absolute path"
            return 1
            ;;
    esac
    BIN_DIR=${BIN_DIR%/}
    [ -n "$BIN_DIR" ] || BIN_DIR=/

    TMP=$(mktemp -d 2>/dev/null || mktemp -d -t mosaic-install) || {
        err "cannot create a temporary directory"
        return 1
    }
    trap 'rm -rf "$TMP"' EXIT
    trap 'rm -rf "$TMP"; exit 1' INT TERM

    if [ -z "$VERSION" ]; then
        VERSION=$(latest_version) || return 1
    fi
    archive="mosaic-$VERSION-$TARGET.tar.gz"
    base="$REPO_URL/releases/download/v$VERSION"
    ARCHIVE_URL="$base/$archive"

    confirm "Install mosaic $VERSION ($TARGET) into $BIN_DIR?" || {
        err "cancelled; nothing was installed"
        return 1
    }

    say "downloading $archive (mosaic $VERSION)"
    fetch "$ARCHIVE_URL" "$TMP/$archive" || {
        err "cannot download $ARCHIVE_URL"
        return 1
    }
    fetch "$base/SHA256SUMS" "$TMP/SHA256SUMS" || {
        err "cannot download $base/SHA256SUMS"
        return 1
    }

    if command -v minisign >/dev/null 2>&1; then
        # With minisign at hand a missing signature is a refusal, never a skip.
        fetch "$base/SHA256SUMS.minisig" "$TMP/SHA256SUMS.minisig" || {
            err "the release has no SHA256SUMS.minisig; nothing was installed"
            return 1
        }
        if [ -n "$PUBKEY_FILE" ]; then
            set -- -p "$PUBKEY_FILE"
        else
            set -- -P "$PUBKEY"
        fi
        minisign -Vm "$TMP/SHA256SUMS" "$@" -x "$TMP/SHA256SUMS.minisig" >/dev/null 2>&1 || {
            err "the signature of SHA256SUMS does not verify; nothing was installed"
            return 1
        }
        say "signature of SHA256SUMS verified"
    else
        warn "minisign is not installed, so the signature of SHA256SUMS is not checked (the sha256 is); mosaic update checks signatures itself"
    fi

    want=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$TMP/SHA256SUMS" | head -n 1)
    if [ -z "$want" ]; then
        err "SHA256SUMS does not list $archive; nothing was installed"
        return 1
    fi
    got=$(sha256_of "$TMP/$archive") || return 1
    if [ "$want" != "$got" ]; then
        err "sha256 mismatch for $archive (expected $want, got $got); nothing was installed"
        return 1
    fi
    say "sha256 of $archive verified"

    if ! { mkdir -p "$TMP/x" && tar -xzf "$TMP/$archive" -C "$TMP/x"; }; then
        err "cannot unpack $archive; nothing was installed"
        return 1
    fi
    bin="$TMP/x/mosaic-$VERSION-$TARGET/mosaic"
    if [ ! -f "$bin" ] || [ -L "$bin" ]; then
        err "$archive holds no regular file mosaic-$VERSION-$TARGET/mosaic; nothing was installed"
        return 1
    fi

    RECORD=$(missing_dirs "$BIN_DIR")
    mkdir -p "$BIN_DIR" || {
        err "cannot create $BIN_DIR; nothing was installed"
        return 1
    }
    new="$BIN_DIR/.mosaic.new.$$"
    if ! { cp "$bin" "$new" && chmod 0755 "$new"; }; then
        rm -f "$new"
        err "cannot write into $BIN_DIR; nothing was installed"
        return 1
    fi
    # The new binary must run here before it replaces anything.
    ran=$("$new" --version 2>/dev/null) || ran=""
    case "$ran" in
        *" $VERSION") ;;
        *)
            rm -f "$new"
            err "the downloaded mosaic does not run here (or is not $VERSION); nothing was installed"
            return 1
            ;;
    esac
    mv -f "$new" "$BIN_DIR/mosaic" || {
        rm -f "$new"
        err "cannot replace $BIN_DIR/mosaic; nothing was installed"
        return 1
    }
    say "installed $BIN_DIR/mosaic"
    RECORD="$RECORD
binary=$BIN_DIR/mosaic"

    line="export PATH=\"$BIN_DIR:\$PATH\""
    case ":${PATH:-}:" in
        *":$BIN_DIR:"*) ;;
        *)
            case "$BIN_DIR" in
                *[\"\\\$\`]*)
                    warn "$BIN_DIR has characters a profile line cannot quote; add it to PATH yourself"
                    ;;
                *)
                    if [ "$MODIFY_PATH" = 1 ]; then
                        edited=$(add_path_line "$line $PATH_MARK") || return 1
                        RECORD="$RECORD
$edited
path_line=$line $PATH_MARK"
                        say "added $BIN_DIR to PATH in $(printf '%s\n' "$edited" | sed -n 's/^profile=//p' | paste -sd ' ' -); to use it in this shell now, run:"
                        [ "$QUIET" = 1 ] || printf '%s\n' "$line" >&2
                    else
                        warn "$BIN_DIR is not on PATH; add this line to your shell profile (~/.profile, ~/.bashrc or ~/.zshrc):"
                        printf '%s\n' "$line" >&2
                    fi
                    ;;
            esac
            ;;
    esac

    write_receipt || {
        err "cannot write the receipt $(receipt_path); mosaic is installed, but --uninstall will not find it"
        return 1
    }

    if [ "${MOSAIC_NO_INSTALL:-}" = 1 ]; then
        return 0
    fi
    if [ "$QUIET" = 1 ]; then
        "$BIN_DIR/mosaic" --quiet install
    else
        "$BIN_DIR/mosaic" install
    fi || {
        err "mosaic install failed (the binary is installed: $BIN_DIR/mosaic)"
        return 1
    }
}

# uninstall: removes the binaries and PATH lines the receipt lists, then the
# receipt. The framework home and mosaic's state are the operator's: kept.
uninstall_mosaic() {
    receipt=$(receipt_path)
    if [ ! -f "$receipt" ]; then
        err "no receipt at $receipt: install.sh did not install mosaic for this user; nothing was removed"
        return 1
    fi
    confirm "Remove what install.sh installed (listed in $receipt)?" || {
        err "cancelled; nothing was removed"
        return 1
    }
    while IFS= read -r entry; do
        case "$entry" in
            binary=*)
                b=${entry#binary=}
                if [ -f "$b" ] || [ -L "$b" ]; then
                    rm -f "$b" || {
                        err "cannot remove $b"
                        return 1
                    }
                    say "removed $b"
                fi
                ;;
        esac
    done <"$receipt"
    while IFS= read -r entry; do
        case "$entry" in
            profile=*)
                f=${entry#profile=}
                [ -f "$f" ] || continue
                while IFS= read -r l; do
                    case "$l" in
                        path_line=*) ;;
                        *) continue ;;
                    esac
                    l=${l#path_line=}
                    grep -qxF -e "$l" "$f" || continue
                    grep -vxF -e "$l" "$f" >"$f.mosaic-tmp"
                    if ! { cat "$f.mosaic-tmp" >"$f" && rm -f "$f.mosaic-tmp"; }; then
                        err "cannot edit $f"
                        return 1
                    fi
                    say "removed the PATH line from $f"
                done <"$receipt"
                ;;
        esac
    done <"$receipt"
    # Profiles this script created and left empty, then the directories it
    # created (deepest first), if nothing else was put in them.
    while IFS= read -r entry; do
        case "$entry" in
            created=*)
                f=${entry#created=}
                if [ -f "$f" ] && [ ! -s "$f" ]; then
                    rm -f "$f" && say "removed $f (install.sh had created it)"
                fi
                ;;
        esac
    done <"$receipt"
    # Reverse order puts every directory before its parent.
    dirs=$(sed -n 's/^dir=//p' "$receipt" | sort -r)
    rm -f "$receipt" || {
        err "cannot remove $receipt"
        return 1
    }
    printf '%s\n' "$dirs" | while IFS= read -r d; do
        [ -n "$d" ] && rmdir "$d" 2>/dev/null
    done
    say "uninstalled; your framework home (${XDG_CONFIG_HOME:-~/.config}/mosaic) and mosaic's state (${XDG_STATE_HOME:-~/.local/state}/mosaic) are kept"
}

main() {
    trap - EXIT
    YES=0
    QUIET=0
    MODIFY_PATH=1
    UNINSTALL=0
    VERSION=${MOSAIC_VERSION:-}
    BIN_DIR=
    PUBKEY_FILE=
    while [ $# -gt 0 ]; do
        case "$1" in
            -h | --help)
                usage
                return 0
                ;;
            -y | --yes) YES=1 ;;
            -q | --quiet) QUIET=1 ;;
            --no-modify-path) MODIFY_PATH=0 ;;
            --uninstall) UNINSTALL=1 ;;
            --version | --bin-dir | --pubkey)
                if [ $# -lt 2 ] || [ -z "$2" ]; then
                    err "$1 needs a value (see --help)"
                    return 1
                fi
                case "$1" in
                    --version) VERSION=$2 ;;
                    --bin-dir) BIN_DIR=$2 ;;
                    --pubkey) PUBKEY_FILE=$2 ;;
                esac
                shift
                ;;
            --version=* | --bin-dir=* | --pubkey=*)
                v=${1#*=}
                if [ -z "$v" ]; then
                    err "${1%%=*} needs a value (see --help)"
                    return 1
                fi
                case "$1" in
                    --version=*) VERSION=$v ;;
                    --bin-dir=*) BIN_DIR=$v ;;
                    --pubkey=*) PUBKEY_FILE=$v ;;
                esac
                ;;
            *)
                err "unknown option $1 (see --help)"
                return 1
                ;;
        esac
        shift
    done
    if [ -z "${HOME:-}" ]; then
        err "HOME is not set"
        return 1
    fi
    if [ "$UNINSTALL" = 1 ]; then
        uninstall_mosaic
        return
    fi
    VERSION=${VERSION#v}
    if [ -n "$VERSION" ] && ! is_version "$VERSION"; then
        err "--version $VERSION is not X.Y.Z"
        return 1
    fi
    if [ -n "$PUBKEY_FILE" ]; then
        if [ ! -f "$PUBKEY_FILE" ] || [ ! -r "$PUBKEY_FILE" ]; then
            err "--pubkey $PUBKEY_FILE: no such readable file"
            return 1
        fi
        if ! tail -n 1 "$PUBKEY_FILE" | grep -Eq '^RW[A-Za-z0-9+/]{54}=*$'; then
            err "--pubkey $PUBKEY_FILE is not a minisign public key file"
            return 1
        fi
        command -v minisign >/dev/null 2>&1 ||
            warn "--pubkey is given but minisign is not installed: the signature is not checked (the sha256 is)"
    fi
    install_mosaic
}

main "$@" || exit 1
