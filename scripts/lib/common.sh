# shellcheck shell=bash
# Shared helpers for scripts/setup and scripts/services. Source it; do not run it.
# Callers must set ROOT (the checkout) before sourcing.
# shellcheck disable=SC2034  # STATE, BIN_DIR, VENV, SVC_ROOT, ENV_FILE are for the callers

: "${ROOT:?ROOT must be set before sourcing scripts/lib/common.sh}"

STATE="$ROOT/.state"
BIN_DIR="$STATE/bin"
VENV="$STATE/venv"
SVC_ROOT="$STATE/services"
ENV_FILE="$STATE/services.env"

# ---- messages -------------------------------------------------------------

_prog="$(basename "$0")"

log() { printf '%s: %s\n' "$_prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$_prog" "$*" >&2; exit 1; }

# show_tail FILE [LINES]: print the end of a log file, indented, to stderr.
show_tail() {
    local file="$1" lines="${2:-30}"
    if [[ -s "$file" ]]; then
        printf '%s: --- last %s lines of %s ---\n' "$_prog" "$lines" "$file" >&2
        tail -n "$lines" "$file" | sed 's/^/    /' >&2
        printf '%s: --- end of %s ---\n' "$_prog" "$file" >&2
    else
        printf '%s: (%s is empty or missing)\n' "$_prog" "$file" >&2
    fi
}

# now_ms: wall clock in milliseconds (for timings).
now_ms() { date +%s%3N; }

# elapsed START_MS: seconds since START_MS, as "1.23".
elapsed() {
    local d=$(( $(now_ms) - $1 ))
    printf '%d.%02d' $(( d / 1000 )) $(( (d % 1000) / 10 ))
}

# ---- processes --------------------------------------------------------------

# pid_alive PID: true when PID exists and is not a zombie (a zombie still answers kill -0).
pid_alive() {
    local pid="$1" stat
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    # Field 3 is the state; the command name in field 2 may contain spaces, so cut after ')'.
    stat="${stat##*) }"
    [[ "${stat%% *}" != Z && "${stat%% *}" != X ]]
}

# read_pid FILE: print the PID stored in FILE (first line), or nothing.
read_pid() {
    local pid=""
    if [[ -r "$1" ]]; then read -r pid < "$1" || true; fi
    [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
    return 0
}

# pid_is PID COMM: true when PID is alive and its command name (/proc/PID/comm) is COMM, so
# that a stale pidfile whose number was reused by another program is not mistaken for ours.
pid_is() {
    pid_alive "$1" && [[ -z "${2:-}" || "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]]
}

# pidfile_alive FILE [COMM]: true when FILE names a live process (called COMM).
pidfile_alive() {
    local pid
    pid="$(read_pid "$1")"
    [[ -n "$pid" ]] && pid_is "$pid" "${2:-}"
}

# wait_dead PID TIMEOUT_S: wait until PID is gone (or a zombie); false on timeout.
wait_dead() {
    local pid="$1" deadline=$(( $(now_ms) + $2 * 1000 ))
    while pid_alive "$pid"; do
        (( $(now_ms) < deadline )) || return 1
        sleep 0.05
    done
}

# stop_pid PID NAME TIMEOUT_S [COMM]: SIGTERM, wait, then SIGKILL if it did not go.
# With COMM, a PID that now belongs to another program is left alone.
stop_pid() {
    local pid="$1" name="$2" timeout="${3:-15}" comm="${4:-}"
    pid_alive "$pid" || return 0
    if ! pid_is "$pid" "$comm"; then
        log "$name: pid $pid is now $(cat "/proc/$pid/comm" 2>/dev/null), not $comm: stale pidfile, left alone"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_dead "$pid" "$timeout"; then
        log "$name (pid $pid) did not stop within ${timeout}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_dead "$pid" 5 || die "$name (pid $pid) survived SIGKILL"
    fi
}

# wait_until TIMEOUT_S CMD...: run CMD until it succeeds; false on timeout.
wait_until() {
    local timeout="$1"; shift
    local deadline=$(( $(now_ms) + timeout * 1000 ))
    until "$@" >/dev/null 2>&1; do
        (( $(now_ms) < deadline )) || return 1
        sleep 0.1
    done
}

# port_open PORT [HOST]: true when something accepts TCP connections there.
port_open() {
    # shellcheck disable=SC2016  # $1 and $2 belong to the inner shell
    timeout 1 bash -c ': > "/dev/tcp/$2/$1"' _ "$1" "${2:-127.0.0.1}" 2>/dev/null
}

# port_pids PORT: PIDs listening on TCP PORT (any address), one per line.
port_pids() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# spawn_daemon PIDFILE LOGFILE CMD...: start CMD in its own session (it survives the
# caller, its terminal and its process group), stdin from /dev/null, output to LOGFILE.
# The PID written to PIDFILE is CMD's own PID (exec keeps it).
spawn_daemon() {
    local pidfile="$1" logfile="$2"; shift 2
    rm -f "$pidfile"
    # setsid -f forks, so the wrapper shell (not setsid) records its own PID, then execs CMD.
    # shellcheck disable=SC2016  # $$, $0 and $@ belong to the inner shell
    setsid -f bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1
    local deadline=$(( $(now_ms) + 5000 ))
    until [[ -s "$pidfile" ]]; do
        (( $(now_ms) < deadline )) || die "could not start $1 (no pidfile $pidfile)"
        sleep 0.02
    done
}
