#!/usr/bin/env bash
# `make demo`: bring a 3-node cluster up and show the Kubernetes network model with real packets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PODNET=.venv/bin/podnet
KUBECTL=.venv/bin/kubectl

# Print the command as one could paste it (arguments with spaces or shell characters quoted),
# then run it.
show() {
    local line="" arg
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then line+=" $arg"
        else line+=" '${arg//\'/\'\\\'\'}'"; fi
    done
    printf '\n$%s\n' "$line"
    "$@"
}

show $PODNET up --nodes 3
show $PODNET apply -f examples/demo.yaml
printf '\nwaiting for the pods to run'
for _ in $(seq 100); do
    if ! $PODNET get pods -n demo --no-headers | grep -qv ' Running '; then break; fi
    printf .; sleep 0.2
done
echo
show $PODNET get nodes -o wide
show $PODNET get pods -n demo -o wide

ip_of() { $KUBECTL --kubeconfig "$($PODNET kubeconfig)" get pod -n demo "$1" \
              -o jsonpath='{.status.podIP}'; }
CLIENT_IP=$(ip_of client)
CLIENT_NODE=$($KUBECTL --kubeconfig "$($PODNET kubeconfig)" get pod -n demo client \
                  -o jsonpath='{.spec.nodeName}')
echo
echo "Every pod has its own IP. The client pod ($CLIENT_IP, on $CLIENT_NODE) calls each web pod"
echo "by its IP, across nodes; each answers with what it saw: the client's own pod IP, no NAT."
for pod in web-1 web-2 web-3; do
    show $PODNET exec -n demo client -- curl -s "http://$(ip_of $pod):8080/hello"
done
echo
echo "ICMP crosses nodes too, and the pod has its own hostname and the cluster's DNS settings:"
show $PODNET exec -n demo client -- ping -c1 -W2 "$(ip_of web-3)"
show $PODNET exec -n demo client -- hostname
show $PODNET exec -n demo client -- cat /etc/resolv.conf
echo
echo "No one set routes by hand: the CNI plugin gave each pod a veth and a /32 route on its"
echo "node, and the agents route each node's pod CIDR via that node (host-gw):"
show $PODNET exec "node/$CLIENT_NODE" -- ip route

K="$KUBECTL --kubeconfig $($PODNET kubeconfig)"
WEB_VIP=$($K get svc -n demo web -o jsonpath='{.spec.clusterIP}')
printf '\nwaiting for the LoadBalancer address'
LB_IP=
for _ in $(seq 100); do
    LB_IP=$($K get svc -n demo web-lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
    [ -n "$LB_IP" ] && break
    printf .; sleep 0.2
done
echo
echo
echo "Services: a stable virtual IP in front of the pods. The Service web ($WEB_VIP) spreads"
echo "the client's requests over the three web pods (the kernel picks one per connection):"
show $PODNET get svc -n demo
for _ in 1 2 3 4 5 6; do
    $PODNET exec -n demo client -- curl -s "http://$WEB_VIP/" | grep -o '"pod": "[^"]*"'
done
echo
echo "Cluster DNS: the client finds the Service by its name, through its search path"
echo "(demo.svc.cluster.local ...) and the cluster DNS at 10.96.0.10:"
show $PODNET exec -n demo client -- getent hosts web
show $PODNET exec -n demo client -- getent hosts web-lb.demo.svc.cluster.local
echo
echo "From outside the cluster: the external host (172.18.0.2) reaches the NodePort through any"
echo "node (policy Cluster: masqueraded, the pod sees the node's address), and the LoadBalancer"
echo "address $LB_IP, which one node announces on the LAN; web-lb has externalTrafficPolicy"
echo "Local: only nodes with a web pod serve it, and the pod sees the external host's own address."
show $PODNET exec external -- curl -s "http://172.18.0.11:30080/"
echo
show $PODNET exec external -- curl -s "http://$LB_IP/"
echo
echo "Ingress: HTTP by host and path into Services, through HAProxy (in the ingress-podnet"
echo "namespace, behind a LoadBalancer address), which podnet's ingress controller programs:"
show $PODNET apply -f examples/ingress.yaml
printf '\nwaiting for the route'
ING_IP=
for _ in $(seq 100); do
    ING_IP=$($K get ingress -n demo web -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
    if [ -n "$ING_IP" ] && [ "$($PODNET exec external -- curl -s -o /dev/null -w '%{http_code}' \
            -H 'Host: web.demo.test' "http://$ING_IP/")" = 200 ]; then break; fi
    printf .; sleep 0.2
done
echo
show $K get ingress -n demo
echo
echo "From the external host, by name: a web pod answers, and sees who asked in X-Forwarded-For."
show $PODNET exec external -- curl -s -H "Host: web.demo.test" "http://$ING_IP/from-outside"
echo
echo "A host no Ingress names gets the ingress's own 404:"
show $PODNET exec external -- curl -s -w ' (HTTP %{http_code})\n' -H "Host: nobody.test" "http://$ING_IP/"
echo
echo "It is all one nftables table per node, in sets and maps (here the ClusterIPs):"
show $PODNET exec "node/$CLIENT_NODE" -- nft list set ip "podnet-${PODNET_CLUSTER:-podnet}" cluster-ips
echo
echo "NetworkPolicy. Before deploying anything, ask what examples/policy.yaml would do (offline:"
echo "the manifests alone, no cluster needed; the pods' addresses are made up):"
show $PODNET policy matrix -f examples/demo.yaml -f examples/policy.yaml --namespaces demo
show $PODNET apply -f examples/policy.yaml
WEB1_IP=$(ip_of web-1)
echo
echo "Now web-1 refuses the client at once (the kernel rejects it; no timeout), and says why:"
show $PODNET exec -n demo client -- curl -sS --max-time 5 "http://$WEB1_IP:8080/" || true
show $PODNET policy explain -n demo --from client --to web-1 --port 8080/TCP
echo
echo "Label the client as a frontend: the same request passes."
show $KUBECTL --kubeconfig "$($PODNET kubeconfig)" label pod -n demo client role=frontend
for _ in $(seq 50); do
    $PODNET exec -n demo client -- curl -s --max-time 2 "http://$WEB1_IP:8080/" >/dev/null && break
    sleep 0.1
done
show $PODNET exec -n demo client -- curl -sS --max-time 5 "http://$WEB1_IP:8080/allowed"
show $PODNET policy explain -n demo --from client --to web-1 --port 8080/TCP
echo
echo "The cluster is running; the real kubectl works against it:"
echo "  export KUBECONFIG=\$($PODNET kubeconfig)"
echo "  $KUBECTL get pods -A -o wide"
echo "  $PODNET exec -n demo client -- sh        # a shell inside a pod"
echo "Stop it and remove everything: $PODNET down"
