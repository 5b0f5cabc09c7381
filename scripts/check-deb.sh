#!/usr/bin/env bash
# Checks a built .deb without installing it on this machine:
#   scripts/check-deb.sh [PATH.deb]   (default: the newest target/debian/rostersync_*.deb)
# - extracts it (dpkg -x) into a throwaway root and checks every file the unit,
#   the man page and README.md name is there, with its mode;
# - applies its sysusers and tmpfiles files to that root (as root) and checks
#   the account, the drop group and /srv/rostersync;
# - runs the packaged binary: --version, and `check` on the packaged config
#   (its paths moved into the throwaway root), and checks that every folder
#   the config writes to is writable under the unit's sandbox;
# - runs the README demo and two HTTP targets under strace (when installed)
#   and checks every system call made is allowed by SystemCallFilter=;
# - `systemd-analyze verify` on the unit, and `systemd-analyze security
#   --offline=yes`, failing above an exposure of 2.0.
# Exit 0 when all hold; every failure is listed.
set -euo pipefail
cd "$(dirname "$0")/.."

max_exposure=2.0

deb=${1:-}
if [ -z "$deb" ]; then
    deb=$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/rostersync_*.deb 2>/dev/null | head -n 1 || true)
fi
[ -f "$deb" ] || { echo "check-deb.sh: no .deb given or found (run scripts/build-deb.sh)" >&2; exit 2; }
for tool in dpkg systemd-analyze; do
    command -v "$tool" >/dev/null || { echo "check-deb.sh: $tool is required" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # the service user runs `check` in there below
root=$work/root
mkdir -p "$root" "$work/control"
dpkg -x "$deb" "$root"
dpkg -e "$deb" "$work/control"
echo "checking $deb in $root"

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok:   $*"; }

# path, then the mode it must have (octal, as stat prints it)
expect_file() {
    local path=$1 mode=$2
    if [ ! -f "$root$path" ]; then
        fail "$path is not in the package"
    elif [ "$(stat -c %a "$root$path")" != "$mode" ]; then
        fail "$path has mode $(stat -c %a "$root$path"), expected $mode"
    else
        ok "$path ($mode)"
    fi
}

unit=/usr/lib/systemd/system/rostersync.service
bin=/usr/bin/rostersync
expect_file "$bin" 755
expect_file "$unit" 644
expect_file /usr/lib/sysusers.d/rostersync.conf 644
expect_file /usr/lib/tmpfiles.d/rostersync.conf 644
expect_file /etc/rostersync/config.toml 644
expect_file /usr/share/doc/rostersync/README.md 644
expect_file /usr/share/doc/rostersync/config.example.toml 644
expect_file /usr/share/doc/rostersync/copyright 644
expect_file /usr/share/bash-completion/completions/rostersync 644
expect_file /usr/share/zsh/vendor-completions/_rostersync 644
expect_file /usr/share/fish/vendor_completions.d/rostersync.fish 644
expect_file /usr/share/man/man1/rostersync.1.gz 644

if grep -qx /etc/rostersync/config.toml "$work/control/conffiles" 2>/dev/null; then
    ok "/etc/rostersync/config.toml is a conffile"
else
    fail "/etc/rostersync/config.toml is not listed in conffiles"
fi

# `apt purge`: packaging/postrm removes the credentials folder, and cargo-deb
# put its systemd part in place of #DEBHELPER# (tests/package_purge.rs runs it).
if grep -q '/etc/rostersync/credentials' "$work/control/postrm" 2>/dev/null \
    && grep -q 'deb-systemd-helper' "$work/control/postrm" && ! grep -q '#DEBHELPER#' "$work/control/postrm"; then
    ok "postrm removes /etc/rostersync/credentials on purge, with cargo-deb's systemd part"
else
    fail "the packaged postrm lacks the purge of /etc/rostersync/credentials or cargo-deb's systemd part"
fi

# The binary runs, and every subcommand has its man page and completions.
if version=$("$root$bin" --version); then
    ok "rostersync --version: $version"
else
    fail "$bin --version failed"
fi
commands=$("$root$bin" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && $1 != "help" && NF { print $1 }')
[ -n "$commands" ] || fail "no subcommands found in rostersync --help"
for command in $commands; do
    expect_file "/usr/share/man/man1/rostersync-$command.1.gz" 644
    for completion in /usr/share/bash-completion/completions/rostersync \
        /usr/share/zsh/vendor-completions/_rostersync \
        /usr/share/fish/vendor_completions.d/rostersync.fish; do
        grep -q -- "$command" "$root$completion" || fail "$completion does not know '$command'"
    done
done
if zcat "$root/usr/share/man/man1/rostersync.1.gz" | grep -q "^\.TH rostersync 1 \"\" \"${version:-rostersync ?}\""; then
    ok "rostersync.1 is a man page (.TH) for $version"
else
    fail "rostersync.1.gz does not start a man page"
fi
bash -n "$root/usr/share/bash-completion/completions/rostersync" || fail "the bash completion does not parse"

# What the unit names: ExecStart's binary and config, the directories.
unit_value() { sed -n "s/^$1=//p" "$root$unit"; }
read -r exec_bin exec_rest <<<"$(unit_value ExecStart)"
if [ -x "$root$exec_bin" ]; then ok "ExecStart's $exec_bin is in the package"; else fail "ExecStart names $exec_bin, not in the package"; fi
exec_config=$(sed -n 's/.*-c \([^ ]*\).*/\1/p' <<<"$exec_rest")
if [ -f "$root$exec_config" ]; then ok "ExecStart's config $exec_config is in the package"; else fail "ExecStart's config $exec_config is not in the package"; fi
# `systemctl reload` checks the config ExecStart reads before it signals.
if [ "$(unit_value ExecReload | head -n 1)" = "$exec_bin check -c $exec_config" ]; then
    ok "ExecReload= checks $exec_config first"
else
    fail "the first ExecReload= is not '$exec_bin check -c $exec_config'"
fi
[ "$(unit_value ConfigurationDirectory)" = rostersync ] || fail "ConfigurationDirectory= is not rostersync (/etc/rostersync)"
[ "$(unit_value StateDirectory)" = rostersync ] || fail "StateDirectory= is not rostersync (/var/lib/rostersync)"
[ "$(unit_value LogsDirectory)" = rostersync ] || fail "LogsDirectory= is not rostersync (/var/log/rostersync)"
rw_paths=$(unit_value ReadWritePaths | tr ' ' '\n' | sed 's/^-//')

# The account and the drop folders, applied to the throwaway root.
applied=
as_service=()
if [ "$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
    systemd-sysusers --root="$root" >/dev/null
    systemd-tmpfiles --root="$root" --create rostersync.conf
    user=$(unit_value User)
    uid=$(awk -F: -v u="$user" '$1 == u { print $3 }' "$root/etc/passwd")
    drop_group=$(unit_value SupplementaryGroups)
    drop_gid=$(awk -F: -v g="$drop_group" '$1 == g { print $3 }' "$root/etc/group")
    [ -n "$uid" ] && ok "sysusers creates User=$user (uid $uid)" || fail "sysusers does not create User=$user"
    [ -n "$drop_gid" ] && ok "sysusers creates SupplementaryGroups=$drop_group (gid $drop_gid)" || fail "sysusers does not create $drop_group"
    awk -F: -v g="$drop_group" -v u="$user" '$1 == g && ("," $4 ",") ~ ("," u ",") { found = 1 } END { exit !found }' "$root/etc/group" \
        || fail "$user is not a member of $drop_group (sudo -u $user would lack the drop folders)"
    for dir in /srv/rostersync /srv/rostersync/inbox/orgs /srv/rostersync/inbox/users /srv/rostersync/wbt-out; do
        got=$(stat -c '%a %u %g' "$root$dir" 2>/dev/null || echo missing)
        if [ "$got" = "2770 $uid $drop_gid" ]; then ok "$dir (2770 $user:$drop_group)"; else fail "$dir is '$got', expected '2770 $uid $drop_gid'"; fi
    done
    got=$(stat -c '%a %u' "$root/etc/rostersync/credentials" 2>/dev/null || echo missing)
    [ "$got" = "700 0" ] && ok "/etc/rostersync/credentials (700 root)" || fail "/etc/rostersync/credentials is '$got', expected '700 0'"
    # The state is the service user's alone (README, *Hardening*); the logs its group's too.
    for dir_mode in /var/lib/rostersync:700 /var/log/rostersync:750; do
        dir=${dir_mode%:*} mode=${dir_mode#*:}
        got=$(stat -c '%a %u' "$root$dir" 2>/dev/null || echo missing)
        [ "$got" = "$mode $uid" ] && ok "$dir ($mode $user)" || fail "$dir is '$got', expected '$mode $uid'"
    done
    applied=yes
    # `sudo -u rostersync rostersync check`, as README.md says, right after install.
    if [ -n "$uid" ] && [ -n "$drop_gid" ] && command -v setpriv >/dev/null; then
        gid=$(awk -F: -v u="$user" '$1 == u { print $4 }' "$root/etc/passwd")
        as_service=(setpriv --reuid="$uid" --regid="$gid" --groups="$drop_gid" --)
    fi
else
    echo "skip: sysusers/tmpfiles need root and systemd's tools"
fi

# The packaged config: valid, and everything it writes is writable in the sandbox.
config=$root/etc/rostersync/config.toml
writable() { # a path the service may write: its state and logs, or under ReadWritePaths
    case $1 in /var/lib/rostersync | /var/lib/rostersync/* | /var/log/rostersync | /var/log/rostersync/*) return 0 ;; esac
    local allowed
    for allowed in $rw_paths; do
        case $1 in "$allowed" | "$allowed"/*) return 0 ;; esac
    done
    return 1
}
paths=$(sed -n 's/^\(state_dir\|log_dir\|inbox\|dir\) *= *"\([^"]*\)".*/\2/p' "$config")
[ -n "$paths" ] || fail "no paths found in the packaged config"
for path in $paths; do
    case $path in
        /*) writable "$path" && ok "config path $path is writable under the sandbox" \
                || fail "config path $path is outside StateDirectory, LogsDirectory and ReadWritePaths" ;;
        *) fail "config path $path is relative (the packaged config must name system paths)" ;;
    esac
done
sed -e "s|\"/var/|\"$root/var/|" -e "s|\"/srv/|\"$root/srv/|" "$config" >"$work/config.toml"
if out=$("${as_service[@]}" "$root$bin" check -c "$work/config.toml" 2>&1) && [ "$out" = ok ]; then
    ok "rostersync check accepts the packaged config${as_service:+ (as the service user)}"
else
    fail "rostersync check refuses the packaged config: $out"
fi

# README.md names these paths: each must be in the package (or made by tmpfiles).
for path in $(grep -o '/\(usr\|etc/rostersync\|srv/rostersync\)/[A-Za-z0-9._/-]*[A-Za-z0-9_]' README.md | sort -u); do
    case $path in
        */credentials/?*) continue ;; # files the admin writes
        /srv/rostersync/inbox/?*/?* | /srv/rostersync/inbox/payroll*) continue ;; # examples under the drop root
        /srv/* | /etc/rostersync/credentials*) [ -n "$applied" ] || continue ;; # made by tmpfiles
    esac
    if [ -e "$root$path" ]; then ok "README's $path"; else fail "README.md names $path, which the package does not provide"; fi
done

# systemd: the unit verifies, with ExecStart pointing at the extracted binary.
mkdir -p "$work/units"
sed "s|$bin|$root$bin|" "$root$unit" >"$work/units/rostersync.service"
if out=$(systemd-analyze verify --man=no "$work/units/rostersync.service" 2>&1); then
    ok "systemd-analyze verify"
else
    fail "systemd-analyze verify: $out"
fi
exposure=$(systemd-analyze security --offline=yes "$work/units/rostersync.service" | sed -n 's/.*Overall exposure level for rostersync.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ]; then
    fail "systemd-analyze security printed no exposure level"
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
    ok "systemd-analyze security: exposure $exposure (at most $max_exposure)"
else
    fail "systemd-analyze security: exposure $exposure, above $max_exposure"
fi

# The unit's SystemCallFilter= allows every system call the daemon makes: the
# packaged binary runs the demo (files in, archive, report, SIGHUP, status
# over the socket, SIGTERM) and reaches two HTTP targets, under strace.
if command -v strace >/dev/null; then
    expand_group() { # @group -> its system calls, nested groups expanded
        local entry
        for entry in $(systemd-analyze syscall-filter "$1" | awk 'NR > 1 && NF && $1 !~ /^#/ { print $1 }'); do
            case $entry in @*) expand_group "$entry" ;; *) echo "$entry" ;; esac
        done
    }
    expand_list() { local item; for item in "$@"; do case $item in @*) expand_group "$item" ;; *) echo "$item" ;; esac; done; }
    allowed=$(unit_value SystemCallFilter | grep -v '^~' | tr ' ' '\n' | grep . || true)
    denied=$(unit_value SystemCallFilter | sed -n 's/^~//p' | tr ' ' '\n' | grep . || true)
    # shellcheck disable=SC2086
    expand_list $allowed | sort -u >"$work/allowed"
    # shellcheck disable=SC2086
    expand_list $denied | sort -u >"$work/denied"
    comm -23 "$work/allowed" "$work/denied" >"$work/filter"

    demo=$work/demo
    mkdir -p "$demo"
    cp -r example "$demo/"
    rm -rf "$demo"/example/run "$demo"/example/state "$demo"/example/log "$demo"/example/wbt-out "$demo"/example/inbox/*/archive
    cp config.example.toml "$demo/config.toml"
    strace -f -qq -o "$work/trace-run" "$root$bin" run -c "$demo/config.toml" >"$work/run.log" 2>&1 &
    tracer=$!
    for _ in $(seq 100); do
        [ "$(ls "$demo"/example/inbox/users/archive/*.report.json 2>/dev/null | wc -l)" -ge 1 ] && break
        sleep 0.2
    done
    daemon=$(pgrep -P "$tracer" || true)
    "$root$bin" status -c "$demo/config.toml" >/dev/null 2>&1 || fail "status over the socket failed while the demo ran"
    if [ -n "$daemon" ]; then
        kill -HUP "$daemon"
        sleep 1
        kill -TERM "$daemon"
        wait "$tracer" || fail "the demo daemon did not stop cleanly on SIGTERM: $(tail -n 3 "$work/run.log")"
    else
        kill "$tracer" 2>/dev/null || true
        wait "$tracer" || true
        fail "the demo daemon did not start under strace: $(tail -n 3 "$work/run.log")"
    fi
    [ -n "$(ls "$demo"/example/wbt-out 2>/dev/null)" ] || fail "the demo wrote no WBT file (see $work/run.log)"
    cat >"$demo/http.toml" <<EOF
[daemon]
state_dir = "hstate"
log_dir = "hlog"
[[source]]
name = "u"
kind = "users"
inbox = "hin"
targets = ["plain", "tls"]
[[target]]
name = "plain"
kind = "collaborator"
url = "http://127.0.0.1:9"
token_env = "ROSTERSYNC_CHECK_TOKEN"
[[target]]
name = "tls"
kind = "scim"
url = "https://localhost:9/scim/v2"
token_env = "ROSTERSYNC_CHECK_TOKEN"
EOF
    ROSTERSYNC_CHECK_TOKEN=x strace -f -qq -o "$work/trace-http" "$root$bin" check --online -c "$demo/http.toml" >/dev/null 2>&1 || true
    cat "$work/trace-run" "$work/trace-http" | sed -n 's/^[0-9]* *\([a-z_0-9]*\)(.*/\1/p' | sort -u >"$work/used"
    outside=$(comm -23 "$work/used" "$work/filter" | tr '\n' ' ')
    if [ "$(wc -l <"$work/used")" -lt 20 ]; then
        fail "strace saw only $(wc -l <"$work/used") system calls: the trace did not work"
    elif [ -n "$outside" ]; then
        fail "the daemon makes system calls SystemCallFilter= refuses: $outside"
    else
        ok "SystemCallFilter= allows all $(wc -l <"$work/used") system calls the daemon made"
    fi
else
    echo "skip: strace is not installed (system calls not checked against SystemCallFilter=)"
fi

if [ "$failures" -gt 0 ]; then
    echo "check-deb.sh: $failures check(s) failed"
    exit 1
fi
echo "check-deb.sh: all checks passed"
