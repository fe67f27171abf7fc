#!/usr/bin/env bash
# Regenerates the small *real* packet captures in testdata/real/.
#
# Two private network namespaces (gc-cli, gc-srv) are joined by a veth pair;
# only 10.99.0.0/16 addresses are used and there is no default route, so no
# traffic can leave the namespaces. A python http.server serves two files of
# fixed content and curl fetches them while tcpdump/dumpcap record.
#
# Needs root and: tcpdump, tshark (dumpcap, capinfos), iproute2 (ip, tc), ethtool,
# curl, python3.
# Idempotent: stale namespaces and old outputs are removed first.
# Content is as deterministic as practical (fixed MACs, static ARP, no IPv6,
# no TCP timestamps, fixed client ports, fixed file mtimes); the packet
# timestamps, TCP ISNs, IP IDs and the HTTP Date header differ per run.
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "must be run as root" >&2; exit 1; }
for t in tcpdump dumpcap capinfos ip ethtool curl timeout gzip; do
    command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

OUT=$(cd "$(dirname "$0")" && pwd)/real
CLI=gc-cli SRV=gc-srv
VC=gc-veth-cli VS=gc-veth-srv          # veth ends (in CLI / SRV namespace)
MAC_C=02:00:0a:63:00:01 MAC_S=02:00:0a:63:00:02
IP_C=10.99.0.1 IP_S=10.99.0.2           # plain subnet 10.99.0.0/24
VIP_C=10.99.99.1 VIP_S=10.99.99.2       # VLAN 99 subnet 10.99.99.0/24
PORT=8080
UA="curl/7.88.1 (gophercap testdata)"

TMP=$(mktemp -d /tmp/gc-captures.XXXXXX)
PIDS=()
BPFFS=

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    [[ -n $BPFFS ]] && umount "$BPFFS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# stop_bg PID: SIGINT a background capturer (timeout forwards it), reap it and
# forget it so cleanup never signals a recycled PID.
stop_bg() {
    local p keep=()
    kill -INT "$1" 2>/dev/null || true
    wait "$1" || true
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cx() { ip netns exec "$CLI" "$@"; }     # run in client namespace
sx() { ip netns exec "$SRV" "$@"; }     # run in server namespace

# --- namespaces + veth -------------------------------------------------------
ip netns del "$CLI" 2>/dev/null || true
ip netns del "$SRV" 2>/dev/null || true
ip netns add "$CLI"
ip netns add "$SRV"
for ns in "$CLI" "$SRV"; do
    # No IPv6 at all (no link-local / RS / MLD noise), no TCP timestamps.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_timestamps=0
    ip netns exec "$ns" ip link set lo up
done
ip link add "$VC" netns "$CLI" address "$MAC_C" type veth \
    peer name "$VS" netns "$SRV" address "$MAC_S"

setup_end() {  # ns dev myip peerip peermac
    local ns=$1 dev=$2 ip=$3 pip=$4 pmac=$5
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    # No offloads: wire-sized segments and correct checksums in the captures.
    ip netns exec "$ns" ethtool -K "$dev" rx off tx off tso off gso off gro off >/dev/null 2>&1 || true
    ip netns exec "$ns" ip addr add "$ip/24" dev "$dev"
    ip netns exec "$ns" ip link set "$dev" up
    # Static ARP: no ARP exchange in the captures.
    ip netns exec "$ns" ip neigh replace "$pip" lladdr "$pmac" dev "$dev" nud permanent
}
setup_end "$CLI" "$VC" "$IP_C" "$IP_S" "$MAC_S"
setup_end "$SRV" "$VS" "$IP_S" "$IP_C" "$MAC_C"

# --- VLAN 99 -------------------------------------------------------------------
# Preferred: 802.1Q sub-interfaces on the veth ends; capture on the veth.
# Fallback (kernel without CONFIG_VLAN_8021Q, e.g. minimal VM kernels): a second
# veth pair whose frames get a real 802.1Q tag 99 pushed on egress / popped on
# ingress by tiny tc-bpf programs (bpf_skb_vlan_push/pop). tcpdump's tap sees
# egress after the push and ingress before the pop, so all frames are tagged.
vlan_end() {  # ns dev myip peerip peermac
    local ns=$1 dev=$2 ip=$3 pip=$4 pmac=$5
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.${dev//./\/}.disable_ipv6=1"
    ip netns exec "$ns" ip addr add "$ip/24" dev "$dev"
    ip netns exec "$ns" ip link set "$dev" up
    ip netns exec "$ns" ip neigh replace "$pip" lladdr "$pmac" dev "$dev" nud permanent
}
if cx ip link add link "$VC" name "$VC.99" type vlan id 99 2>/dev/null; then
    sx ip link add link "$VS" name "$VS.99" type vlan id 99
    vlan_end "$CLI" "$VC.99" "$VIP_C" "$VIP_S" "$MAC_S"
    vlan_end "$SRV" "$VS.99" "$VIP_S" "$VIP_C" "$MAC_C"
    VLAN_CAPDEV=$VC
    VLAN_HOW="802.1Q sub-interfaces $VC.99/$VS.99"
else
    VVC=gc-vlan-cli VVS=gc-vlan-srv
    ip link add "$VVC" netns "$CLI" address 02:00:0a:63:63:01 type veth \
        peer name "$VVS" netns "$SRV" address 02:00:0a:63:63:02
    for ns_dev in "$CLI:$VVC" "$SRV:$VVS"; do
        ip netns exec "${ns_dev%%:*}" ethtool -K "${ns_dev#*:}" rx off tx off tso off gso off gro off >/dev/null 2>&1 || true
    done
    vlan_end "$CLI" "$VVC" "$VIP_C" "$VIP_S" 02:00:0a:63:63:02
    vlan_end "$SRV" "$VVS" "$VIP_S" "$VIP_C" 02:00:0a:63:63:01
    # Load + pin the two programs on a private bpffs (no clang needed).
    BPFFS=$TMP/bpffs
    mkdir -p "$BPFFS"
    mount -t bpf gc-bpf "$BPFFS"
    "$PY" - "$BPFFS" <<'EOF'
import ctypes, struct, sys, os, platform
libc = ctypes.CDLL(None, use_errno=True)
SYS_BPF = {'x86_64': 321, 'aarch64': 280}[platform.machine()]
PROG_LOAD, OBJ_PIN, SCHED_CLS = 5, 6, 3
def insn(code, dst=0, imm=0):
    return struct.pack('<BBhi', code, dst, 0, imm)
def load_and_pin(prog, name, path):
    code = ctypes.create_string_buffer(b''.join(prog))
    lic = ctypes.create_string_buffer(b'GPL')
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack('<IIQQIIQII16s', SCHED_CLS, len(prog), ctypes.addressof(code),
                       ctypes.addressof(lic), 1, len(log), ctypes.addressof(log), 0, 0, name)
    fd = libc.syscall(SYS_BPF, PROG_LOAD, ctypes.create_string_buffer(attr, 128), 128)
    if fd < 0:
        sys.exit('BPF_PROG_LOAD failed: %s %s' % (os.strerror(ctypes.get_errno()), log.value))
    p = ctypes.create_string_buffer(path.encode())
    if libc.syscall(SYS_BPF, OBJ_PIN, ctypes.create_string_buffer(
            struct.pack('<QII', ctypes.addressof(p), fd, 0), 128), 128) < 0:
        sys.exit('BPF_OBJ_PIN failed: ' + os.strerror(ctypes.get_errno()))
MOV_K, CALL, EXIT = 0xb7, 0x85, 0x95
# r2 = htons(ETH_P_8021Q), r3 = VID 99, call bpf_skb_vlan_push(18); return TC_ACT_OK
load_and_pin([insn(MOV_K, 2, 0x0081), insn(MOV_K, 3, 99), insn(CALL, 0, 18),
              insn(MOV_K, 0, 0), insn(EXIT)], b'gc_vlan_push', sys.argv[1] + '/push')
# call bpf_skb_vlan_pop(19); return TC_ACT_OK
load_and_pin([insn(CALL, 0, 19), insn(MOV_K, 0, 0), insn(EXIT)],
             b'gc_vlan_pop', sys.argv[1] + '/pop')
EOF
    for ns_dev in "$CLI:$VVC" "$SRV:$VVS"; do
        ns=${ns_dev%%:*} dev=${ns_dev#*:}
        ip netns exec "$ns" tc qdisc add dev "$dev" clsact
        ip netns exec "$ns" tc filter add dev "$dev" egress bpf da object-pinned "$BPFFS/push"
        ip netns exec "$ns" tc filter add dev "$dev" ingress bpf da object-pinned "$BPFFS/pop"
    done
    VLAN_CAPDEV=$VVC
    VLAN_HOW="tc-bpf vlan push/pop on veth $VVC/$VVS (no 8021q in kernel)"
fi
echo "VLAN 99 via: $VLAN_HOW"

# --- web content of fixed bytes + servers ------------------------------------
WWW=$TMP/www
mkdir -p "$WWW"
$PY - "$WWW" <<'EOF'
import sys, os
d = sys.argv[1]
html = b"<!DOCTYPE html>\n<html><head><title>gophercap test</title></head>\n<body><p>Hello from gophercap testdata.</p>\n"
html += b"<!-- " + b"x" * (300 - len(html) - len(b"<!--  -->\n</body></html>\n")) + b" -->\n</body></html>\n"
assert len(html) == 300
open(os.path.join(d, "index.html"), "wb").write(html)
open(os.path.join(d, "blob.bin"), "wb").write(bytes((i * 31 + 7) % 251 for i in range(20480)))
EOF
touch -d '2024-01-01 00:00:00 UTC' "$WWW"/*

for ip in "$IP_S" "$VIP_S"; do
    # (plain command, not the sx function, so $! is the real process to kill)
    ip netns exec "$SRV" timeout 300 "$PY" -m http.server "$PORT" --bind "$ip" --directory "$WWW" \
        >>"$TMP/http.log" 2>&1 &
    PIDS+=($!)
done
for ip in "$IP_S" "$VIP_S"; do   # wait until both servers accept
    for _ in $(seq 50); do
        cx timeout 2 curl -s -o /dev/null "http://$ip:$PORT/" && break
        sleep 0.2
    done
done

mkdir -p "$OUT"
rm -f "$OUT"/*.pcap "$OUT"/*.pcapng "$OUT"/*.gz "$OUT"/*.cap

# wait_for FILE PATTERN: wait (max 10 s) until capturer says it is listening.
wait_for() {
    for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "capturer did not start:" >&2; cat "$1" >&2; return 1
}

# capture OUTNAME NS CURL-ARGS... -- TCPDUMP-ARGS...
# Starts tcpdump (bounded by timeout) in NS, runs one bounded curl in the
# client namespace, then stops tcpdump with SIGINT so it flushes cleanly.
capture() {
    local name=$1 ns=$2; shift 2
    local curl_args=() td_args=()
    while [[ $1 != -- ]]; do curl_args+=("$1"); shift; done; shift
    td_args=("$@")
    local log=$TMP/$name.log
    timeout -s INT 30 ip netns exec "$ns" tcpdump -Z root -U -n "${td_args[@]}" \
        -w "$TMP/$name" >"$log" 2>&1 &
    local tp=$!; PIDS+=("$tp")
    wait_for "$log" "listening on"
    sleep 0.3
    cx timeout 10 curl -sS -A "$UA" -o /dev/null "${curl_args[@]}"
    sleep 1
    stop_bg "$tp"
    cp "$TMP/$name" "$OUT/$name"
    echo "== $name: $(grep -h 'captured' "$log")"
}

# 1. classic pcap, microseconds, Ethernet, GET of the 300 B file.
capture curl-get.pcap "$CLI" --local-port 40001 "http://$IP_S:$PORT/index.html" \
    -- -i "$VC" tcp port $PORT
# 2. nanosecond pcap, GET of the 20 KB file.
capture curl-get-nano.pcap "$CLI" --local-port 40002 "http://$IP_S:$PORT/blob.bin" \
    -- -i "$VC" --time-stamp-precision=nano tcp port $PORT
# 3. POST with a small form body (http.server answers 501).
capture curl-post.pcap "$CLI" --local-port 40003 -d 'a=1&b=2' "http://$IP_S:$PORT/form" \
    -- -i "$VC" tcp port $PORT
# 4. GET over VLAN 99, captured on the underlying veth: 802.1Q-tagged frames.
capture curl-vlan.pcap "$CLI" --local-port 40004 "http://$VIP_S:$PORT/index.html" \
    -- -i "$VLAN_CAPDEV" vlan 99 and tcp port $PORT
# 5. "any" device: Linux cooked v1 (113) and v2 (276); tcpdump 4.99 defaults
#    to SLL2 on "any", so both are selected explicitly with -y.
capture curl-any-sll.pcap "$CLI" --local-port 40005 "http://$IP_S:$PORT/index.html" \
    -- -i any -y LINUX_SLL tcp port $PORT
capture curl-any-sll2.pcap "$CLI" --local-port 40006 "http://$IP_S:$PORT/index.html" \
    -- -i any -y LINUX_SLL2 tcp port $PORT

# 6. pcapng with two interfaces of different link types (Ethernet + SLL).
name=two-interfaces.pcapng
log=$TMP/$name.log
timeout -s INT 30 ip netns exec "$CLI" dumpcap -n -a duration:20 \
    -i "$VC" -f "tcp port $PORT" -i any -f "tcp port $PORT" \
    -w "$TMP/$name" >"$log" 2>&1 &
tp=$!; PIDS+=("$tp")
wait_for "$log" "Capturing on"
sleep 0.5
cx timeout 10 curl -sS -A "$UA" -o /dev/null --local-port 40007 "http://$IP_S:$PORT/index.html"
sleep 1
stop_bg "$tp"
cp "$TMP/$name" "$OUT/$name"
echo "== $name: $(tail -n1 "$log")"

# gzip variants: by name (.gz) and disguised (.cap, detect by magic).
gzip -n -9 -c "$OUT/curl-get.pcap" >"$OUT/curl-get.pcap.gz"
cp "$OUT/curl-get.pcap.gz" "$OUT/curl-get-gzipped.cap"
chmod 644 "$OUT"/*

ls -l "$OUT"
