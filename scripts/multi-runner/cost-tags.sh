#!/bin/bash
# cost-tags.sh: the AWS ParallelCluster 3 custom action that installs cost-tags.
#
# Run it on every node (CustomActions OnNodeConfigured, and OnNodeUpdated on the head node).
# It only brings the release onto the node and hands over to `cost-tags install`, which holds
# the installer (tested Rust, src/install/): what each role gets, the manifest, the Slurm
# settings, the periodic jobs. `cost-tags install --help` and the README's "Installing on a
# cluster" describe every option; they are passed on unchanged.
#
#   HeadNode      fetches --release (a directory, a .tar.gz, an https:// URL or an s3:// URI),
#                 checks the tarball against --sha256, unpacks it into a private staging
#                 directory, checks that its binaries run here, then runs its
#                 bin/cost-tags install with the same arguments.
#   ComputeFleet, run /opt/slurm/bin/cost-tags install (the head node installed it there and
#   LoginNode     shares it over NFS) once the binaries there are found to run here.
# The role is cfn_node_type in /etc/parallelcluster/cfnconfig, or --role head|compute|login.
#
# Usage: cost-tags.sh --release SRC [--sha256 HEX] [OPTIONS of cost-tags install]
#        cost-tags.sh --uninstall
#   --release SRC   the release (needed on the head node; a compute node ignores it)
#   --sha256 HEX    checks the downloaded or local tarball before anything else
#   --uninstall     remove what the install added, restore what it changed
#   -h, --help      this text
# Options also take the form --option=value.
#
# Multi-runner form. The older ParallelCluster "multi-runner" passes each script argument
# with one more leading '-' (`---release -s3://b/r.tar.gz`). When the FIRST argument starts
# with '---', the whole list is in that form and one '-' comes off every argument (an
# argument without one is an error); cost-tags install applies the same rule.
#
# Environment: COST_TAGS_ROOT, a prefix for every path (tests); TMPDIR, where the release is
# unpacked (must allow exec). Exit status: 0 installed or nothing to do, 1 failure.

set -o pipefail
umask 022
export LC_ALL=C
PROG=cost-tags.sh
BINS="project-check cost-prolog cost-epilog cost-tags"

log() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: WARNING: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: ERROR: %s\n' "$PROG" "$*" >&2
    exit 1
}
usage() { sed -n '2,/^set -o pipefail/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# The options this script acts on, from either argument form.
RELEASE="" SHA256="" ROLE="" UNINSTALL=0
scan_args() {
    local plain=() a
    if [[ ${1-} == ---* ]]; then
        for a; do
            [[ $a == -* ]] || die "multi-runner form (the first argument starts with '---'): argument '$a' lacks its leading '-'"
            plain+=("${a#-}")
        done
        set -- "${plain[@]}"
    fi
    while [ $# -gt 0 ]; do
        case $1 in
            --release=* | --sha256=* | --role=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
        esac
        case $1 in
            --release | --sha256 | --role)
                [ $# -ge 2 ] || die "$1 needs a value (see --help)"
                case $1 in --release) RELEASE=$2 ;; --sha256) SHA256=$2 ;; --role) ROLE=$2 ;; esac
                shift 2
                ;;
            --uninstall) UNINSTALL=1 && shift ;;
            -h | --help) usage && exit 0 ;;
            *) shift ;;
        esac
    done
    if [ -n "$SHA256" ]; then
        SHA256=$(printf '%s' "$SHA256" | tr 'A-F' 'a-f')
        [[ $SHA256 =~ ^[0-9a-f]{64}$ ]] || die "--sha256 must be 64 hexadecimal digits, got '$SHA256'"
    fi
}

# The node's role: --role, else cfn_node_type from cfnconfig.
node_role() {
    [ -z "$ROLE" ] || return 0
    local cfn="" c t
    for c in "$ROOT/etc/parallelcluster/cfnconfig" "$ROOT/opt/parallelcluster/cfnconfig"; do
        if [ -r "$c" ]; then cfn=$c && break; fi
    done
    [ -n "$cfn" ] || die "no $ROOT/etc/parallelcluster/cfnconfig: this is not an AWS ParallelCluster 3 node (or pass --role head|compute|login)"
    t=$(sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}cfn_node_type[[:space:]]*=[[:space:]]*//p' "$cfn" | tail -n 1 |
        sed -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/")
    case $t in
        HeadNode) ROLE='head' ;;
        ComputeFleet) ROLE='compute' ;;
        LoginNode) ROLE='login' ;;
        "") die "$cfn has no cfn_node_type" ;;
        *) die "unknown node role cfn_node_type=$t in $cfn (expected HeadNode, ComputeFleet or LoginNode)" ;;
    esac
}

# Each binary in directory $1 is there ("$2 <missing>$3" if not) and runs on this node.
check_binaries() {
    local dir=$1 b absent="" out
    for b in $BINS; do [ -f "$dir/$b" ] || absent="$absent $b"; done
    [ -z "$absent" ] || die "$2$absent$3"
    for b in $BINS; do
        out=$("$dir/$b" --version 2>&1 </dev/null) ||
            die "$dir/$b does not run on this node (wrong CPU architecture, too new a glibc, or TMPDIR mounted noexec?): $(printf '%s' "$out" | head -c 300)"
    done
    VERSION=$out
}

# Sets REL to the unpacked release directory of $RELEASE, checked and verified.
fetch_release() {
    local src=$RELEASE file="" found
    case $src in
        s3://*)
            command -v aws >/dev/null 2>&1 || die "the AWS CLI (aws) is needed to download $src"
            aws s3 cp --only-show-errors "$src" "$WORK/release.tar.gz" >&2 ||
                die "cannot download $src (aws s3 cp failed; does the head node's role allow s3:GetObject on it?)"
            file=$WORK/release.tar.gz
            ;;
        https://* | http://*)
            command -v curl >/dev/null 2>&1 || die "curl is needed to download $src"
            [[ $src == https://* || -n $SHA256 ]] || warn "downloading over plain http without --sha256"
            curl -fsSL --retry 3 --connect-timeout 10 --max-time 600 -o "$WORK/release.tar.gz" "$src" || die "cannot download $src"
            file=$WORK/release.tar.gz
            ;;
        *://*) die "--release: unsupported scheme in '$src' (use a path, https:// or s3://)" ;;
        *)
            if [ -d "$src" ]; then
                [ -z "$SHA256" ] || die "--sha256 checks a tarball, but the release $src is a directory"
                REL=$src
            elif [ -f "$src" ]; then file=$src; else die "--release $src: no such file or directory"; fi
            ;;
    esac
    if [ -n "$file" ]; then
        if [ -n "$SHA256" ]; then
            local got
            got=$(sha256sum "$file" | cut -d' ' -f1) || die "cannot read $file"
            [ "$got" = "$SHA256" ] || die "sha256 mismatch for the release $src: expected $SHA256, got $got. Nothing was changed."
            log "release checksum verified ($got)"
        elif [ "$file" != "$src" ]; then
            warn "no --sha256 given: the downloaded release is not verified"
        fi
        mkdir "$WORK/release" || die "cannot unpack in $WORK"
        tar -xf "$file" -C "$WORK/release" --no-same-owner 2>"$WORK/tar.err" ||
            die "cannot unpack the release $src (a .tar.gz is expected): $(head -c 300 "$WORK/tar.err")"
        REL=$WORK/release
        if [ ! -e "$REL/bin/cost-tags" ]; then
            found=("$REL"/*/bin/cost-tags)
            [ ${#found[@]} -eq 1 ] && [ -e "${found[0]}" ] && REL=${found[0]%/bin/cost-tags}
        fi
    fi
    chmod 755 "$REL"/bin/* 2>/dev/null
    check_binaries "$REL/bin" "the release $src lacks:" ""
    log "release $src: $VERSION"
}

ROOT=${COST_TAGS_ROOT:-}
while [ "${ROOT%/}" != "$ROOT" ]; do ROOT=${ROOT%/}; done
BIN_DIR=$ROOT/opt/slurm/bin
scan_args "$@"
node_role

if [ -n "$RELEASE" ] && { [ "$ROLE" = head ] || { [ "$UNINSTALL" = 1 ] && [ ! -x "$BIN_DIR/cost-tags" ]; }; }; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/cost-tags.XXXXXX") || die "cannot create a temporary directory"
    trap 'rm -rf "$WORK"' EXIT
    fetch_release
    # Not exec: the staging directory goes when the install is done.
    COST_TAGS_RELEASE_DIR=$REL "$REL/bin/cost-tags" install "$@"
    exit
fi
if [ "$ROLE" = head ] && [ "$UNINSTALL" = 0 ]; then
    die "--release is required on the head node (see --help)"
fi
if [ "$UNINSTALL" = 1 ] && [ ! -x "$BIN_DIR/cost-tags" ]; then
    [ "$ROLE" = head ] && [ ! -e "$ROOT/opt/slurm/etc/cost-tags/manifest" ] &&
        log "no manifest at $ROOT/opt/slurm/etc/cost-tags/manifest: nothing installed by cost-tags.sh here" && exit 0
    [ "$ROLE" = login ] && log "login node: nothing to uninstall" && exit 0
    die "no $BIN_DIR/cost-tags to uninstall with: pass --release (the same release), or uninstall this node before the head node"
fi
if [ "$UNINSTALL" = 0 ]; then
    check_binaries "$BIN_DIR" "not found in $BIN_DIR:" ". The head node installs them there (shared over NFS): run this script on the head node first, and check that $ROOT/opt/slurm is mounted here."
    log "binaries in $BIN_DIR run here ($VERSION)"
fi
exec "$BIN_DIR/cost-tags" install "$@"
