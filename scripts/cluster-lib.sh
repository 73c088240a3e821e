# Shared by the bench scripts (sourced, not run): start a Ferry cluster from
# the release binaries and measure its processes. Expects BIN (the binaries'
# directory), DATA (a scratch directory) and PIDS (an array the caller's
# cleanup kills); sets SERVER to the cluster's comma-separated addresses.
# FERRYD_ARGS, if set, is added to every node's command line.

start_cluster() { # nodes base_port data_groups
  local nodes=$1 base=$2 groups=$3 peers="" i dir
  for i in $(seq 1 "$nodes"); do peers+="${peers:+,}$i=127.0.0.1:$((base + i))"; done
  for i in $(seq 1 "$nodes"); do
    dir="$DATA/n$nodes-g$groups-$i"
    if [ "$nodes" = 1 ]; then
      "$BIN/ferryd" --data-dir "$dir" --listen "127.0.0.1:$((base + i))" --data-groups "$groups" ${FERRYD_ARGS:-} >"$dir.log" 2>&1 &
    else
      "$BIN/ferryd" --node-id "$i" --data-dir "$dir" --listen "127.0.0.1:$((base + i))" \
        --peers "$peers" --data-groups "$groups" ${FERRYD_ARGS:-} >"$dir.log" 2>&1 &
    fi
    PIDS+=($!)
  done
  SERVER=$(echo "$peers" | sed 's/[0-9]*=//g')
  # Up once every group (group 0 and the data groups) knows its leader.
  for _ in $(seq 1 150); do
    "$BIN/ferry" --server "$SERVER" cluster status --json 2>/dev/null | python3 -c "
import json, sys
groups = json.load(sys.stdin)['groups']
sys.exit(0 if len(groups) == $groups + 1 and all(g['leader_id'] for g in groups) else 1)" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "the $nodes-node cluster did not come up" >&2
  exit 1
}

# Stops every process the script started (PIDS), Ferry nodes or not.
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

# Bytes the running nodes have written to storage (/proc/PID/io write_bytes:
# RocksDB's WAL, flushes and compactions alike).
disk_written() {
  local total=0 pid
  for pid in "${PIDS[@]}"; do total=$((total + $(awk '/^write_bytes/ {print $2}' "/proc/$pid/io"))); done
  echo "$total"
}

# The highest peak resident memory (VmHWM, bytes) of the running nodes.
peak_rss() {
  local most=0 pid kb
  for pid in "${PIDS[@]}"; do
    kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
    [ "$kb" -gt "$most" ] && most=$kb
  done
  echo $((most * 1024))
}
