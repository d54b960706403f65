#!/usr/bin/env bash
# Flotilla as separate processes on loopback, the way an operator runs it on hosts: etcd, flotilla-apiserver,
# two flotilla-controller-managers (one leads, the other waits on the lease) and, to try it out, simulated member
# clusters joined with `flotilla join`. Ctrl-C (or SIGTERM) stops everything; run it again to resume.
#
#   cargo build --release --bins && deploy/local/run.sh
#
# Settings, from the environment:
#   FLOTILLA_BIN       where the binaries are                      (target/release)
#   FLOTILLA_DATA      etcd data, certificates, kubeconfig, logs    (./flotilla-local)
#   ETCD_PORT          etcd's client port; its peer port is +1      (2379)
#   APISERVER_PORT     the federation apiserver's HTTPS port        (6443)
#   METRICS_PORT       first controller manager's /metrics; +1      (10258)
#   SIMULATED_MEMBERS  simulated members to run and join; 0: none   (3)
#   MEMBER_PORT        the first member's HTTPS port; others follow (7443)
#   ETCD               the etcd binary (Debian's etcd-server or the official release) (etcd)
set -euo pipefail

BIN=${FLOTILLA_BIN:-target/release}
DATA=${FLOTILLA_DATA:-./flotilla-local}
ETCD_PORT=${ETCD_PORT:-2379}
APISERVER_PORT=${APISERVER_PORT:-6443}
METRICS_PORT=${METRICS_PORT:-10258}
SIMULATED_MEMBERS=${SIMULATED_MEMBERS:-3}
MEMBER_PORT=${MEMBER_PORT:-7443}
ETCD=${ETCD:-etcd}

for binary in flotilla-apiserver flotilla-controller-manager flotilla; do
    [[ -x $BIN/$binary ]] || { echo "error: $BIN/$binary is missing: cargo build --release --bins" >&2; exit 1; }
done
command -v "$ETCD" >/dev/null || { echo "error: no $ETCD: apt-get install etcd-server" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "error: kubectl is not on the PATH" >&2; exit 1; }

mkdir -p "$DATA/logs"
KUBECONFIG_FILE=$DATA/kubeconfig
trap 'trap - EXIT; kill $(jobs -p) 2>/dev/null; wait; echo "Stopped."' EXIT INT TERM

# Polls `$@` every 100 ms for up to 30 s.
wait_for() {
    local what=$1; shift
    for _ in $(seq 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "error: $what did not come up; see $DATA/logs" >&2
    exit 1
}

echo "etcd                    http://127.0.0.1:$ETCD_PORT"
"$ETCD" --name flotilla-local --data-dir "$DATA/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "flotilla-local=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --experimental-watch-progress-notify-interval 5s \
    >"$DATA/logs/etcd.log" 2>&1 &
wait_for etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

echo "flotilla-apiserver      https://127.0.0.1:$APISERVER_PORT"
"$BIN/flotilla-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" --data-dir "$DATA/apiserver" \
    --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" --write-kubeconfig "$KUBECONFIG_FILE" \
    >"$DATA/logs/apiserver.log" 2>&1 &
wait_for flotilla-apiserver kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz

for i in 0 1; do
    echo "controller manager $((i + 1))    metrics http://127.0.0.1:$((METRICS_PORT + i))/metrics"
    "$BIN/flotilla-controller-manager" --kubeconfig "$KUBECONFIG_FILE" \
        --metrics-bind-address "127.0.0.1:$((METRICS_PORT + i))" \
        >"$DATA/logs/controller-manager-$((i + 1)).log" 2>&1 &
done

# Simulated members (Flotilla's own Kubernetes API plus a workload simulator; no container runs), one process
# each, joined as a real cluster would be.
for i in $(seq "$SIMULATED_MEMBERS"); do
    port=$((MEMBER_PORT + i - 1))
    echo "simulated member-$i       https://127.0.0.1:$port"
    "$BIN/flotilla" member --name "member-$i" --data-dir "$DATA/members" --port "$port" \
        >"$DATA/logs/member-$i.log" 2>&1 &
done
for i in $(seq "$SIMULATED_MEMBERS"); do
    member_config=$DATA/members/member-$i/kubeconfig
    wait_for "member-$i" kubectl --kubeconfig "$member_config" get --raw /readyz
    if kubectl --kubeconfig "$KUBECONFIG_FILE" get cluster "member-$i" >/dev/null 2>&1; then
        continue # joined on an earlier run
    fi
    "$BIN/flotilla" join "member-$i" --kubeconfig "$KUBECONFIG_FILE" --cluster-kubeconfig "$member_config" \
        --cluster-context "member-$i" --labels "region=region-$i" >/dev/null
done
if ((SIMULATED_MEMBERS > 0)); then
    kubectl --kubeconfig "$KUBECONFIG_FILE" wait --for=condition=Ready clusters --all --timeout=60s >/dev/null
fi

echo
echo "Flotilla is ready. Logs in $DATA/logs."
echo "  export KUBECONFIG=$KUBECONFIG_FILE"
echo "  kubectl get clusters"
echo "  $BIN/flotilla status"
wait
