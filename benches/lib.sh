# Shared by the benchmarks (sourced, not run): a private network namespace for the daemons,
# keel's engine and a dockerd of our own in it, memory figures, and the results file that
# all.sh turns into the table and the plot.
#
# Every daemon runs in a network namespace of its own with only `lo` up: keel's engine makes
# its keel0 bridge and iptables chains at start, dockerd its own state, the registry listens
# on 127.0.0.1, and none of it reaches the host's network (or docker0, or another keel engine
# that a test is running at the same time). The docker CLI stays outside: it talks to the
# daemons over unix sockets, which are files, not network.

# Appended to by every benchmark; all.sh sets it, a lone script writes its own in its work dir.
RESULTS=${RESULTS:-}

netns_pid=
cleanups=()
# Runs the cleanups in reverse order (daemons before the directories they use), once.
run_cleanups() {
  local i
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[$i]}" || true; done
  cleanups=()
}
trap run_cleanups EXIT
trap 'exit 130' INT TERM

# Kills one pid we started and waits for it (quietly if it is gone already).
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Waits until process $1 is in a $2 namespace (net, mnt...) other than ours: `unshare`
# has made it and exec'd its command.
wait_for_own_ns() {
  local pid=$1 kind=$2
  for _ in $(seq 50); do
    [ "$(readlink "/proc/$pid/ns/$kind")" != "$(readlink "/proc/self/ns/$kind")" ] && return 0
    sleep 0.05
  done
}

# A network namespace held by a sleeping process; `in_netns CMD` runs CMD inside it.
start_netns() {
  unshare --net sleep infinity &
  netns_pid=$!
  cleanups+=("stop_pid $netns_pid")
  wait_for_own_ns "$netns_pid" net
  nsenter -t "$netns_pid" -n ip link set lo up
}
in_netns() { nsenter -t "$netns_pid" -n "$@"; }
in_netns_prefix() { echo "nsenter -t $netns_pid -n"; }

# keel's engine on $1/keel.sock, state under $1; sets keel_pid.
start_keel() {
  local dir=$1
  nsenter -t "$netns_pid" -n target/release/step07-engine-api serve --socket "$dir/keel.sock" \
    --root "$dir/keel" --runtime-root "$dir/keel-run" 2>"$dir/keel.log" &
  keel_pid=$!
  # Containers outlive the engine (each has its monitor): remove them before stopping it.
  cleanups+=("remove_all unix://$dir/keel.sock; stop_pid $keel_pid")
  wait_for_socket "$dir/keel.sock" "$dir/keel.log" "$keel_pid"
}

# A dockerd with its own data root, exec root, socket and containerd namespace, no bridge
# and no iptables rules; sets dockerd_pid. It starts its own containerd (a child).
start_dockerd() {
  local dir=$1
  # Debian's docker.io (its service need not run; this dockerd is our own).
  command -v dockerd >/dev/null || apt-get install -y -qq docker.io >/dev/null
  nsenter -t "$netns_pid" -n dockerd --data-root "$dir/docker" --exec-root "$dir/docker-exec" \
    --pidfile "$dir/dockerd.pid" --host "unix://$dir/docker.sock" \
    --bridge none --iptables=false --ip-masq=false --ip-forward=false \
    --containerd-namespace keel-bench --containerd-plugins-namespace keel-bench-plugins \
    >"$dir/dockerd.log" 2>&1 &
  dockerd_pid=$!
  cleanups+=("remove_all unix://$dir/docker.sock; stop_pid $dockerd_pid; umount -R $dir/docker 2>/dev/null")
  wait_for_socket "$dir/docker.sock" "$dir/dockerd.log" "$dockerd_pid"
}

wait_for_socket() {
  local sock=$1 log=$2 pid=$3
  for _ in $(seq 300); do
    [ -S "$sock" ] && docker -H "unix://$sock" version >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the daemon for $sock did not answer within 30 s; its log ($log) ends with:" >&2
  tail -20 "$log" >&2
  return 1
}

# Every container of one engine, removed (prune first: one call for the stopped ones).
remove_all() {
  local host=$1 ids
  [ -S "${host#unix://}" ] || return 0
  docker -H "$host" container prune -f >/dev/null 2>&1 || true
  ids=$(docker -H "$host" ps -aq 2>/dev/null || true)
  [ -z "$ids" ] || echo "$ids" | xargs -n 50 docker -H "$host" rm -f >/dev/null 2>&1 || true
}

# A process's memory from /proc/PID/smaps_rollup, in kB: RSS, PSS (shared pages divided
# among the processes that map them) and private (pages only this process maps).
mem_kb() { awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Private_(Clean|Dirty):/ {v+=$2} END {print r, p, v}' "/proc/$1/smaps_rollup"; }
mem_text() { mem_kb "$1" | awk '{printf "RSS %d kB, PSS %d kB, private %d kB", $1, $2, $3}'; }
# The median RSS, PSS and private (kB) of the pids on stdin, their count and the largest
# RSS: "N RSS PSS PRIVATE MAX_RSS" ("0 0 0 0 0" for none).
mem_median_kb() {
  local pid
  while read -r pid; do mem_kb "$pid" 2>/dev/null || true; done | python3 -c '
import statistics, sys
rows = [list(map(int, line.split())) for line in sys.stdin if line.strip()]
if not rows:
    print("0 0 0 0 0"); sys.exit()
r, p, v = (statistics.median_low([row[i] for row in rows]) for i in range(3))
print(len(rows), r, p, v, max(row[0] for row in rows))'
}
mem_median_text() { awk '{printf "%d processes, median RSS %d kB, PSS %d kB, private %d kB (max RSS %d kB)", $1, $2, $3, $4, $5}'; }

# One line of the results file: SECTION BENCHMARK KEEL PEER PEER_VALUE UNIT [GOAL].
record() {
  [ -n "$RESULTS" ] || return 0
  local IFS=$'\t'
  echo "$*" >>"$RESULTS"
}
