#!/usr/bin/env bash
# Makes the federation's credentials and prints them as Secrets for the flotilla-system namespace:
#   flotilla-apiserver-certs               the serving certificate and key, and the CA that signs them (also the
#                                          client CA: a client certificate it signs authenticates CN/O)
#   flotilla-ca                            the CA's key, to sign client certificates later (mounted nowhere)
#   flotilla-tokens                        tokens.csv: the admin's and the controller manager's bearer tokens
#   flotilla-controller-manager-kubeconfig the controller manager's kubeconfig (the in-cluster Service)
#   flotilla-admin-kubeconfig              an admin kubeconfig for https://FIRST_NAME (what you give kubectl)
#
#   deploy/kubernetes/certificates.sh flotilla.example.com 203.0.113.10 > secrets.yaml
#
# Arguments: the names and addresses clients outside the host cluster use (the first is the admin kubeconfig's
# server). Keep secrets.yaml (and the CA key inside it) out of version control. Needs openssl and kubectl.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 EXTERNAL_NAME [MORE_NAMES_OR_IPS…]" >&2; exit 2; }
NAMESPACE=${NAMESPACE:-flotilla-system}
SERVICE=flotilla-apiserver
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sans="DNS:$SERVICE,DNS:$SERVICE.$NAMESPACE,DNS:$SERVICE.$NAMESPACE.svc,DNS:$SERVICE.$NAMESPACE.svc.cluster.local"
sans+=",DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then sans+=",IP:$name"; else sans+=",DNS:$name"; fi
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=flotilla-ca" -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$SERVICE" \
    -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 825 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n' "$sans") \
    -out "$work/tls.crt" 2>/dev/null

admin_token=$(openssl rand -hex 32)
controller_token=$(openssl rand -hex 32)
{
    echo "$admin_token,flotilla-admin,flotilla-admin,\"system:masters\""
    echo "$controller_token,system:flotilla-controller-manager,flotilla-controller-manager,\"system:masters\""
} >"$work/tokens.csv"

kubeconfig() { # server token > file
    local ca
    ca=$(base64 -w0 <"$work/ca.crt")
    cat <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: flotilla
    cluster: {server: "$1", certificate-authority-data: $ca}
users:
  - name: flotilla
    user: {token: $2}
contexts:
  - name: flotilla
    context: {cluster: flotilla, user: flotilla}
current-context: flotilla
YAML
}
kubeconfig "https://$SERVICE.$NAMESPACE.svc:443" "$controller_token" >"$work/controller-manager.kubeconfig"
kubeconfig "https://$1" "$admin_token" >"$work/admin.kubeconfig"

secret() { # name files…
    local name=$1; shift
    echo "---"
    kubectl create secret generic "$name" --namespace "$NAMESPACE" --dry-run=client -o yaml "$@"
}
secret flotilla-apiserver-certs --from-file=tls.crt="$work/tls.crt" --from-file=tls.key="$work/tls.key" \
    --from-file=ca.crt="$work/ca.crt"
secret flotilla-ca --from-file=ca.crt="$work/ca.crt" --from-file=ca.key="$work/ca.key"
secret flotilla-tokens --from-file=tokens.csv="$work/tokens.csv"
secret flotilla-controller-manager-kubeconfig --from-file=kubeconfig="$work/controller-manager.kubeconfig"
secret flotilla-admin-kubeconfig --from-file=kubeconfig="$work/admin.kubeconfig"
