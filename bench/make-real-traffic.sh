#!/usr/bin/env bash
# Makes the captures of real traffic that bench/run's `real` section measures:
#
#   bench/data/real-mixed.pcap   nginx serving objects of 300 B to 4 MB (gzip on for text) and
#                                taking POSTs of 2 KB to 300 KB, driven by wrk and curl over
#                                keep-alive and Connection: close connections, with phases on a
#                                clean, a lossy (0.5 % random loss) and a rate-limited link;
#                                REAL_MIXED_BYTES (default 800000000) long
#   bench/data/real-short.pcap   REAL_SHORT_CONNS (default 250000) short connections: wrk with
#                                Connection: close fetching 300 B and 2 KB objects
#
# and beside each a FILE.info (key=value lines: how it was made, wrk's request counts, tcpdump's
# packet and drop counts, the SYNs in the file).
#
#   bench/make-real-traffic.sh            both captures
#   bench/make-real-traffic.sh short      only the named one(s): mixed, short
#
# A generator shapes its output to the code it feeds; a real server (nginx) and a real load
# generator (wrk) do not: segment sizes, ACK patterns, window updates, gzip and chunked framing,
# retransmissions and the interleaving of many connections are whatever the kernel and the
# programs make of them.
#
# Two network namespaces of its own (gcreal-cli, gcreal-srv) joined by the veth pair
# gcr-veth-cli / gcr-veth-srv; only 10.99.70.0/24 (client 10.99.70.1, server 10.99.70.2), IPv6
# off, static ARP, no default route: no packet can leave the namespaces. Offloads are off on both
# ends, so tcpdump (on gcr-veth-cli, the client end) sees wire-sized segments with real
# checksums. nginx (Debian's package) runs in gcreal-srv with its own config, pid, logs and temp
# folders under a temp folder, never as the system service; POSTs go through nginx to a second
# server block of the same nginx on 127.0.0.1 (the body is read in full before the answer, as an
# application would), and that hop is not captured.
#
# Loss: this script does not rely on netem (not every kernel has it, e.g. minimal VM kernels). A
# six-instruction XDP program, loaded without clang from python (as in
# testdata/make-real-captures.sh), drops a random REAL_LOSS_PPM (default 5000 = 0.5 %) of the
# frames received on each veth end during the lossy phases. XDP runs before tcpdump's tap, so a
# server->client segment lost on the client end never shows in the capture (a hole, then the
# retransmission: out of order) and a client->server segment lost on the server end shows twice
# (the original and its retransmission), as a tap at the client would see it. Both senders see
# a real loss, not a local drop. The rate-limited phases put tbf (REAL_LIMIT_RATE, default
# 200mbit) on the server's egress.
#
# Environment: REAL_MIXED_BYTES, REAL_SHORT_CONNS, REAL_LOSS_PPM, REAL_LIMIT_RATE (above);
#   REAL_RATE: tbf on the server's egress in every phase of both captures, the link's speed
#     (default 1gbit; "" = none); it also keeps tcpdump's share of the CPU: lower it if the
#     .info files report packets dropped by the kernel;
#   REAL_PHASE_S: seconds of a clean and of a lossy phase of the mixed capture, twice that for a
#     limited one (default 1); rounds of the three run until REAL_MIXED_BYTES are captured;
#   REAL_MIXED_MAX_S, REAL_SHORT_MAX_S: a capture stops after this many seconds even if short
#     (defaults 300 and 240);
#   REAL_DATA: output folder (default bench/data).
#
# Needs root. Installs what is missing with apt-get: nginx, wrk, tcpdump, iproute2, ethtool,
# curl, python3. Every loop is bounded in count and time, every program that runs on runs under
# timeout, and the namespaces and all in them are removed on exit, also on failure or Ctrl-C.
# Idempotent: stale namespaces of an earlier run are removed first; outputs are written under a
# .tmp name and renamed when complete.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LC_ALL=C

DATA=${REAL_DATA:-bench/data}
MIXED_BYTES=${REAL_MIXED_BYTES:-800000000}
SHORT_CONNS=${REAL_SHORT_CONNS:-250000}
LOSS_PPM=${REAL_LOSS_PPM:-5000}
LIMIT_RATE=${REAL_LIMIT_RATE:-200mbit}
RATE=${REAL_RATE-1gbit}
PHASE_S=${REAL_PHASE_S:-1}
MIXED_MAX_S=${REAL_MIXED_MAX_S:-300}
SHORT_MAX_S=${REAL_SHORT_MAX_S:-240}
MAX_ROUNDS=100 # rounds of phases of the mixed capture, whatever the time

CLI=gcreal-cli SRV=gcreal-srv
VC=gcr-veth-cli VS=gcr-veth-srv # veth ends (in CLI / SRV)
MAC_C=02:00:0a:63:46:01 MAC_S=02:00:0a:63:46:02
IP_C=10.99.70.1 IP_S=10.99.70.2 # 10.99.70.0/24 only
PORT=80
SINK_PORT=8071 # the POST sink, on the server's loopback
UA_WRK="wrk/4.1.0 (gophercap bench)"
SRV_LIFE=$((MIXED_MAX_S + SHORT_MAX_S + 300)) # seconds nginx may live at most

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'make-real-traffic: %s\n' "$*" >&2; exit 1; }

usage() { echo "usage: bench/make-real-traffic.sh [mixed] [short]   (default: both)"; }

WANT=()
for a in "$@"; do
    case $a in
    mixed | short) WANT+=("$a") ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
((${#WANT[@]})) || WANT=(mixed short)

[[ $EUID -eq 0 ]] || die "must be run as root (network namespaces, tcpdump, XDP)"
[[ $LOSS_PPM =~ ^[0-9]+$ && $LOSS_PPM -le 1000000 ]] || die "REAL_LOSS_PPM: 0 to 1000000"

# --- tools ------------------------------------------------------------------------------------
need=() pkgs=()
for tp in nginx:nginx wrk:wrk tcpdump:tcpdump ip:iproute2 tc:iproute2 ethtool:ethtool \
    curl:curl timeout:coreutils; do
    command -v "${tp%%:*}" >/dev/null || { need+=("${tp%%:*}"); pkgs+=("${tp#*:}"); }
done
[[ -x /usr/bin/python3 ]] || { need+=(python3); pkgs+=(python3); }
if ((${#need[@]})); then
    command -v apt-get >/dev/null || die "missing ${need[*]} (and no apt-get)"
    log "installing ${pkgs[*]} (missing: ${need[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # The nginx package would start the system's nginx: a policy-rc.d (Debian's way to say "no
    # services now"), unless one is there already, keeps it stopped; this script never uses it.
    policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    rc=0
    apt-get install -y "${pkgs[@]}" || { apt-get update && apt-get install -y "${pkgs[@]}"; } || rc=$?
    [[ -z $policy ]] || rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${pkgs[*]} failed"
fi
PY=/usr/bin/python3
NGINX=$(command -v nginx)
# Never through a proxy: every request goes to $IP_S directly.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

mkdir -p "$DATA"
TMP=$(mktemp -d /tmp/gc-real-traffic.XXXXXX)
chmod 755 "$TMP" # nginx's workers read the content
PIDS=()
BPFFS=

kill_ns() { # kill_ns NS: end whatever still runs inside one of *our* namespaces.
    local p
    for p in $(ip netns pids "$1" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
}

del_ns() {
    local ns
    for ns in "$CLI" "$SRV"; do
        [[ -e /run/netns/$ns ]] || continue
        kill_ns "$ns"
        ip netns del "$ns" 2>/dev/null || log "cannot delete network namespace $ns"
    done
}

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    del_ns
    [[ -n $BPFFS ]] && { umount "$BPFFS" 2>/dev/null || true; }
    rm -rf "$TMP"
    rm -f "$DATA"/real-mixed.pcap.tmp "$DATA"/real-short.pcap.tmp
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_bg PID: SIGINT a background process (timeout forwards it), reap it and forget it, so
# cleanup never signals a recycled PID.
stop_bg() {
    local p keep=()
    kill -INT "$1" 2>/dev/null || true
    wait "$1" || true
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cx() { ip netns exec "$CLI" "$@"; } # run in the client namespace
sx() { ip netns exec "$SRV" "$@"; } # run in the server namespace

# --- namespaces + veth ------------------------------------------------------------------------
del_ns
ip netns add "$CLI"
ip netns add "$SRV"
for ns in "$CLI" "$SRV"; do
    # Before the veth exists, so that it never gets an IPv6 address or sends IPv6 (RS, MLD).
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" sysctl -qw net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192
done
# wrk's Connection: close traffic opens ~10k connections a second from one address: every
# port, and ports in TIME_WAIT (their timestamps tell old from new segments) reused after 1 s.
cx sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
ip link add "$VC" netns "$CLI" address "$MAC_C" type veth peer name "$VS" netns "$SRV" address "$MAC_S"

setup_end() { # ns dev myip peerip peermac
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
for ns in "$CLI" "$SRV"; do
    [[ $(ip netns exec "$ns" sysctl -n net.ipv6.conf.all.disable_ipv6) == 1 ]] || die "IPv6 still on in $ns"
    [[ -z $(ip -n "$ns" route show default) ]] || die "default route in $ns"
done
log "network namespaces $CLI ($VC $IP_C) <-> $SRV ($VS $IP_S), IPv6 off, no default route"

# --- the lossy link: an XDP program on each veth end ------------------------------------------
BPFFS=$TMP/bpffs
mkdir -p "$BPFFS"
mount -t bpf gcr-bpf "$BPFFS"
"$PY" - "$BPFFS/loss" "$LOSS_PPM" <<'EOF'
# r0 = bpf_get_prandom_u32(); return r0 < threshold ? XDP_DROP : XDP_PASS
import ctypes, os, platform, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_BPF = {'x86_64': 321, 'aarch64': 280}[platform.machine()]
PROG_LOAD, OBJ_PIN, PROG_TYPE_XDP = 5, 6, 6
path, ppm = sys.argv[1], int(sys.argv[2])
threshold = min(ppm * (1 << 32) // 1000000, (1 << 31) - 1)  # the immediate is signed 32-bit
def insn(code, dst=0, off=0, imm=0):
    return struct.pack('<BBhi', code, dst, off, imm)
CALL, JGE_K, MOV64_K, EXIT = 0x85, 0x35, 0xb7, 0x95
prog = [insn(CALL, imm=7),                 # bpf_get_prandom_u32
        insn(JGE_K, 0, 2, threshold),      # r0 >= threshold: pass
        insn(MOV64_K, 0, imm=1), insn(EXIT),   # XDP_DROP
        insn(MOV64_K, 0, imm=2), insn(EXIT)]   # XDP_PASS
code = ctypes.create_string_buffer(b''.join(prog))
lic = ctypes.create_string_buffer(b'GPL')
log = ctypes.create_string_buffer(65536)
attr = struct.pack('<IIQQIIQII16s', PROG_TYPE_XDP, len(prog), ctypes.addressof(code),
                   ctypes.addressof(lic), 1, len(log), ctypes.addressof(log), 0, 0, b'gcr_loss')
fd = libc.syscall(SYS_BPF, PROG_LOAD, ctypes.create_string_buffer(attr, 128), 128)
if fd < 0:
    sys.exit('BPF_PROG_LOAD failed: %s %s' % (os.strerror(ctypes.get_errno()), log.value))
p = ctypes.create_string_buffer(path.encode())
if libc.syscall(SYS_BPF, OBJ_PIN, ctypes.create_string_buffer(
        struct.pack('<QII', ctypes.addressof(p), fd, 0), 128), 128) < 0:
    sys.exit('BPF_OBJ_PIN failed: ' + os.strerror(ctypes.get_errno()))
EOF

# set_link MODE: the link's condition: clean, lossy (XDP loss on both ends' receive) or limited
# (tbf at $LIMIT_RATE on the server's egress); $RATE, if set, limits the server's egress always.
set_link() {
    local mode=$1 rate=$RATE
    [[ $mode == limited ]] && rate=$LIMIT_RATE
    if [[ $mode == lossy ]]; then
        cx ip link set dev "$VC" xdpgeneric pinned "$BPFFS/loss"
        sx ip link set dev "$VS" xdpgeneric pinned "$BPFFS/loss"
    else
        cx ip link set dev "$VC" xdpgeneric off
        sx ip link set dev "$VS" xdpgeneric off
    fi
    if [[ -n $rate ]]; then
        sx tc qdisc replace dev "$VS" root tbf rate "$rate" burst 256kb latency 50ms
    else
        sx tc qdisc del dev "$VS" root 2>/dev/null || true
    fi
}

# --- content of fixed bytes -------------------------------------------------------------------
WWW=$TMP/www
mkdir -p "$WWW"
"$PY" - "$WWW" <<'EOF'
import os, random, sys
d = sys.argv[1]
rng = random.Random(20240611)
words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu "
         "packet capture stream segment window retransmit flow table reassembly "
         "gophercap").split()
def text(n):
    out, size, line = [], 0, 0
    while size < n:
        s = "%06d %s\n" % (line, " ".join(rng.choice(words) for _ in range(rng.randint(6, 14))))
        out.append(s); size += len(s); line += 1
    return "".join(out)[:n].encode()
def html(n):
    head = b"<!DOCTYPE html>\n<html><head><title>gophercap bench</title></head>\n<body><pre>\n"
    tail = b"</pre></body></html>\n"
    return head + text(n - len(head) - len(tail)) + tail
def put(name, data, n):
    assert len(data) == n, (name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
put("o300.html", html(300), 300)
put("o2k.html", html(2048), 2048)
put("o16k.txt", text(16384), 16384)
put("o100k.json", b'{"items":"' + text(102400 - 12).replace(b"\n", b" ") + b'"}', 102400)
put("o100k.bin", rng.randbytes(102400), 102400)
put("o1m.txt", text(1 << 20), 1 << 20)
put("o1m.bin", rng.randbytes(1 << 20), 1 << 20)
put("o4m.bin", rng.randbytes(4 << 20), 4 << 20)
EOF
touch -d '2024-06-11 00:00:00 UTC' "$WWW"/*
chmod 755 "$WWW"
chmod 644 "$WWW"/*

# --- nginx (gcreal-srv only) ------------------------------------------------------------------
NGX=$TMP/nginx
mkdir -p "$NGX/logs"
cat >"$NGX/nginx.conf" <<EOF
daemon off;
master_process on;
user root;
worker_processes 2;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $NGX/client_body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    keepalive_requests 1000;
    gzip on;
    gzip_types text/plain text/css application/json application/javascript;
    upstream post_sink {
        server 127.0.0.1:$SINK_PORT;
        keepalive 16;
    }
    server {
        listen $IP_S:$PORT backlog=8192;
        root $WWW;
        # The whole body is read (into memory) before the answer, as an application would.
        location /upload {
            client_max_body_size 1m;
            client_body_buffer_size 1m;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://post_sink;
        }
    }
    server {
        listen 127.0.0.1:$SINK_PORT;
        location / {
            client_max_body_size 1m;
            default_type application/json;
            return 200 '{"status":"stored"}\n';
        }
    }
}
EOF
timeout "$SRV_LIFE" ip netns exec "$SRV" "$NGINX" -p "$NGX" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" \
    >>"$TMP/nginx.out" 2>&1 &
PIDS+=($!)
ok=
for _ in $(seq 50); do
    if cx timeout 2 curl -sf --noproxy '*' -o /dev/null "http://$IP_S:$PORT/o300.html"; then ok=1; break; fi
    sleep 0.2
done
[[ -n $ok ]] || { cat "$TMP/nginx.out" "$NGX/logs/error.log" >&2 || true; die "nginx did not start"; }
cx timeout 5 curl -sf --noproxy '*' -o /dev/null --data-binary @"$WWW/o2k.html" "http://$IP_S:$PORT/upload" ||
    die "nginx does not take POSTs on /upload"
log "nginx $("$NGINX" -v 2>&1 | sed 's/.*: //') on $IP_S:$PORT"

# --- wrk scripts ------------------------------------------------------------------------------
# Every script prints, at the end, one line: `wrk_summary requests=N bytes=N connect=N read=N
# write=N status=N timeout=N`.
SUMMARY_LUA='
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("wrk_summary requests=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
end'
# get.lua PATH...: GETs cycling through the paths (on keep-alive connections unless -H
# "Connection: close"). With STOP=N and DONE=FILE among the arguments, each thread stops after
# N responses and then creates FILE.<thread number> (wrk itself waits out -d: whoever runs it sends
# SIGINT once every thread's file is there).
cat >"$TMP/get.lua" <<EOF
local paths, i, stop, donefile, seen, threads = {}, 0, nil, nil, 0, 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
function init(args)
    for _, a in ipairs(args) do
        local n, f = a:match("^STOP=(%d+)$"), a:match("^DONE=(.+)$")
        if n then stop = tonumber(n) elseif f then donefile = f else paths[#paths + 1] = wrk.format(nil, a) end
    end
    if stop then
        response = function()
            seen = seen + 1
            if seen == stop then
                wrk.thread:stop()
                local fh = io.open(donefile .. "." .. tostring(tid), "w")
                if fh then fh:close() end
            end
        end
    end
end
function request()
    i = i % #paths + 1
    return paths[i]
end
$SUMMARY_LUA
EOF
# post.lua SIZE...: POSTs to /upload cycling through bodies of these sizes, text forms and
# binary uploads in turn.
cat >"$TMP/post.lua" <<EOF
local reqs, i = {}, 0
function init(args)
    math.randomseed(20240611)
    local chunk = "field=gophercap&value=real+traffic+bench&n="
    for k, a in ipairs(args) do
        local n, body, ctype = tonumber(a)
        if k % 2 == 1 then
            body = string.rep(chunk, math.ceil(n / #chunk)):sub(1, n)
            ctype = "application/x-www-form-urlencoded"
        else
            local t = {}
            for j = 1, n do t[j] = string.char(math.random(0, 255)) end
            body = table.concat(t)
            ctype = "application/octet-stream"
        end
        reqs[#reqs + 1] = wrk.format("POST", "/upload?size=" .. n,
            { ["Host"] = wrk.host, ["User-Agent"] = "$UA_WRK", ["Content-Type"] = ctype }, body)
    end
end
function request()
    i = i % #reqs + 1
    return reqs[i]
end
$SUMMARY_LUA
EOF

URL=http://$IP_S:$PORT
# Object mix, interleaved; by bytes mostly the 1 and 4 MB objects, by count mostly small ones.
MIX=(/o300.html /o2k.html /o16k.txt /o300.html /o100k.json /o2k.html /o300.html /o1m.bin
    /o16k.txt /o100k.bin /o300.html /o2k.html /o4m.bin /o300.html /o16k.txt /o2k.html
    /o100k.json /o300.html /o1m.txt /o2k.html /o100k.bin /o300.html /o16k.txt /o1m.bin)
TEXT_MIX=(/o300.html /o2k.html /o16k.txt /o100k.json /o300.html /o2k.html /o16k.txt /o1m.txt)
SMALL_MIX=(/o300.html /o2k.html /o300.html /o16k.txt /o300.html /o2k.html)
SHORT_MIX=(/o300.html /o2k.html /o300.html) # the short capture's: one or two data segments
POST_SIZES=(2048 300000 8192 65536 4096 131072 16384 32768)

# wrk_run LOG SECONDS WRK-ARGS...: one wrk (one thread) in the client namespace, bounded.
wrk_run() {
    local out=$1 secs=$2
    shift 2
    cx timeout -s INT $((secs + 20)) wrk -t1 -d"${secs}s" --timeout 30s -H "User-Agent: $UA_WRK" \
        "$@" >>"$out" 2>&1 || log "wrk ended with status $? ($*)"
}

# curl_loop SECONDS: curl sessions, each on one connection: GETs plain and --compressed, a
# range, a HEAD, a POST with Expect: 100-continue, a GET with Connection: close; at most 200
# sessions and SECONDS seconds.
curl_loop() {
    local secs=$1 end i
    end=$((SECONDS + secs))
    for ((i = 0; i < 200 && SECONDS < end; i++)); do
        cx timeout 20 curl -sS --noproxy '*' -A "curl/7.88.1 (gophercap bench)" \
            -o /dev/null "$URL/o300.html" \
            --next -o /dev/null --compressed "$URL/o16k.txt" \
            --next -o /dev/null --compressed "$URL/o100k.json" \
            --next -o /dev/null -r 0-9999 "$URL/o1m.bin" \
            --next -o /dev/null -I "$URL/o100k.bin" \
            --next -o /dev/null -H 'Expect: 100-continue' -H 'Content-Type: application/octet-stream' \
            --data-binary "@$WWW/o100k.bin" "$URL/upload?from=curl" \
            --next -o /dev/null -H 'Connection: close' "$URL/o2k.html" >>"$TMP/curl.log" 2>&1 ||
            echo "curl status $?" >>"$TMP/curl.log"
    done
    echo "curl_sessions=$i" >>"$TMP/curl.log"
}

# tcpdump_start FILE LOG: tcpdump on the client end, the whole frame (default snaplen), 256 MiB
# of kernel buffer; waits until it listens. Sets TD_PID.
TD_PID=
tcpdump_start() {
    local file=$1 tlog=$2 i
    rm -f "$file" "$tlog"
    timeout -s INT $((MIXED_MAX_S + SHORT_MAX_S + 120)) ip netns exec "$CLI" \
        tcpdump -Z root -n -i "$VC" -B 262144 -w "$file" 2>"$tlog" &
    TD_PID=$!
    PIDS+=("$TD_PID")
    for ((i = 0; ; i++)); do
        grep -qs 'listening on' "$tlog" && break
        kill -0 "$TD_PID" 2>/dev/null || { cat "$tlog" >&2; die "tcpdump did not start"; }
        ((i < 100)) || die "tcpdump not listening after 10 s"
        sleep 0.1
    done
}

# tcpdump_stop LOG: stop it and wait until it has written out its counts; sets TD_CAPTURED and
# TD_DROPPED. (Not in a $(...) subshell: only this shell can wait for tcpdump.)
TD_CAPTURED='' TD_DROPPED=''
tcpdump_stop() {
    sleep 1
    stop_bg "$TD_PID"
    TD_PID=
    read -r TD_CAPTURED TD_DROPPED < <(awk '/packets captured/ { c = $1 }
        /dropped by kernel/ { d = $1 } END { print c, d }' "$1")
    [[ -n $TD_CAPTURED && -n $TD_DROPPED ]] || { cat "$1" >&2; die "no counts from tcpdump"; }
}

# wrk_total LOG KEY: KEY summed over the wrk_summary lines of LOG.
wrk_total() {
    sed -n "s/^wrk_summary .*\\b$2=\\([0-9]*\\).*/\\1/p" "$1" | awk '{ n += $1 } END { print n + 0 }'
}

# syns FILE: SYNs (not SYN-ACKs) in FILE, i.e. connection attempts, retransmitted SYNs included.
syns() {
    tcpdump -n -r "$1" 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn' 2>/dev/null | wc -l
}

# oversize FILE: frames longer than an Ethernet MTU (offloads not off) in FILE.
oversize() {
    tcpdump -n -r "$1" 'greater 1515' 2>/dev/null | wc -l
}

# finish_capture TMP OUT TLOG WLOG LINE...: stop tcpdump, keep TMP as OUT, and write OUT.info:
# the LINEs (how it was made), then what tcpdump, tshark and wrk counted; warn when tcpdump
# dropped packets or offloads left frames over 1514 bytes.
finish_capture() {
    local tmp=$1 out=$2 tlog=$3 wlog=$4
    shift 4
    tcpdump_stop "$tlog"
    local captured=$TD_CAPTURED dropped=$TD_DROPPED nsyn big
    mv "$tmp" "$out"
    nsyn=$(syns "$out")
    big=$(oversize "$out")
    {
        echo "$1"
        echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        shift
        printf '%s\n' "$@"
        echo "rate_limit=${RATE:-none}"
        echo "bytes=$(stat -c %s "$out")"
        echo "tcpdump_captured=$captured"
        echo "tcpdump_dropped=$dropped"
        echo "syns=$nsyn"
        echo "frames_over_1514=$big"
        echo "wrk_requests=$(wrk_total "$wlog" requests)"
        echo "wrk_bytes=$(wrk_total "$wlog" bytes)"
        echo "wrk_errors_connect=$(wrk_total "$wlog" connect) read=$(wrk_total "$wlog" read) write=$(wrk_total "$wlog" write) status=$(wrk_total "$wlog" status) timeout=$(wrk_total "$wlog" timeout)"
    } >"$out.info"
    cat "$out.info" >&2
    [[ $dropped == 0 ]] || log "WARNING: tcpdump dropped $dropped packets: lower REAL_RATE"
    [[ $big == 0 ]] || log "WARNING: $big frames longer than 1514 bytes (offloads on?)"
}

capture_mixed() {
    local out=$DATA/real-mixed.pcap tmp=$DATA/real-mixed.pcap.tmp tlog=$TMP/tcpdump-mixed.log
    local wlog=$TMP/wrk-mixed.log round phase size=0 start=$SECONDS phases=0 p pid d
    local -A secs=()
    rm -f "$wlog" "$TMP/curl.log"
    log "real-mixed: until $MIXED_BYTES bytes (at most ${MIXED_MAX_S}s), rounds of phases:" \
        "clean ${PHASE_S}s, lossy ${PHASE_S}s ($LOSS_PPM ppm), limited $((2 * PHASE_S))s ($LIMIT_RATE)"
    tcpdump_start "$tmp" "$tlog"
    for ((round = 0; round < MAX_ROUNDS && size < MIXED_BYTES; round++)); do
        for phase in clean lossy limited; do
            ((size < MIXED_BYTES && SECONDS - start < MIXED_MAX_S)) || break 2
            set_link "$phase"
            d=$PHASE_S
            [[ $phase == limited ]] && d=$((2 * PHASE_S))
            # Five clients at once: keep-alive GETs of the mix, keep-alive GETs of text with
            # Accept-Encoding: gzip, keep-alive POSTs, GETs with Connection: close, curl.
            p=()
            wrk_run "$wlog" "$d" -c16 -s "$TMP/get.lua" "$URL/" -- "${MIX[@]}" &
            p+=($!)
            wrk_run "$wlog" "$d" -c8 -H 'Accept-Encoding: gzip' -s "$TMP/get.lua" "$URL/" -- \
                "${TEXT_MIX[@]}" &
            p+=($!)
            wrk_run "$wlog" "$d" -c8 -s "$TMP/post.lua" "$URL/" -- "${POST_SIZES[@]}" &
            p+=($!)
            wrk_run "$wlog" "$d" -c8 -H 'Connection: close' -s "$TMP/get.lua" "$URL/" -- \
                "${SMALL_MIX[@]}" "${MIX[@]}" &
            p+=($!)
            curl_loop "$d" &
            p+=($!)
            PIDS+=("${p[@]}")
            for pid in "${p[@]}"; do wait "$pid" || true; done
            PIDS=("${PIDS[@]:0:${#PIDS[@]}-${#p[@]}}")
            size=$(stat -c %s "$tmp")
            secs[$phase]=$((${secs[$phase]:-0} + d))
            phases=$((phases + 1))
            log "real-mixed: round $round $phase: $size bytes after $((SECONDS - start)) s"
        done
    done
    set_link clean
    finish_capture "$tmp" "$out" "$tlog" "$wlog" \
        "made_by=bench/make-real-traffic.sh mixed" \
        "server=nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), worker_processes 2, gzip on (text), POST /upload read in full" \
        "clients=wrk -c16 keep-alive mix, wrk -c8 keep-alive Accept-Encoding: gzip, wrk -c8 POST, wrk -c8 Connection: close, curl sessions" \
        "phases=$phases: clean ${secs[clean]:-0}s, lossy ${secs[lossy]:-0}s ($LOSS_PPM ppm XDP loss on both ends), limited ${secs[limited]:-0}s (tbf $LIMIT_RATE server egress)" \
        "curl_sessions=$(sed -n 's/^curl_sessions=//p' "$TMP/curl.log" | awk '{ n += $1 } END { print n + 0 }') (7 requests each)" \
        "curl_failures=$(grep -c '^curl status' "$TMP/curl.log" || true)"
}

capture_short() {
    local out=$DATA/real-short.pcap tmp=$DATA/real-short.pcap.tmp tlog=$TMP/tcpdump-short.log
    local wlog=$TMP/wrk-short.log threads=2 start=$SECONDS
    rm -f "$wlog"
    log "real-short: $SHORT_CONNS connections with Connection: close (at most ${SHORT_MAX_S}s)"
    set_link clean
    tcpdump_start "$tmp" "$tlog"
    # Each thread stops after its share of responses and says so in a file; wrk is then
    # stopped (SIGINT: it prints its summary). -d and the wait bound the time.
    local done=$TMP/short-done i wrk_pid
    rm -f "$done".*
    # (timeout first, not the cx function, so that $! is the process to signal)
    timeout -s INT $((SHORT_MAX_S + 20)) ip netns exec "$CLI" wrk -t$threads -c32 -d"${SHORT_MAX_S}s" --timeout 10s \
        -H "User-Agent: $UA_WRK" -H 'Connection: close' -s "$TMP/get.lua" "$URL/" -- \
        "STOP=$(((SHORT_CONNS + threads - 1) / threads))" "DONE=$done" "${SHORT_MIX[@]}" \
        >"$wlog" 2>&1 &
    wrk_pid=$!
    PIDS+=("$wrk_pid")
    for ((i = 0; i < SHORT_MAX_S * 10; i++)); do
        (($(find "$TMP" -maxdepth 1 -name "${done##*/}.*" | wc -l) >= threads)) && break
        kill -0 "$wrk_pid" 2>/dev/null || break
        sleep 0.1
    done
    stop_bg "$wrk_pid"
    cat "$wlog" >&2
    finish_capture "$tmp" "$out" "$tlog" "$wlog" \
        "made_by=bench/make-real-traffic.sh short" \
        "server=nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), worker_processes 2" \
        "clients=wrk -t$threads -c32, Connection: close, GET ${SHORT_MIX[*]}, $((SECONDS - start)) s"
}

for w in "${WANT[@]}"; do
    "capture_$w"
done
if grep -q . "$NGX/logs/error.log" 2>/dev/null; then
    log "nginx error log (last lines):"
    tail -n 5 "$NGX/logs/error.log" >&2
fi
