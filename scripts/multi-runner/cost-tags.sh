#!/bin/bash
# cost-tags.sh: the AWS ParallelCluster 3 custom action that installs cost-tags.
#
# Run it on every node (CustomActions / OnNodeConfigured, and OnNodeUpdated on the head
# node); it reads the node's role from /etc/parallelcluster/cfnconfig (cfn_node_type):
#
#   HeadNode      installs the release into /opt/slurm, which the head node shares with
#                 every other node over NFS:
#                   /opt/slurm/bin/{project-check,cost-prolog,cost-epilog[,cost-tags]}
#                   /opt/slurm/etc/scripts/prolog.d/90_cost-tags-prolog and
#                   /opt/slurm/etc/scripts/epilog.d/90_cost-tags-epilog (ParallelCluster
#                     3.6+); without prolog.d/epilog.d they go to
#                     /opt/slurm/etc/scripts/cost-tags/ with Prolog=/Epilog= lines (only
#                     when no Prolog=/Epilog= is set: an existing one is never replaced)
#                   job_submit.lua beside slurm.conf
#                   JobSubmitPlugins+=lua, PrologFlags+=Alloc, and with slurmdbd
#                     AccountingStoreFlags+=job_comment: a key that already exists in
#                     slurm.conf or a file it includes is extended where it is
#                     (PrologFlags=Contain becomes PrologFlags=Contain,Alloc); a key that
#                     exists nowhere goes into cost-tags_slurm.conf beside slurm.conf,
#                     included from slurm.conf by one `include` line
#                   cost-tags.toml and projects_list.conf, only where none exist
#                   with --budgets: the periodic `cost-tags budget refresh` (every 10
#                     minutes, up to 120 s of random delay, first 2 minutes after boot, as
#                     root): /etc/systemd/system/cost-tags-budget-refresh.{service,timer},
#                     or without systemd /etc/cron.d/cost-tags-budget
#                   when the release has bin/cost-tags, unless --no-prices: the daily
#                     `cost-tags prices refresh` (first 5 minutes after boot, then every
#                     1440 minutes, up to 30 minutes of random delay, as root), which keeps
#                     the price cache /var/spool/cost-tags/prices.json that `cost-tags
#                     report` reads: /etc/systemd/system/cost-tags-prices-refresh.{service,
#                     timer}, or without systemd /etc/cron.d/cost-tags-prices (@daily and
#                     @reboot)
#                   with --metrics DIR: `cost-tags metrics --output DIR/cost_tags.prom`
#                     every 5 minutes (first 3 minutes after boot, up to 30 s of random
#                     delay, as root), for node_exporter's textfile collector reading DIR:
#                     /etc/systemd/system/cost-tags-metrics.{service,timer}, or without
#                     systemd /etc/cron.d/cost-tags-metrics; the uninstall (or a run
#                     without --metrics, or with another DIR) also removes the file
#                 then runs `scontrol reconfigure`.
#   ComputeFleet  creates the state directory /var/spool/cost-tags, checks that the
#                 binaries in /opt/slurm/bin are there and run on this node, and, when
#                 /opt/slurm/bin/cost-tags is there (it is optional in a release), runs
#                 `cost-tags reconcile` 1 minute after boot and every 5 minutes (up to 60 s
#                 of random delay): /etc/systemd/system/cost-tags-reconcile.{service,timer}
#                 (enabled and started), or without systemd /etc/cron.d/cost-tags. These
#                 files start with the line '# cost-tags.sh: ...', which is how this
#                 node's --uninstall knows them (compute nodes keep no manifest).
#   LoginNode     only the check.
#
# Periodic jobs. systemd is used when `systemctl` exists and /run/systemd/system is a
# directory (the sd_booted() test); otherwise cron, when /etc/cron.d exists (cron files
# set SHELL=/bin/bash for the $RANDOM delay); otherwise the job is not scheduled (a
# warning for reconcile and the price refresh, an error with --budgets). The jobs read
# /opt/slurm/etc/cost-tags.env exactly as the Slurm hooks do (a shell fragment: `export
# NAME=value` lines work), with /opt/slurm/bin first on PATH; their messages go to syslog.
# A timer is (re)enabled with `systemctl enable --now` only when its units changed or it
# is not enabled and active; --uninstall disables it before removing the units.
#
# Why the price refresh is on by default and budgets are not: --budgets changes what users
# may do (jobs of a spent project are refused), so it must be asked for. The price refresh
# changes nothing for jobs or Slurm: it only reads public prices (free, read-only calls,
# once a day per cluster) into a cache, and it is what lets `cost-tags report` price a
# ParallelCluster head node with no [pricing.instances] written by hand. Like reconcile on
# compute nodes it follows bin/cost-tags in the release. Where it cannot work (no route
# to the Price List, a role without the head policy) it fails once a day in syslog and
# keeps the old cache; --no-prices is for such sites.
#
# Every step is idempotent: a second run changes nothing. What the head node added or
# changed is recorded in /opt/slurm/etc/cost-tags/manifest (with backups of the edited
# files), and --uninstall removes exactly that and restores the edited lines. Files an
# administrator changed after the install (typically projects_list.conf) are kept, and the
# uninstall says so.
#
# Usage: cost-tags.sh [OPTIONS]
#   --release SRC          the release: a directory or a .tar.gz holding bin/project-check,
#                          bin/cost-prolog, bin/cost-epilog (bin/cost-tags optional) and
#                          scripts/slurm/{job_submit.lua,90_cost-tags-prolog,
#                          90_cost-tags-epilog} (at its top or in one top-level
#                          directory); an https:// URL (curl) or an s3:// URI
#                          (aws s3 cp). Needed on the head node only.
#   --sha256 HEX           checks the downloaded or local tarball before anything else
#   --project-source SRC   comment (default) | account | wckey: the job field naming
#                          the project
#   --extra-tags LIST      comma list of partition,account,cluster: also tag instances
#                          with aws-parallelcluster-partition/-account/-cluster
#   --strict               strict = true (a tagging failure exits 1: drains the node)
#   --budgets              a [budget] table with enabled = true (refuse jobs of projects
#                          whose AWS Budget is spent), and the periodic `cost-tags budget
#                          refresh` on the head node (needs bin/cost-tags in the release);
#                          without it, budget units an earlier run installed are removed
#                          (these four go into cost-tags.toml when the script writes it:
#                          when none exists, or the one it wrote is still unedited)
#   --no-prices            do not schedule the daily `cost-tags prices refresh` on the head
#                          node (removes the units an earlier run installed); for a
#                          head node that cannot reach the Price List or whose role lacks
#                          the head policy's pricing:GetProducts and ec2:Describe* rights
#   --metrics DIR          on the head node, write spend metrics (OpenMetrics) to
#                          DIR/cost_tags.prom every 5 minutes (`cost-tags metrics`; needs
#                          bin/cost-tags): DIR is node_exporter's --collector.textfile.directory
#                          and must exist (an absolute path of letters, digits, . _ - /)
#   --slurm-conf-dir DIR   where slurm.conf is (default /opt/slurm/etc)
#   --reconfigure          run `scontrol reconfigure` even when COST_TAGS_ROOT is set
#   --no-reconfigure       never run it
#   --uninstall            remove what the install added, restore what it changed
#   -h, --help             this text
# Options also take the form --option=value.
#
# Multi-runner form. The older ParallelCluster "multi-runner" passes each script argument
# with one more leading '-', so `--release s3://b/r.tar.gz` is written
# `---release -s3://b/r.tar.gz`. Rule: when the FIRST argument starts with '---', the whole
# list is in that form, and exactly one leading '-' is removed from every argument (an
# argument without a leading '-' is then an error). No option of this script starts with
# '---' otherwise, so the two forms cannot be confused; a runner that already strips the
# dash passes the plain form, which works as well.
#
# Environment:
#   COST_TAGS_ROOT   a prefix for every path this script reads or writes (default: none,
#                    i.e. /). Used by the tests to run it against a fake node tree; files
#                    it installs then refer to paths under the prefix too. When set,
#                    `scontrol reconfigure` is skipped unless --reconfigure is given,
#                    systemctl is never run, and systemd counts as present when
#                    $COST_TAGS_ROOT/run/systemd/system is a directory (else cron when
#                    $COST_TAGS_ROOT/etc/cron.d is one).
#   TMPDIR           where the release is unpacked and checked (must allow exec).
#
# Exit status: 0 when installed (or nothing to do), 1 on failure, with a message saying
# what and where. Checks that can fail (release, checksum, role, conflicts, writable
# paths) run before anything is changed.

set -o pipefail
umask 022
export LC_ALL=C

PROG=cost-tags.sh
RELEASE_BINS="project-check cost-prolog cost-epilog"
OPTIONAL_BINS="cost-tags"
HOOKS="90_cost-tags-prolog 90_cost-tags-epilog"
OUR_CONF_NAME=cost-tags_slurm.conf
JOB_MARK="# cost-tags.sh: "
INCLUDE_LINE="include $OUR_CONF_NAME"

log() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: WARNING: %s\n' "$PROG" "$*" >&2; }
APPLYING=0
SAVING=0
die() {
    printf '%s: ERROR: %s\n' "$PROG" "$*" >&2
    if [ "$APPLYING" = 1 ] && [ "$SAVING" = 0 ]; then
        SAVING=1
        mf_save && printf '%s: the changes made so far are recorded in %s (--uninstall removes them)\n' "$PROG" "$MANIFEST" >&2
    fi
    exit 1
}

usage() {
    sed -n '2,/^set -o pipefail/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------------------
# Arguments

RELEASE=""
SHA256=""
PROJECT_SOURCE=""
EXTRA_TAGS=""
STRICT=0
BUDGETS=0
PRICES=1
METRICS_DIR=""
UNINSTALL=0
RECONF=auto
CONF_DIR_OPT=""

parse_args() {
    local args=() a
    if [ $# -gt 0 ] && [ "${1#---}" != "$1" ]; then
        for a in "$@"; do
            [ "${a#-}" != "$a" ] || die "multi-runner form (the first argument starts with '---'): argument '$a' lacks its leading '-'"
            args+=("${a#-}")
        done
        set -- "${args[@]}"
    fi
    local opt val
    while [ $# -gt 0 ]; do
        opt=$1
        val=""
        case $opt in
            --*=*)
                val=${opt#*=}
                opt=${opt%%=*}
                set -- "$opt" "$val" "${@:2}"
                ;;
        esac
        case $opt in
            --release | --sha256 | --project-source | --extra-tags | --slurm-conf-dir | --metrics)
                [ $# -ge 2 ] || die "$opt needs a value (see --help)"
                val=$2
                shift 2
                ;;
            *) shift ;;
        esac
        case $opt in
            --release) RELEASE=$val ;;
            --sha256) SHA256=$val ;;
            --project-source) PROJECT_SOURCE=$val ;;
            --extra-tags) EXTRA_TAGS=$val ;;
            --slurm-conf-dir) CONF_DIR_OPT=$val ;;
            --metrics) METRICS_DIR=$val ;;
            --strict) STRICT=1 ;;
            --budgets) BUDGETS=1 ;;
            --no-prices) PRICES=0 ;;
            --uninstall) UNINSTALL=1 ;;
            --reconfigure) RECONF=yes ;;
            --no-reconfigure) RECONF=no ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown argument '$opt' (see --help)" ;;
        esac
    done

    if [ -n "$SHA256" ]; then
        SHA256=$(printf '%s' "$SHA256" | tr 'A-F' 'a-f')
        case $SHA256 in
            *[!0-9a-f]*) die "--sha256 must be 64 hexadecimal digits, got '$SHA256'" ;;
        esac
        [ ${#SHA256} -eq 64 ] || die "--sha256 must be 64 hexadecimal digits, got '$SHA256'"
    fi
    if [ -n "$METRICS_DIR" ]; then
        # It goes into a unit file and a cron line unquoted: no room for interpretation.
        case $METRICS_DIR in
            /*) ;;
            *) die "--metrics needs an absolute directory, got '$METRICS_DIR'" ;;
        esac
        case $METRICS_DIR in
            *[!A-Za-z0-9._/-]*) die "--metrics: only letters, digits, '.', '_', '-' and '/' in the directory, got '$METRICS_DIR'" ;;
        esac
        while [ "${METRICS_DIR%/}" != "$METRICS_DIR" ] && [ "$METRICS_DIR" != / ]; do METRICS_DIR=${METRICS_DIR%/}; done
    fi
    case ${PROJECT_SOURCE:-comment} in
        comment | account | wckey) ;;
        *) die "--project-source must be comment, account or wckey, got '$PROJECT_SOURCE'" ;;
    esac
    local t
    TAG_PARTITION=""
    TAG_ACCOUNT=""
    TAG_CLUSTER=""
    for t in $(printf '%s' "$EXTRA_TAGS" | tr ',' ' '); do
        case $t in
            partition) TAG_PARTITION=aws-parallelcluster-partition ;;
            account) TAG_ACCOUNT=aws-parallelcluster-account ;;
            cluster) TAG_CLUSTER=aws-parallelcluster-cluster ;;
            *) die "--extra-tags: unknown tag '$t' (known: partition, account, cluster)" ;;
        esac
    done
}

# ---------------------------------------------------------------------------------------
# Small helpers

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
mode_of() { stat -c %a "$1"; }
backup_name() {
    local p=${1#"$ROOT"}
    p=${p#/}
    printf '%s' "${p//\//%}"
}
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
toml_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# A copy of a release file with /opt/slurm/ moved under COST_TAGS_ROOT (a no-op without it).
rooted_copy() {
    if [ -z "$ROOT" ]; then
        cat "$1"
    else
        sed "s|/opt/slurm/|$(sed_escape "$ROOT")/opt/slurm/|g" "$1"
    fi
}

# Writes the content of $1 to $2 with mode $3, atomically (temporary file + rename in the
# same directory), keeping the owner of an existing $2.
install_content() {
    local src=$1 dest=$2 mode=$3 tmp
    tmp=$(mktemp "${dest%/*}/.cost-tags.XXXXXX") || die "cannot write in ${dest%/*}"
    if ! cat "$src" >"$tmp"; then
        rm -f "$tmp"
        die "cannot write $dest"
    fi
    chmod "$mode" "$tmp" || die "cannot chmod $tmp"
    if [ -e "$dest" ]; then chown --reference="$dest" "$tmp" 2>/dev/null; fi
    if ! mv -f "$tmp" "$dest"; then
        rm -f "$tmp"
        die "cannot replace $dest"
    fi
}

# Puts back a file saved with `cp -a` (content, mode, owner, or a symlink) atomically.
restore_copy() {
    local saved=$1 dest=$2 tmp
    tmp="${dest%/*}/.cost-tags.restore.$$"
    rm -f "$tmp"
    cp -a "$saved" "$tmp" || die "cannot restore $dest from $saved"
    mv -f "$tmp" "$dest" || die "cannot restore $dest"
}

same_file() { [ -f "$2" ] && [ ! -L "$2" ] && cmp -s "$1" "$2" && [ "$(mode_of "$2")" = "$3" ]; }

# The nearest existing ancestor of $1 (or $1) must be a writable directory.
check_dir_writable() {
    local p=$1
    while [ ! -e "$p" ] && [ ! -L "$p" ]; do p=${p%/*}; done
    [ -n "$p" ] || p=/
    [ -d "$p" ] || die "cannot create $1: $p is not a directory"
    [ -w "$p" ] || die "cannot write in $p (read-only file system or permissions)"
}

check_target_file() {
    if [ -e "$1" ] && [ ! -f "$1" ]; then die "$1 exists and is not a regular file"; fi
}

CHANGES=0
changed() {
    CHANGES=$((CHANGES + 1))
    log "$*"
}

# ---------------------------------------------------------------------------------------
# Manifest: one record per line, fields separated by tabs.
#   dir      PATH                   a directory the install created
#   file     PATH  SHA256           a file the install created (SHA256: as it left it)
#   replaced PATH  SHA256  BACKUP   a file that existed and was replaced (saved in BACKUP)
#   edited   PATH  SHA256  BACKUP   a configuration file edited in place (original in BACKUP)
#   merge    PATH  KEY  ITEM        ITEM was added to the KEY=a,b list in PATH
#   line     PATH  LINE             LINE was appended to PATH

declare -a MF_ORDER=()
declare -A MF=()

mf_nkey() {
    case $1 in
        dir | file | replaced | edited) echo 2 ;;
        line) echo 3 ;;
        merge) echo 4 ;;
        *) echo 0 ;;
    esac
}

mf_load() {
    MF_ORDER=()
    MF=()
    [ -f "$MANIFEST" ] || return 0
    local line n key val f
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in '#'* | '') continue ;; esac
        IFS=$'\t' read -r -a f <<<"$line"
        n=$(mf_nkey "${f[0]}")
        if [ "$n" -eq 0 ] || [ ${#f[@]} -lt "$n" ]; then die "$MANIFEST: unreadable record: $line"; fi
        key=$(printf '%s\t' "${f[@]:0:n}")
        key=${key%$'\t'}
        val=""
        if [ ${#f[@]} -gt "$n" ]; then
            val=$(printf '%s\t' "${f[@]:n}")
            val=${val%$'\t'}
        fi
        mf_set "$key" "$val"
    done <"$MANIFEST"
}

mf_has() { [ -n "${MF[$1]+x}" ]; }
mf_get() { printf '%s' "${MF[$1]}"; }
mf_set() {
    mf_has "$1" || MF_ORDER+=("$1")
    MF[$1]=$2
}
mf_del() {
    local k new=()
    unset 'MF[$1]'
    for k in "${MF_ORDER[@]}"; do [ "$k" = "$1" ] || new+=("$k"); done
    MF_ORDER=("${new[@]}")
}
mf_save() {
    local k tmp
    if [ ${#MF_ORDER[@]} -eq 0 ]; then
        rm -f "$MANIFEST"
        return 0
    fi
    ensure_dir "$MF_DIR" 755 norecord
    tmp="$WORK/manifest"
    {
        echo "# cost-tags.sh: what the install added or changed on this cluster; read by --uninstall. Do not edit."
        for k in "${MF_ORDER[@]}"; do
            if [ -n "${MF[$k]}" ]; then printf '%s\t%s\n' "$k" "${MF[$k]}"; else printf '%s\n' "$k"; fi
        done
    } >"$tmp"
    same_file "$tmp" "$MANIFEST" 644 || install_content "$tmp" "$MANIFEST" 644
}

# Creates directory $1 (and missing parents) with mode $2; records each one created unless
# $3 is "norecord".
ensure_dir() {
    local d=$1 mode=$2 p missing=()
    p=$d
    while [ ! -e "$p" ] && [ ! -L "$p" ]; do
        missing=("$p" "${missing[@]}")
        p=${p%/*}
        [ -n "$p" ] || p=/
    done
    [ -d "$p" ] || die "cannot create $d: $p is not a directory"
    for p in "${missing[@]}"; do
        mkdir -m "$mode" "$p" || die "cannot create directory $p"
        [ "$3" = norecord ] || mf_set "dir	$p" ""
    done
}

# ---------------------------------------------------------------------------------------
# Installing files

# A file from the release (binaries, hooks, job_submit.lua, our slurm.conf include): always
# made equal to $1. A file that was there before and is not ours is saved first.
put_file() {
    local src=$1 dest=$2 mode=$3 rec
    if mf_has "file	$dest"; then
        rec="file	$dest"
    elif mf_has "replaced	$dest"; then
        rec="replaced	$dest"
    else
        rec=""
    fi
    if [ -n "$rec" ] && same_file "$src" "$dest" "$mode"; then
        return 0
    fi
    if [ -z "$rec" ] && { [ -e "$dest" ] || [ -L "$dest" ]; }; then
        ensure_dir "$BACKUP_DIR" 700 norecord
        cp -a "$dest" "$BACKUP_DIR/$(backup_name "$dest")" || die "cannot save $dest"
        rec="replaced	$dest"
        mf_set "$rec" "pending	$(backup_name "$dest")"
    fi
    install_content "$src" "$dest" "$mode"
    local sha
    sha=$(sha_of "$dest")
    case $rec in
        replaced*)
            mf_set "$rec" "$sha	$(mf_get "$rec" | cut -f2)"
            changed "installed $dest (the previous one is saved)"
            ;;
        file*)
            mf_set "$rec" "$sha"
            changed "updated $dest"
            ;;
        *)
            mf_set "file	$dest" "$sha"
            changed "installed $dest"
            ;;
    esac
}

# A settings file written only where none exists. One we wrote and nobody changed since
# follows the options of the latest run; any other is left alone. Returns 1 if left alone.
put_once() {
    local src=$1 dest=$2 mode=$3
    local rec="file	$dest"
    if [ -e "$dest" ] || [ -L "$dest" ]; then
        if mf_has "$rec" && [ "$(sha_of "$dest")" = "$(mf_get "$rec")" ]; then
            same_file "$src" "$dest" "$mode" && return 0
            install_content "$src" "$dest" "$mode"
            mf_set "$rec" "$(sha_of "$dest")"
            changed "updated $dest"
            return 0
        fi
        return 1
    fi
    install_content "$src" "$dest" "$mode"
    mf_set "$rec" "$(sha_of "$dest")"
    changed "installed $dest"
}

# ---------------------------------------------------------------------------------------
# The release

REL=""
fetch_release() {
    local src=$RELEASE file="" dir=""
    case $src in
        s3://*)
            command -v aws >/dev/null 2>&1 || die "the AWS CLI (aws) is needed to download $src"
            aws s3 cp --only-show-errors "$src" "$WORK/release.tar.gz" >&2 || die "cannot download $src (aws s3 cp failed; does the head node's role allow s3:GetObject on it?)"
            file=$WORK/release.tar.gz
            ;;
        https://* | http://*)
            command -v curl >/dev/null 2>&1 || die "curl is needed to download $src"
            case $src in http://*) [ -n "$SHA256" ] || warn "downloading over plain http without --sha256" ;; esac
            curl -fsSL --retry 3 --connect-timeout 10 --max-time 600 -o "$WORK/release.tar.gz" "$src" || die "cannot download $src"
            file=$WORK/release.tar.gz
            ;;
        *://*) die "--release: unsupported scheme in '$src' (use a path, https:// or s3://)" ;;
        *)
            if [ -d "$src" ]; then
                dir=$src
            elif [ -f "$src" ]; then
                file=$src
            else
                die "--release $src: no such file or directory"
            fi
            ;;
    esac
    if [ -n "$SHA256" ]; then
        [ -n "$file" ] || die "--sha256 checks a tarball, but the release $src is a directory"
        local got
        got=$(sha_of "$file") || die "cannot read $file"
        [ "$got" = "$SHA256" ] || die "sha256 mismatch for the release $src: expected $SHA256, got $got. Nothing was changed."
        log "release checksum verified ($got)"
    elif [ -z "$dir" ] && [ "$file" != "$src" ]; then
        warn "no --sha256 given: the downloaded release is not verified"
    fi
    if [ -n "$file" ]; then
        mkdir "$WORK/release" || die "cannot unpack in $WORK"
        tar -xf "$file" -C "$WORK/release" --no-same-owner 2>"$WORK/tar.err" ||
            die "cannot unpack the release $src (a .tar.gz is expected): $(head -c 300 "$WORK/tar.err")"
        dir=$WORK/release
        if [ ! -e "$dir/bin/project-check" ]; then
            local found=("$dir"/*/bin/project-check)
            [ ${#found[@]} -eq 1 ] && [ -e "${found[0]}" ] && dir=${found[0]%/bin/project-check}
        fi
    fi
    local f lacking=""
    for f in $RELEASE_BINS; do [ -f "$dir/bin/$f" ] || lacking="$lacking bin/$f"; done
    for f in job_submit.lua $HOOKS; do [ -f "$dir/scripts/slurm/$f" ] || lacking="$lacking scripts/slurm/$f"; done
    [ -z "$lacking" ] || die "the release $src lacks:$lacking"
    for f in $RELEASE_BINS $OPTIONAL_BINS; do
        [ -f "$dir/bin/$f" ] || continue
        chmod 755 "$dir/bin/$f" 2>/dev/null
        "$dir/bin/$f" --version >"$WORK/version.out" 2>&1 </dev/null ||
            die "bin/$f of the release does not run on this machine (wrong CPU architecture, too new a glibc, or TMPDIR mounted noexec?): $(head -c 300 "$WORK/version.out")"
    done
    REL=$dir
    log "release $src: $(head -n1 "$WORK/version.out")"
}

# ---------------------------------------------------------------------------------------
# Slurm configuration: slurm.conf and the files it includes, in the order Slurm reads them.
# For each key of interest the LAST occurrence is the one in effect.

WANT_KEYS="jobsubmitplugins prologflags accountingstoreflags accountingstoragetype prolog epilog"
declare -A OCC_FILE=() OCC_LINE=() OCC_VAL=() CONF_SEEN=()
OUR_CONF_INCLUDED=0
CONF_LIST=()

# Prints, in file order, "I<TAB>path" for include lines and "K<TAB>lineno<TAB>key<TAB>value"
# for the keys of interest (value: the first word, unquoted).
# shellcheck disable=SC2016
conf_scan_awk='
BEGIN { n = split(keys, ks, " "); for (i = 1; i <= n; i++) want[ks[i]] = 1 }
{
    line = $0
    sub(/\r$/, "", line)
    sub(/^[ \t]+/, "", line)
    if (line == "" || substr(line, 1, 1) == "#") next
    if (tolower(substr(line, 1, 7)) == "include" && substr(line, 8, 1) ~ /[ \t]/) {
        p = substr(line, 9)
        sub(/^[ \t]+/, "", p)
        sub(/[ \t]*(#.*)?$/, "", p)
        print "I\t" p
        next
    }
    if (match(line, /^[A-Za-z]+[ \t]*=/)) {
        k = substr(line, 1, RLENGTH)
        sub(/[ \t]*=$/, "", k)
        k = tolower(k)
        if (!(k in want)) next
        v = substr(line, RLENGTH + 1)
        sub(/^[ \t]+/, "", v)
        if (substr(v, 1, 1) == "\"") {
            v = substr(v, 2)
            i = index(v, "\"")
            if (i > 0) v = substr(v, 1, i - 1)
        } else {
            match(v, /^[^ \t#]*/)
            v = substr(v, 1, RLENGTH)
        }
        print "K\t" NR "\t" k "\t" v
    }
}'

resolve_include() {
    local p=$1
    case $p in
        *%*) return 1 ;; # %c etc.: expanded by Slurm only
        /*)
            if [ -n "$ROOT" ] && [ -e "$ROOT$p" ]; then p=$ROOT$p; fi
            ;;
        *) p=$CONF_DIR/$p ;;
    esac
    printf '%s' "$p"
}

conf_scan_file() {
    local f=$1 kind a b c inc
    [ -n "${CONF_SEEN[$f]}" ] && return 0
    CONF_SEEN[$f]=1
    if [ "$f" = "$OUR_CONF" ]; then
        OUR_CONF_INCLUDED=1
        return 0
    fi
    if [ ! -f "$f" ]; then
        warn "included file $f not found (ignored)"
        return 0
    fi
    CONF_LIST+=("$f")
    while IFS=$'\t' read -r kind a b c; do
        if [ "$kind" = I ]; then
            inc=$(resolve_include "$a") && conf_scan_file "$inc"
        else
            OCC_FILE[$b]=$f
            OCC_LINE[$b]=$a
            OCC_VAL[$b]=$c
        fi
    done < <(awk -v keys="$WANT_KEYS" "$conf_scan_awk" "$f")
}

conf_scan() {
    OCC_FILE=()
    OCC_LINE=()
    OCC_VAL=()
    CONF_SEEN=()
    CONF_LIST=()
    OUR_CONF_INCLUDED=0
    conf_scan_file "$SLURM_CONF_FILE"
}

# Whether the comma list $1 holds $2 (case-insensitive; job_submit/lua counts as lua).
has_item() {
    local v t it
    v=${1,,}
    it=${2,,}
    local IFS=,
    for t in $v; do
        t=${t#job_submit/}
        [ "$t" = "$it" ] && return 0
    done
    return 1
}

# Rewrites line $2 of file $1 (a KEY=value line) with awk program mode $3 and item $4:
#   add: append ITEM to the comma list;  del: remove the last ITEM from it.
# shellcheck disable=SC2016
edit_value_awk='
function fix(line,    pre, rest, q, val, post, i, n, parts, out, j, drop) {
    match(line, /^[ \t]*[A-Za-z]+[ \t]*=[ \t]*/)
    pre = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1); q = ""
    if (substr(rest, 1, 1) == "\"") {
        q = "\""; rest = substr(rest, 2); i = index(rest, "\"")
        if (i == 0) { val = rest; post = "" } else { val = substr(rest, 1, i - 1); post = substr(rest, i + 1) }
    } else {
        match(rest, /^[^ \t#\r]*/); val = substr(rest, 1, RLENGTH); post = substr(rest, RLENGTH + 1)
    }
    if (mode == "add") {
        val = (val == "") ? item : val "," item
    } else {
        n = split(val, parts, ","); drop = 0
        for (j = n; j >= 1; j--) if (tolower(parts[j]) == tolower(item)) { drop = j; break }
        if (!drop) return line
        out = ""
        for (j = 1; j <= n; j++) if (j != drop) out = (out == "") ? parts[j] : out "," parts[j]
        val = out
    }
    return pre q val q post
}
NR == target { $0 = fix($0) }
{ print }'

edit_value() {
    local f=$1 lineno=$2 mode=$3 item=$4 out
    out="$WORK/edit.$$"
    awk -v target="$lineno" -v mode="$mode" -v item="$item" "$edit_value_awk" "$f" >"$out" || die "cannot edit $f"
    install_content "$out" "$f" "$(mode_of "$f")"
}

# Line number of the last KEY= line in file $1 (0 if none).
last_key_line() {
    awk -v key="${2,,}" '
        { l = $0; sub(/^[ \t]+/, "", l) }
        match(l, /^[A-Za-z]+[ \t]*=/) { k = substr(l, 1, RLENGTH); sub(/[ \t]*=$/, "", k); if (tolower(k) == key) n = NR }
        END { print n + 0 }' "$1"
}

# Line number of the last line equal to $2 in file $1 (0 if none).
last_line_equal() {
    awk -v want="$2" '$0 == want { n = NR } END { print n + 0 }' "$1"
}

delete_line() {
    local f=$1 lineno=$2 out="$WORK/del.$$"
    awk -v target="$lineno" 'NR != target' "$f" >"$out" || die "cannot edit $f"
    install_content "$out" "$f" "$(mode_of "$f")"
}

# Removes from file $1 (in place) what the manifest says the install added to file $2 (the
# same file, or the original a copy was made from). With "prune", records whose change is
# no longer there are dropped. Prints what it did.
semantic_revert() {
    local f=$1 r=$2 prune=$3 k i i2 n rest key item line
    n=${#MF_ORDER[@]}
    for ((i = n - 1; i >= 0; i--)); do
        k=${MF_ORDER[$i]}
        case $k in
            "merge	$r	"*)
                rest=${k#"merge	$r	"}
                key=${rest%%	*}
                item=${rest#*	}
                line=$(last_key_line "$f" "$key")
                if [ "$line" -gt 0 ] && has_item "$(awk -v t="$line" 'NR == t' "$f" | sed 's/^[^=]*=[[:space:]]*//; s/^"//; s/[[:space:]#"].*//')" "$item"; then
                    edit_value "$f" "$line" del "$item"
                    log "$f: removed $item from $key"
                elif [ "$prune" = prune ]; then
                    mf_del "$k"
                fi
                ;;
            "line	$r	"*)
                line=${k#"line	$r	"}
                i2=$(last_line_equal "$f" "$line")
                if [ "$i2" -gt 0 ]; then
                    delete_line "$f" "$i2"
                    log "$f: removed the line '$line'"
                elif [ "$prune" = prune ]; then
                    mf_del "$k"
                fi
                ;;
        esac
    done
}

# Before the first edit of a configuration file in this run: save the original once.
EDIT_STARTED=" "
edit_begin() {
    local f=$1
    case $EDIT_STARTED in *" $f "*) return 0 ;; esac
    EDIT_STARTED="$EDIT_STARTED$f "
    if ! mf_has "edited	$f"; then
        ensure_dir "$BACKUP_DIR" 700 norecord
        cp -a "$f" "$BACKUP_DIR/$(backup_name "$f")" || die "cannot save $f"
        mf_set "edited	$f" "pending	$(backup_name "$f")"
    fi
}

# Edited files someone changed since the last run (ParallelCluster rewrites some on
# update): the saved original becomes the current file minus cost-tags' recorded changes,
# and records whose change is gone are dropped (this run makes them again if needed).
refresh_edited() {
    local k f rec sha backup
    for k in "${MF_ORDER[@]}"; do
        case $k in edited*) ;; *) continue ;; esac
        f=${k#edited	}
        rec=$(mf_get "$k")
        sha=${rec%%	*}
        backup=${rec#*	}
        if [ ! -f "$f" ]; then
            warn "$f (edited by an earlier run) is gone; forgetting its edits"
            forget_edits "$f"
            continue
        fi
        [ "$(sha_of "$f")" = "$sha" ] && continue
        rm -f "$WORK/refresh"
        cp -a "$f" "$WORK/refresh" || die "cannot read $f"
        semantic_revert "$WORK/refresh" "$f" prune >/dev/null
        ensure_dir "$BACKUP_DIR" 700 norecord
        cp -a "$WORK/refresh" "$BACKUP_DIR/$backup" || die "cannot save $f"
        log "$f changed since the last run: its saved original is refreshed"
        mf_set "$k" "$(sha_of "$f")	$backup"
    done
}

forget_edits() {
    local f=$1 k
    for k in "${MF_ORDER[@]}"; do
        case $k in "edited	$f" | "merge	$f	"* | "line	$f	"*) mf_del "$k" ;; esac
    done
}

finish_edited() {
    local k f rec
    for k in "${MF_ORDER[@]}"; do
        case $k in edited*) ;; *) continue ;; esac
        f=${k#edited	}
        rec=$(mf_get "$k")
        [ -f "$f" ] && mf_set "$k" "$(sha_of "$f")	${rec#*	}"
    done
}

# ---------------------------------------------------------------------------------------
# scontrol reconfigure

reconfigure() {
    case $RECONF in
        no)
            log "not running scontrol reconfigure (--no-reconfigure); run it to apply the Slurm settings"
            return 0
            ;;
        auto)
            if [ -n "$ROOT" ]; then
                log "COST_TAGS_ROOT is set: not running scontrol reconfigure (--reconfigure forces it)"
                return 0
            fi
            ;;
    esac
    local sc out
    if [ -x "$OPT/bin/scontrol" ]; then
        sc=$OPT/bin/scontrol
    elif ! sc=$(command -v scontrol); then
        warn "scontrol not found: run 'scontrol reconfigure' to apply the Slurm settings"
        return 0
    fi
    if out=$(SLURM_CONF=$SLURM_CONF_FILE "$sc" reconfigure 2>&1 </dev/null); then
        log "scontrol reconfigure: done"
        return 0
    fi
    if ! SLURM_CONF=$SLURM_CONF_FILE "$sc" ping >/dev/null 2>&1 </dev/null; then
        warn "slurmctld is not reachable (scontrol reconfigure: $out); it reads the new settings when it starts"
        return 0
    fi
    die "scontrol reconfigure failed: $out"
}

# ---------------------------------------------------------------------------------------
# Periodic jobs: a systemd service + timer pair, or a cron.d file where systemd is absent

# Sets the J_* description of job $1: reconcile (compute nodes), budget or prices (head
# node). J_WHEN is the cron schedule: every J_EVERY minutes, or @daily for a day.
job_spec() {
    case $1 in
        reconcile)
            J_NAME=cost-tags-reconcile
            J_CRON=cost-tags
            J_CMD=reconcile
            J_WHAT="reconcile this node's EC2 cost tags with its Slurm jobs"
            J_BOOT=1 # minutes after boot
            J_EVERY=5 # minutes
            J_JITTER=60 # seconds of random delay
            ;;
        budget)
            J_NAME=cost-tags-budget-refresh
            J_CRON=cost-tags-budget
            J_CMD="budget refresh"
            J_WHAT="refresh the AWS Budgets cache that project-check reads"
            J_BOOT=2
            J_EVERY=10
            J_JITTER=120
            ;;
        prices)
            # Daily: on-demand prices change a few times a year, and spot prices are
            # fetched as a history, so a later refresh corrects what a report of the last
            # day priced at the previous price. Up to 30 min of random delay spreads a
            # fleet of clusters (all on cron's @daily, or started together) over the
            # Price List.
            J_NAME=cost-tags-prices-refresh
            J_CRON=cost-tags-prices
            J_CMD="prices refresh"
            J_WHAT="refresh the price cache that cost-tags report reads"
            J_BOOT=5
            J_EVERY=1440
            J_JITTER=1800
            ;;
        metrics)
            # node_exporter reads the file at every scrape: 5 minutes keeps per user
            # spend (a sacct pass) current without loading slurmdbd.
            J_NAME=cost-tags-metrics
            J_CRON=cost-tags-metrics
            J_CMD="metrics --output $METRICS_FILE"
            J_WHAT="write the spend metrics node_exporter's textfile collector reads"
            J_BOOT=3
            J_EVERY=5
            J_JITTER=30
            ;;
        *) die "internal error: unknown periodic job '$1'" ;;
    esac
    if [ "$J_EVERY" = 1440 ]; then J_WHEN=@daily; else J_WHEN="*/$J_EVERY * * * *"; fi
    J_SERVICE=$UNIT_DIR/$J_NAME.service
    J_TIMER=$UNIT_DIR/$J_NAME.timer
    J_CRONFILE=$CRON_DIR/$J_CRON
}

# INIT: systemd, cron or none (see "Periodic jobs" above); SYSTEMD_LIVE=1 when systemctl
# may be run (never under COST_TAGS_ROOT).
detect_init() {
    SYSTEMD_LIVE=0
    if [ -n "$ROOT" ]; then
        if [ -d "$ROOT/run/systemd/system" ]; then INIT=systemd; elif [ -d "$CRON_DIR" ]; then INIT=cron; else INIT=none; fi
    elif command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        INIT=systemd
        SYSTEMD_LIVE=1
    elif [ -d "$CRON_DIR" ]; then
        INIT=cron
    else
        INIT=none
    fi
}

systemd_live() { [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; }

# Writes the files of job $1 into directory $2: $2/service, $2/timer and $2/cron.
write_job_files() {
    job_spec "$1"
    local dir=$2 env=$ETC_DIR/cost-tags.env bin=$BIN_DIR/cost-tags run
    local path=$BIN_DIR:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    run="[ -r $env ] && . $env; exec $bin $J_CMD"
    {
        echo "${JOB_MARK}runs \`cost-tags $J_CMD\`, from $J_NAME.timer. Written by the"
        echo "# ParallelCluster custom action cost-tags.sh (its --uninstall removes it); a new run overwrites it."
        echo "[Unit]"
        echo "Description=cost-tags: $J_WHAT"
        echo "Wants=network-online.target"
        echo "After=network-online.target remote-fs.target"
        echo "ConditionFileIsExecutable=$bin"
        echo ""
        echo "[Service]"
        echo "Type=oneshot"
        echo "Environment=PATH=$path"
        echo "# cost-tags.env is read as the Slurm hooks read it: a shell fragment, whose"
        echo "# 'export NAME=value' lines EnvironmentFile= would ignore. Messages go to syslog."
        echo "ExecStart=/bin/sh -c '$run'"
    } >"$dir/service"
    {
        echo "${JOB_MARK}runs $J_NAME.service ${J_BOOT} min after boot, then every $J_EVERY min,"
        echo "# each time up to $J_JITTER s later at random. Written by the ParallelCluster custom action"
        echo "# cost-tags.sh (its --uninstall removes it); a new run overwrites it."
        echo "# (Persistent= applies to OnCalendar= timers only: these are monotonic.)"
        echo "[Unit]"
        echo "Description=cost-tags: $J_WHAT, every $J_EVERY minutes"
        echo ""
        echo "[Timer]"
        echo "OnBootSec=${J_BOOT}min"
        echo "OnUnitActiveSec=${J_EVERY}min"
        echo "RandomizedDelaySec=$J_JITTER"
        echo ""
        echo "[Install]"
        echo "WantedBy=timers.target"
    } >"$dir/timer"
    {
        echo "${JOB_MARK}runs \`cost-tags $J_CMD\` ${J_BOOT} min after boot and every $J_EVERY min,"
        echo "# up to $J_JITTER s later at random (no systemd on this node). Written by the ParallelCluster"
        echo "# custom action cost-tags.sh (its --uninstall removes it); a new run overwrites it."
        echo "# Messages go to syslog. cron reads '\\%' as '%'."
        echo "SHELL=/bin/bash"
        echo "PATH=$path"
        # shellcheck disable=SC2016 # $RANDOM is for cron's bash, not this one
        printf '%s root sleep $((RANDOM \\%% %s)); %s >/dev/null 2>&1\n' "$J_WHEN" "$J_JITTER" "$run"
        printf '@reboot root sleep %s; %s >/dev/null 2>&1\n' "$((J_BOOT * 60))" "$run"
    } >"$dir/cron"
}

# Whether $1 is a file this script wrote (its first line carries the mark).
ours() {
    local first=""
    [ -f "$1" ] && [ ! -L "$1" ] || return 1
    IFS= read -r first <"$1"
    [ "${first#"$JOB_MARK"}" != "$first" ]
}

run_systemctl() {
    local out
    out=$(systemctl "$@" 2>&1 </dev/null) || die "systemctl $* failed: $out"
}

# After the units of the current job were written: make the timer run. $1: 1 if the units
# changed in this run.
timer_activate() {
    local changed_units=$1 t=$J_NAME.timer
    if [ -n "$ROOT" ]; then
        log "COST_TAGS_ROOT is set: not running systemctl (a real node runs 'systemctl enable --now $t')"
        return 0
    fi
    [ "$SYSTEMD_LIVE" = 1 ] || return 0
    if [ "$changed_units" = 1 ]; then
        run_systemctl daemon-reload
        run_systemctl enable "$t"
        run_systemctl restart "$t"
        log "$t: enabled and (re)started"
    elif ! systemctl is-enabled --quiet "$t" 2>/dev/null || ! systemctl is-active --quiet "$t" 2>/dev/null; then
        run_systemctl enable --now "$t"
        changed "$t: enabled and started"
    fi
}

# Before removing the units of the current job: stop and disable its timer.
timer_disable() {
    local t=$J_NAME.timer out
    if [ -n "$ROOT" ]; then
        log "COST_TAGS_ROOT is set: not running systemctl (a real node runs 'systemctl disable --now $t')"
        return 0
    fi
    systemd_live || return 0
    if out=$(systemctl disable --now "$t" 2>&1 </dev/null); then
        log "$t: stopped and disabled"
    else
        warn "systemctl disable --now $t failed: $out"
    fi
}

timer_forget() {
    if [ -z "$ROOT" ] && systemd_live; then
        systemctl daemon-reload >/dev/null 2>&1 </dev/null || warn "systemctl daemon-reload failed"
    fi
}

# Compute node: `cost-tags reconcile` from a timer (or cron). Nothing goes to the head
# node's manifest: the mark on the first line of each file is what identifies it.
reconcile_install() {
    job_spec reconcile
    if [ ! -f "$BIN_DIR/cost-tags" ]; then
        log "no $BIN_DIR/cost-tags (optional in a release): cost-tags reconcile is not scheduled on this node"
        reconcile_remove stale
        return 0
    fi
    detect_init
    if [ "$INIT" = none ]; then
        warn "neither systemd nor cron ($CRON_DIR) on this node: cost-tags reconcile is not scheduled; run '$BIN_DIR/cost-tags reconcile' every few minutes from your own scheduler"
        return 0
    fi
    local want=() other=() f
    if [ "$INIT" = systemd ]; then
        want=("$J_SERVICE" "$J_TIMER")
        other=("$J_CRONFILE")
    else
        want=("$J_CRONFILE")
        other=("$J_SERVICE" "$J_TIMER")
    fi
    for f in "${want[@]}"; do
        if { [ -e "$f" ] || [ -L "$f" ]; } && ! ours "$f"; then
            warn "$f exists and was not written by cost-tags.sh: left as it is, cost-tags reconcile is not scheduled by this script"
            return 0
        fi
    done
    check_dir_writable "${want[0]%/*}"
    mkdir -p "$WORK/job" || die "cannot write in $WORK"
    write_job_files reconcile "$WORK/job"
    [ -d "${want[0]%/*}" ] || mkdir -p "${want[0]%/*}" || die "cannot create ${want[0]%/*}"
    local changed_units=0 src
    for f in "${want[@]}"; do
        case $f in
            *.service) src=$WORK/job/service ;;
            *.timer) src=$WORK/job/timer ;;
            *) src=$WORK/job/cron ;;
        esac
        same_file "$src" "$f" 644 && continue
        if [ -e "$f" ]; then changed "updated $f"; else changed "installed $f"; fi
        install_content "$src" "$f" 644
        changed_units=1
    done
    for f in "${other[@]}"; do
        if ours "$f"; then
            rm -f "$f" || die "cannot remove $f"
            changed "removed $f (this node now uses $INIT)"
        fi
    done
    [ "$INIT" = systemd ] && timer_activate "$changed_units"
    log "cost-tags reconcile scheduled every $J_EVERY minutes ($INIT)"
}

# Removes the compute node's reconcile job files (those carrying the mark). $1: "stale"
# when called from an install (the release no longer has cost-tags).
reconcile_remove() {
    job_spec reconcile
    local f gone=0
    ours "$J_TIMER" && timer_disable
    for f in "$J_SERVICE" "$J_TIMER" "$J_CRONFILE"; do
        { [ -e "$f" ] || [ -L "$f" ]; } || continue
        if ours "$f"; then
            rm -f "$f" || die "cannot remove $f"
            if [ "$1" = stale ]; then changed "removed $f"; else log "removed $f"; fi
            gone=1
        else
            warn "kept $f: it was not written by cost-tags.sh"
        fi
    done
    [ "$gone" = 1 ] && timer_forget
    return 0
}

# Head node, before anything changes: with --budgets, check that the budget refresh can be
# scheduled and stage its files.
budget_check() {
    [ "$BUDGETS" = 1 ] || return 0
    [ -f "$REL/bin/cost-tags" ] || die "--budgets needs bin/cost-tags (cost-tags budget refresh), which the release $RELEASE lacks. Nothing was changed."
    detect_init
    [ "$INIT" != none ] || die "--budgets: neither systemd nor cron ($CRON_DIR) on this node to run cost-tags budget refresh. Nothing was changed."
    stage_head_job budget
}

# Head node, before anything changes: unless --no-prices, the daily price refresh when the
# release has cost-tags and the node systemd or cron. Unlike --budgets, nothing depends on
# it (the report falls back to [pricing] settings), so what prevents it is said, not fatal.
# Sets PRICES_ON.
prices_check() {
    PRICES_ON=0
    [ "$PRICES" = 1 ] || return 0
    if [ ! -f "$REL/bin/cost-tags" ]; then
        log "the release has no bin/cost-tags (optional): cost-tags prices refresh is not scheduled"
        return 0
    fi
    detect_init
    if [ "$INIT" = none ]; then
        warn "neither systemd nor cron ($CRON_DIR) on this node: cost-tags prices refresh is not scheduled; run '$BIN_DIR/cost-tags prices refresh' daily from your own scheduler (or pass --no-prices)"
        return 0
    fi
    stage_head_job prices
    PRICES_ON=1
}

# Head node, before anything changes: with --metrics DIR, check that DIR is there and the
# job can be scheduled, and stage its files.
metrics_check() {
    [ -n "$METRICS_DIR" ] || return 0
    [ -f "$REL/bin/cost-tags" ] || die "--metrics needs bin/cost-tags (cost-tags metrics), which the release $RELEASE lacks. Nothing was changed."
    [ -d "$ROOT$METRICS_DIR" ] || die "--metrics $METRICS_DIR: no such directory (node_exporter's textfile directory must exist). Nothing was changed."
    detect_init
    [ "$INIT" != none ] || die "--metrics: neither systemd nor cron ($CRON_DIR) on this node to run cost-tags metrics. Nothing was changed."
    stage_head_job metrics
}

# The metrics file the installed metrics job writes (from its recorded service or cron
# file), or nothing.
metrics_installed_output() {
    job_spec metrics
    local f
    for f in "$J_SERVICE" "$J_CRONFILE"; do
        if ! recorded "$f" || [ ! -f "$f" ]; then continue; fi
        # The command lines only (the first, a comment, names the command too).
        sed -n '/^#/d; s|.* metrics --output \([^ ;'"'"']*\).*|\1|p' "$f" | head -n 1
        return 0
    done
}

# Removes the metrics file an earlier run's job wrote, unless it is $1 (still written):
# once the job stops, a file left behind would show frozen figures forever.
metrics_output_forget() {
    local old
    old=$(metrics_installed_output)
    [ -n "$old" ] && [ "$old" != "$1" ] || return 0
    if [ -f "$old" ] && [ ! -L "$old" ]; then
        rm -f "$old" || die "cannot remove $old"
        changed "removed $old (the metrics the job wrote)"
    fi
    return 0
}

# Stages the files of head-node job $1 in $WORK/$1 and checks that they can be written.
stage_head_job() {
    mkdir -p "$WORK/$1" || die "cannot write in $WORK"
    write_job_files "$1" "$WORK/$1"
    local f
    if [ "$INIT" = systemd ]; then
        check_dir_writable "$UNIT_DIR"
        for f in "$J_SERVICE" "$J_TIMER"; do check_target_file "$f"; done
    else
        check_dir_writable "$CRON_DIR"
        check_target_file "$J_CRONFILE"
    fi
}

# Removes (or restores) the recorded file $1 and counts it as a change.
drop_recorded() {
    local k
    for k in "file	$1" "replaced	$1"; do
        mf_has "$k" || continue
        remove_recorded "$k"
        CHANGES=$((CHANGES + 1))
    done
}

recorded() { mf_has "file	$1" || mf_has "replaced	$1"; }

# Head node, while applying: the units of job $1 (budget, prices) are installed when $2 is
# 1 (from the files stage_head_job staged), else those an earlier run installed are
# removed, the timer disabled first; all recorded in the manifest. Sets UNITS_CHANGED.
head_job_apply() {
    job_spec "$1"
    local before=$CHANGES
    UNITS_CHANGED=0
    if [ "$2" = 1 ] && [ "$INIT" = systemd ]; then
        ensure_dir "$UNIT_DIR" 755
        put_file "$WORK/$1/service" "$J_SERVICE" 644
        put_file "$WORK/$1/timer" "$J_TIMER" 644
        [ "$CHANGES" = "$before" ] || UNITS_CHANGED=1
        drop_recorded "$J_CRONFILE"
        return 0
    fi
    if [ "$2" = 1 ]; then
        ensure_dir "$CRON_DIR" 755
        put_file "$WORK/$1/cron" "$J_CRONFILE" 644
    else
        drop_recorded "$J_CRONFILE"
    fi
    if recorded "$J_TIMER" || recorded "$J_SERVICE"; then
        recorded "$J_TIMER" && timer_disable
        drop_recorded "$J_TIMER"
        drop_recorded "$J_SERVICE"
        timer_forget
    fi
    return 0
}

# ---------------------------------------------------------------------------------------
# Head node

write_toml() {
    local out=$1 src=${PROJECT_SOURCE:-comment} strict=false
    [ "$STRICT" = 1 ] && strict=true
    {
        echo "# cost-tags settings (see \"Settings\" in the cost-tags README), written by cost-tags.sh"
        echo "# because none existed. It is never overwritten once edited."
        echo "projects_file = $(toml_str "$ETC_DIR/projects_list.conf")"
        echo "project_source = \"$src\"      # comment | account | wckey"
        echo "exempt_users = [\"root\"]"
        echo "state_dir = $(toml_str "$ROOT/var/spool/cost-tags")"
        echo "cache_dir = $(toml_str "$ROOT/run/cost-tags")"
        echo "deadline = 10                 # seconds, for a whole prolog/epilog"
        echo "strict = $strict                # true: a tagging failure exits 1 and drains the node"
        echo ""
        echo "[tags]                          # an empty name switches a key off"
        echo "project = \"aws-parallelcluster-project\""
        echo "user = \"aws-parallelcluster-username\""
        echo "job_id = \"aws-parallelcluster-jobid\""
        echo "partition = \"$TAG_PARTITION\""
        echo "account = \"$TAG_ACCOUNT\""
        echo "cluster = \"$TAG_CLUSTER\""
        echo "separator = \" \""
        if [ "$BUDGETS" = 1 ]; then
            echo ""
            echo "[budget]                        # refuse jobs of projects whose AWS Budget is spent"
            echo "enabled = true                  # cost-tags budget refresh (a timer) keeps the cache"
        fi
    } >"$out"
}

write_projects() {
    cat >"$1" <<'EOF'
# cost-tags: who may charge which project (read by project-check, see its --help).
# Until lines are added here EVERY job is refused with "You are not allowed to use the
# project ..." (users in exempt_users of cost-tags.toml, root by default, excepted).
#
# alice = ProjectA, ProjectC      # alice may use ProjectA and ProjectC
# alice = ProjectD                # several lines for one user add up
# *=Shared                        # a project everyone may use
# @physics=ProjectP               # members of Unix group physics (LDAP/AD users work)
#
# Names match whole and case-sensitively. Project names: ASCII letters, digits and
# . _ : / @ + -  (1 to 128 characters).
EOF
}

head_install() {
    [ -n "$RELEASE" ] || die "--release is required on the head node (see --help)"
    [ -d "$CONF_DIR" ] || die "no Slurm configuration directory $CONF_DIR (is this a ParallelCluster head node with Slurm?)"
    [ -f "$SLURM_CONF_FILE" ] || die "no slurm.conf in $CONF_DIR (is this a ParallelCluster head node with Slurm?)"
    lock_conf_dir
    fetch_release
    mf_load
    conf_scan

    # Where the hooks go.
    local layout prolog_path epilog_path
    if [ -d "$PROLOG_D" ] && [ -d "$EPILOG_D" ]; then
        layout=dropin
        prolog_path=$PROLOG_D/90_cost-tags-prolog
        epilog_path=$EPILOG_D/90_cost-tags-epilog
        case ${OCC_VAL[prolog]} in
            */prolog.d/*) ;;
            *) warn "Prolog= does not point into $PROLOG_D (it is '${OCC_VAL[prolog]}'): the hook there will not run" ;;
        esac
    else
        layout=fallback
        prolog_path=$HOOK_DIR/90_cost-tags-prolog
        epilog_path=$HOOK_DIR/90_cost-tags-epilog
        local k want
        for k in prolog epilog; do
            [ "$k" = prolog ] && want=$prolog_path || want=$epilog_path
            if [ -n "${OCC_FILE[$k]}" ] && [ "${OCC_VAL[$k]}" != "$want" ]; then
                die "this Slurm has no $PROLOG_D and already sets ${k^}=${OCC_VAL[$k]} (${OCC_FILE[$k]}, line ${OCC_LINE[$k]}); cost-tags will not replace it. Call $want from that script (or use prolog.d/epilog.d with Prolog=$PROLOG_D/*), then run this again. Nothing was changed."
            fi
        done
    fi

    # Stage every file and check for conflicts before changing anything.
    mkdir -p "$WORK/stage" || die "cannot write in $WORK"
    local f
    for f in $HOOKS job_submit.lua; do rooted_copy "$REL/scripts/slurm/$f" >"$WORK/stage/$f" || die "cannot read the release"; done
    write_toml "$WORK/stage/cost-tags.toml"
    write_projects "$WORK/stage/projects_list.conf"
    budget_check
    prices_check
    metrics_check
    if [ -e "$LUA" ] || [ -L "$LUA" ]; then
        if mf_has "file	$LUA" || mf_has "replaced	$LUA"; then
            local rec
            mf_has "file	$LUA" && rec=$(mf_get "file	$LUA") || rec=$(mf_get "replaced	$LUA")
            if [ "$(sha_of "$LUA")" != "${rec%%	*}" ] && ! cmp -s "$WORK/stage/job_submit.lua" "$LUA"; then
                die "$LUA was changed since cost-tags installed it; move your changes elsewhere (or remove the file) and run this again. Nothing was changed."
            fi
        elif ! cmp -s "$WORK/stage/job_submit.lua" "$LUA"; then
            die "$LUA exists and is not cost-tags' (Slurm loads only one job_submit.lua): merge scripts/slurm/job_submit.lua of the release into it by hand, or move it away and run this again. Nothing was changed."
        fi
    fi
    local d
    for d in "$BIN_DIR" "$ETC_DIR" "$CONF_DIR" "$MF_DIR" "${prolog_path%/*}" "${epilog_path%/*}"; do check_dir_writable "$d"; done
    for f in $RELEASE_BINS $OPTIONAL_BINS; do check_target_file "$BIN_DIR/$f"; done
    for f in "$prolog_path" "$epilog_path" "$LUA" "$OUR_CONF" "$TOML" "$PROJECTS" "$MANIFEST"; do check_target_file "$f"; done

    # Apply.
    APPLYING=1
    refresh_edited
    ensure_dir "$BIN_DIR" 755
    for f in $RELEASE_BINS $OPTIONAL_BINS; do
        [ -f "$REL/bin/$f" ] && put_file "$REL/bin/$f" "$BIN_DIR/$f" 755
    done
    put_once "$WORK/stage/cost-tags.toml" "$TOML" 644 || {
        log "$TOML exists: left as it is"
        if [ -n "$PROJECT_SOURCE$EXTRA_TAGS" ] || [ "$STRICT" = 1 ]; then
            warn "--project-source/--extra-tags/--strict apply to a new cost-tags.toml only: edit $TOML to change them"
        fi
        if [ "$BUDGETS" = 1 ] && ! grep -q '^[[:space:]]*\[budget\]' "$TOML"; then
            warn "--budgets: $TOML has no [budget] table and is not the one this script wrote: add '[budget]' with 'enabled = true' to it"
        fi
    }
    put_once "$WORK/stage/projects_list.conf" "$PROJECTS" 644 || log "$PROJECTS exists: left as it is"
    ensure_dir "${prolog_path%/*}" 755
    ensure_dir "${epilog_path%/*}" 755
    put_file "$WORK/stage/90_cost-tags-prolog" "$prolog_path" 755
    put_file "$WORK/stage/90_cost-tags-epilog" "$epilog_path" 755
    put_file "$WORK/stage/job_submit.lua" "$LUA" 644

    # Slurm settings: extend existing keys where they are, the others into our file.
    local our_lines=() key item
    local -a settings=("JobSubmitPlugins lua" "PrologFlags Alloc")
    case ${OCC_VAL[accountingstoragetype],,} in
        *slurmdbd*) settings+=("AccountingStoreFlags job_comment") ;;
    esac
    for d in "${settings[@]}"; do
        key=${d% *}
        item=${d#* }
        k=${key,,}
        if [ -n "${OCC_FILE[$k]}" ]; then
            has_item "${OCC_VAL[$k]}" "$item" && continue
            f=${OCC_FILE[$k]}
            edit_begin "$f"
            edit_value "$f" "${OCC_LINE[$k]}" add "$item"
            mf_set "merge	$f	$key	$item" ""
            changed "$f: $key=$(printf '%s' "${OCC_VAL[$k]}"),$item (line ${OCC_LINE[$k]})"
        else
            our_lines+=("$key=$item")
        fi
    done
    if [ "$layout" = fallback ]; then
        [ -n "${OCC_FILE[prolog]}" ] || our_lines+=("Prolog=$prolog_path")
        [ -n "${OCC_FILE[epilog]}" ] || our_lines+=("Epilog=$epilog_path")
    fi
    {
        echo "# cost-tags: Slurm settings added by cost-tags.sh, included from slurm.conf."
        echo "# Settings that already existed elsewhere were extended where they are; only those"
        echo "# found nowhere are here. cost-tags.sh --uninstall removes this file and its include."
        for d in "${our_lines[@]}"; do echo "$d"; done
    } >"$WORK/stage/$OUR_CONF_NAME"
    put_file "$WORK/stage/$OUR_CONF_NAME" "$OUR_CONF" 644
    if [ "$OUR_CONF_INCLUDED" = 0 ]; then
        edit_begin "$SLURM_CONF_FILE"
        if [ -s "$SLURM_CONF_FILE" ] && [ -n "$(tail -c1 "$SLURM_CONF_FILE")" ]; then
            printf '\n%s\n' "$INCLUDE_LINE" >"$WORK/conf.new"
        else
            printf '%s\n' "$INCLUDE_LINE" >"$WORK/conf.new"
        fi
        cat "$SLURM_CONF_FILE" "$WORK/conf.new" >"$WORK/conf.all" || die "cannot read $SLURM_CONF_FILE"
        install_content "$WORK/conf.all" "$SLURM_CONF_FILE" "$(mode_of "$SLURM_CONF_FILE")"
        mf_set "line	$SLURM_CONF_FILE	$INCLUDE_LINE" ""
        changed "$SLURM_CONF_FILE: added '$INCLUDE_LINE'"
    fi
    head_job_apply budget "$BUDGETS"
    local budget_units_changed=$UNITS_CHANGED
    head_job_apply prices "$PRICES_ON"
    local prices_units_changed=$UNITS_CHANGED
    local metrics_on=0
    [ -n "$METRICS_DIR" ] && metrics_on=1
    metrics_output_forget "$([ "$metrics_on" = 1 ] && printf '%s' "$METRICS_FILE")"
    head_job_apply metrics "$metrics_on"
    local metrics_units_changed=$UNITS_CHANGED
    finish_edited
    mf_save
    APPLYING=0
    if [ "$BUDGETS" = 1 ]; then
        job_spec budget
        [ "$INIT" = systemd ] && timer_activate "$budget_units_changed"
        log "cost-tags budget refresh scheduled every $J_EVERY minutes ($INIT)"
    fi
    if [ "$PRICES_ON" = 1 ]; then
        job_spec prices
        [ "$INIT" = systemd ] && timer_activate "$prices_units_changed"
        log "cost-tags prices refresh scheduled daily ($INIT)"
    fi
    if [ "$metrics_on" = 1 ]; then
        job_spec metrics
        [ "$INIT" = systemd ] && timer_activate "$metrics_units_changed"
        log "cost-tags metrics writes $METRICS_FILE every $J_EVERY minutes ($INIT)"
    fi

    if [ "$CHANGES" -eq 0 ]; then
        log "already installed: nothing changed"
    else
        reconfigure
    fi
    if ! grep -qv '^[[:space:]]*\(#.*\)\{0,1\}$' "$PROJECTS" 2>/dev/null; then
        warn "$PROJECTS lists no projects yet: every job is refused until you add lines such as 'alice = ProjectA'"
    fi
    log "head node done (hooks: $layout layout; manifest: $MANIFEST)"
}

head_uninstall() {
    [ -d "$CONF_DIR" ] && lock_conf_dir
    mf_load
    if [ ${#MF_ORDER[@]} -eq 0 ]; then
        log "no manifest at $MANIFEST: nothing installed by cost-tags.sh here"
        return 0
    fi
    local k f rec sha backup i kept_backups=0 kept=0
    # 1. Configuration first, so Slurm stops using the files before they go.
    for k in "${MF_ORDER[@]}"; do
        case $k in edited*) ;; *) continue ;; esac
        f=${k#edited	}
        rec=$(mf_get "$k")
        sha=${rec%%	*}
        backup=$BACKUP_DIR/${rec#*	}
        if [ ! -f "$f" ]; then
            warn "$f is gone; nothing to restore there"
        elif [ "$(sha_of "$f")" = "$sha" ] && [ -e "$backup" ]; then
            restore_copy "$backup" "$f"
            rm -f "$backup"
            log "restored $f"
        else
            semantic_revert "$f" "$f" keep
            warn "$f was changed since the install: removed only cost-tags' own values; its original is kept in $backup"
            kept_backups=1
        fi
    done
    if mf_has "file	$OUR_CONF"; then
        remove_recorded "file	$OUR_CONF" || kept=1
    fi
    reconfigure
    # 2. Files, newest first; a timer is stopped before its units go.
    local units=0 job
    metrics_output_forget ""
    for job in budget prices metrics; do
        job_spec "$job"
        if recorded "$J_TIMER" || recorded "$J_SERVICE"; then units=1; fi
        recorded "$J_TIMER" && timer_disable
    done
    for ((i = ${#MF_ORDER[@]} - 1; i >= 0; i--)); do
        k=${MF_ORDER[$i]}
        case $k in
            file* | replaced*) remove_recorded "$k" || kept=1 ;;
        esac
    done
    [ "$units" = 1 ] && timer_forget
    # 3. Directories it created, deepest first, when empty.
    for ((i = ${#MF_ORDER[@]} - 1; i >= 0; i--)); do
        k=${MF_ORDER[$i]}
        case $k in dir*) ;; *) continue ;; esac
        f=${k#dir	}
        [ -d "$f" ] || continue
        if rmdir "$f" 2>/dev/null; then log "removed directory $f"; else
            warn "kept directory $f: it is not empty"
            kept=1
        fi
    done
    rm -f "$MANIFEST"
    if [ "$kept_backups" = 0 ]; then
        rm -rf "$BACKUP_DIR"
        rmdir "$MF_DIR" 2>/dev/null
    fi
    log "uninstalled$([ "$kept" = 1 ] && echo ' (some files were kept, see above)')"
}

# Removes (file) or restores (replaced) a recorded file unless it changed since; 1 if kept.
remove_recorded() {
    local k=$1 f rec sha
    mf_has "$k" || return 0
    f=${k#*	}
    rec=$(mf_get "$k")
    sha=${rec%%	*}
    mf_del "$k"
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then return 0; fi
    if [ "$(sha_of "$f" 2>/dev/null)" != "$sha" ]; then
        warn "kept $f: it was changed since the install"
        return 1
    fi
    case $k in
        file*)
            rm -f "$f" || die "cannot remove $f"
            log "removed $f"
            ;;
        replaced*)
            restore_copy "$BACKUP_DIR/${rec#*	}" "$f"
            rm -f "$BACKUP_DIR/${rec#*	}"
            log "restored the previous $f"
            ;;
    esac
    return 0
}

lock_conf_dir() {
    command -v flock >/dev/null 2>&1 || return 0
    exec 9<"$CONF_DIR" || return 0
    flock -w 120 9 || die "another cost-tags.sh is running on $CONF_DIR"
}

# ---------------------------------------------------------------------------------------
# Compute and login nodes

check_binaries() {
    local b out absent=""
    for b in $RELEASE_BINS; do [ -x "$BIN_DIR/$b" ] || absent="$absent $b"; done
    [ -z "$absent" ] || die "not found in $BIN_DIR:$absent. The head node installs them there (shared over NFS): run this script on the head node first, and check that $OPT is mounted here."
    for b in $RELEASE_BINS $OPTIONAL_BINS; do
        [ -f "$BIN_DIR/$b" ] || continue
        out=$("$BIN_DIR/$b" --version 2>&1 </dev/null) ||
            die "$BIN_DIR/$b does not run on this node (wrong CPU architecture or too new a glibc for this OS?): $out"
    done
    log "binaries in $BIN_DIR run here ($out)"
}

compute_install() {
    check_binaries
    if [ ! -f "$PROLOG_D/90_cost-tags-prolog" ] && [ ! -f "$HOOK_DIR/90_cost-tags-prolog" ]; then
        warn "no cost-tags prolog hook under $SCRIPTS_DIR: jobs on this node will not be tagged"
    fi
    if [ -d "$STATE_DIR" ]; then
        if [ "$(mode_of "$STATE_DIR")" != 755 ]; then
            chmod 755 "$STATE_DIR" || die "cannot chmod $STATE_DIR"
            changed "$STATE_DIR: mode 0755"
        fi
    else
        check_dir_writable "$STATE_DIR"
        mkdir -p "$STATE_DIR" || die "cannot create $STATE_DIR"
        chmod 755 "$STATE_DIR" || die "cannot chmod $STATE_DIR"
        [ "$(id -u)" = 0 ] && chown root:root "$STATE_DIR"
        changed "created $STATE_DIR"
    fi
    reconcile_install
    log "compute node done"
}

compute_uninstall() {
    local d
    for d in "$STATE_DIR" "$CACHE_DIR"; do
        if [ -d "$d" ]; then
            rm -rf -- "$d" || die "cannot remove $d"
            log "removed $d (the node's job ledger and cache)"
        fi
    done
    reconcile_remove
    log "compute node uninstalled"
}

# ---------------------------------------------------------------------------------------

cfn_get() {
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$2" | tail -n 1 |
        sed -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/"
}

main() {
    parse_args "$@"

    ROOT=${COST_TAGS_ROOT:-}
    while [ "${ROOT%/}" != "$ROOT" ]; do ROOT=${ROOT%/}; done
    if [ -n "$ROOT" ]; then
        case $ROOT in /*) ;; *) die "COST_TAGS_ROOT must be an absolute path, got '$ROOT'" ;; esac
        [ -d "$ROOT" ] || die "COST_TAGS_ROOT=$ROOT is not a directory"
    fi
    case $ROOT in *$'\t'* | *$'\n'*) die "COST_TAGS_ROOT must not contain tabs or newlines" ;; esac

    OPT=$ROOT/opt/slurm
    BIN_DIR=$OPT/bin
    ETC_DIR=$OPT/etc
    SCRIPTS_DIR=$ETC_DIR/scripts
    PROLOG_D=$SCRIPTS_DIR/prolog.d
    EPILOG_D=$SCRIPTS_DIR/epilog.d
    HOOK_DIR=$SCRIPTS_DIR/cost-tags
    MF_DIR=$ETC_DIR/cost-tags
    MANIFEST=$MF_DIR/manifest
    BACKUP_DIR=$MF_DIR/backup
    TOML=$ETC_DIR/cost-tags.toml
    PROJECTS=$ETC_DIR/projects_list.conf
    STATE_DIR=$ROOT/var/spool/cost-tags
    CACHE_DIR=$ROOT/run/cost-tags
    UNIT_DIR=$ROOT/etc/systemd/system
    CRON_DIR=$ROOT/etc/cron.d
    CONF_DIR=${CONF_DIR_OPT:-$ETC_DIR}
    METRICS_FILE=""
    [ -z "$METRICS_DIR" ] || METRICS_FILE=$ROOT${METRICS_DIR%/}/cost_tags.prom
    if [ -d "$CONF_DIR" ]; then CONF_DIR=$(cd "$CONF_DIR" && pwd -P); fi
    case $CONF_DIR in *$'\t'* | *$'\n'*) die "--slurm-conf-dir must not contain tabs or newlines" ;; esac
    SLURM_CONF_FILE=$CONF_DIR/slurm.conf
    OUR_CONF=$CONF_DIR/$OUR_CONF_NAME
    LUA=$CONF_DIR/job_submit.lua

    local cfn="" c
    for c in "$ROOT/etc/parallelcluster/cfnconfig" "$ROOT/opt/parallelcluster/cfnconfig"; do
        if [ -r "$c" ]; then
            cfn=$c
            break
        fi
    done
    [ -n "$cfn" ] || die "no $ROOT/etc/parallelcluster/cfnconfig: this is not an AWS ParallelCluster 3 node"
    local role stack region
    role=$(cfn_get cfn_node_type "$cfn")
    stack=$(cfn_get stack_name "$cfn")
    region=$(cfn_get cfn_region "$cfn")

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/cost-tags.XXXXXX") || die "cannot create a temporary directory"
    trap 'rm -rf "$WORK"' EXIT

    log "node role ${role:-?}, cluster ${stack:-?}, region ${region:-?}$([ -n "$ROOT" ] && echo ", root $ROOT")"
    case $role in
        HeadNode)
            if [ "$UNINSTALL" = 1 ]; then head_uninstall; else head_install; fi
            ;;
        ComputeFleet)
            [ -z "$RELEASE" ] || [ "$UNINSTALL" = 1 ] || log "compute node: --release is used on the head node only"
            [ "$BUDGETS" = 0 ] || [ "$UNINSTALL" = 1 ] || log "compute node: --budgets is used on the head node only"
            [ "$PRICES" = 1 ] || [ "$UNINSTALL" = 1 ] || log "compute node: --no-prices is used on the head node only"
            [ -z "$METRICS_DIR" ] || [ "$UNINSTALL" = 1 ] || log "compute node: --metrics is used on the head node only"
            if [ "$UNINSTALL" = 1 ]; then compute_uninstall; else compute_install; fi
            ;;
        LoginNode)
            if [ "$UNINSTALL" = 1 ]; then log "login node: nothing to uninstall"; else
                check_binaries
                log "login node done"
            fi
            ;;
        "") die "$cfn has no cfn_node_type" ;;
        *) die "unknown node role cfn_node_type=$role in $cfn (expected HeadNode, ComputeFleet or LoginNode)" ;;
    esac
}

main "$@"
