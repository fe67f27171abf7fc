#!/usr/bin/env bash
# Regenerates the small *real* HTTP/1.1 and WebSocket captures in
# testdata/real/http/.
#
# Two private network namespaces (gh-cli, gh-srv) are joined by a veth pair
# (gh-veth-cli / gh-veth-srv); only 10.99.60.0/24 is used (client 10.99.60.1,
# server 10.99.60.2) and there is no default route, so no traffic can leave
# the namespaces. In gh-srv run, each bounded by `timeout`:
#   - nginx on 10.99.60.2:8080 with its own config, pid, logs and temp paths
#     under a temp dir (never the system nginx service), gzip on;
#   - a tiny python http.server (HTTP/1.1, keep-alive) on :8081 that accepts
#     POST (and so Expect: 100-continue) and answers 200 with a JSON body;
#   - a python `websockets` echo server on :8082.
# tcpdump records on gh-veth-cli (client side) while curl / python clients
# in gh-cli make the requests.
#
# Needs root and: tcpdump, tshark, ip (iproute2), ethtool, curl, timeout,
# nginx (Debian: nginx-light), python3 with the `websockets` package (PyPI).
# Idempotent: stale namespaces and old outputs are removed first.
# Content is as deterministic as practical (fixed MACs, static ARP, no IPv6,
# no TCP timestamps, offloads off, fixed client ports, fixed files and mtimes,
# fixed payloads); packet timestamps, TCP ISNs, IP IDs, HTTP Date headers,
# the WebSocket key/accept and the WebSocket masking keys differ per run.
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "must be run as root" >&2; exit 1; }
for t in tcpdump tshark ip ethtool curl timeout nginx; do
    command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done
# A python3 that has `websockets` (pip may install into a non-system python).
PY=
for p in "$(command -v python3 || true)" /usr/bin/python3; do
    [[ -n $p && -x $p ]] && "$p" -c 'import websockets.asyncio.server' 2>/dev/null && { PY=$p; break; }
done
[[ -n $PY ]] || { echo "missing: python3 with the websockets package (pip install websockets)" >&2; exit 1; }
NGINX=$(command -v nginx)
# Never go through a proxy: every request targets 10.99.60.2 directly.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

OUT=$(cd "$(dirname "$0")" && pwd)/real/http
CLI=gh-cli SRV=gh-srv
VC=gh-veth-cli VS=gh-veth-srv          # veth ends (in CLI / SRV namespace)
MAC_C=02:00:0a:63:3c:01 MAC_S=02:00:0a:63:3c:02
IP_C=10.99.60.1 IP_S=10.99.60.2        # 10.99.60.0/24 only
P_NGX=8080 P_PY=8081 P_WS=8082
UA="curl/7.88.1 (gophercap testdata)"
SRV_LIFE=300                           # seconds any server may live at most

TMP=$(mktemp -d /tmp/gh-captures.XXXXXX)
PIDS=()

# kill_ns NS: end whatever still runs inside one of *our* namespaces.
kill_ns() {
    local p
    for p in $(ip netns pids "$1" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
}

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    kill_ns "$CLI"; kill_ns "$SRV"
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_bg PID: SIGINT a background process (timeout forwards it), reap it and
# forget it so cleanup never signals a recycled PID.
stop_bg() {
    local p keep=()
    kill -INT "$1" 2>/dev/null || true
    wait "$1" || true
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cx() { ip netns exec "$CLI" "$@"; }     # run in client namespace

# --- namespaces + veth -------------------------------------------------------
for ns in "$CLI" "$SRV"; do kill_ns "$ns"; ip netns del "$ns" 2>/dev/null || true; done
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

# --- content of fixed bytes --------------------------------------------------
WWW=$TMP/www
mkdir -p "$WWW"
"$PY" - "$WWW" "$TMP" <<'EOF'
import sys, os, json
d, tmp = sys.argv[1], sys.argv[2]
def put(path, data):
    with open(path, "wb") as f:
        f.write(data)
html = b"<!DOCTYPE html>\n<html><head><title>gophercap test</title></head>\n<body><p>Hello from gophercap testdata.</p>\n"
html += b"<!-- " + b"x" * (300 - len(html) - len(b"<!--  -->\n</body></html>\n")) + b" -->\n</body></html>\n"
assert len(html) == 300
put(os.path.join(d, "index.html"), html)
put(os.path.join(d, "blob.bin"), bytes((i * 31 + 7) % 251 for i in range(20480)))
put(os.path.join(d, "tiny.txt"), b"gophercap tiny\n")
put(os.path.join(d, "data.json"), json.dumps({"name": "gophercap", "items": [1, 2, 3]}, sort_keys=True).encode() + b"\n")
# ~30 KB of text that gzip can shrink, but not to nothing (LCG-chosen words).
words = b"alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu packet capture stream segment".split()
x, lines, n = 12345, [], 0
while n < 30000:
    ws = []
    for _ in range(10):
        x = (x * 1103515245 + 12345) & 0x7fffffff
        ws.append(words[(x >> 16) % len(words)])
    line = b"%05d " % len(lines) + b" ".join(ws) + b"\n"
    lines.append(line); n += len(line)
put(os.path.join(d, "text.txt"), b"".join(lines)[:30000])
# Request bodies: ~200 B form, small JSON, 4 KB for Expect: 100-continue.
form = b"name=gophercap&kind=pcap-toolkit&lang=rust&comment=" + b"+".join([b"real", b"capture", b"of", b"an", b"urlencoded", b"form", b"body"])
form += b"&pad=" + b"f" * (200 - len(form) - 5)
assert len(form) == 200
put(os.path.join(tmp, "form.txt"), form)
put(os.path.join(tmp, "body.json"), json.dumps({"tool": "gophercap", "test": "post-json", "values": list(range(10))}, sort_keys=True).encode())
put(os.path.join(tmp, "body4k.bin"), bytes((i * 7 + 3) % 256 for i in range(4096)))
EOF
touch -d '2024-01-01 00:00:00 UTC' "$WWW"/*

# --- servers (gh-srv only) ---------------------------------------------------
NGX=$TMP/nginx
mkdir -p "$NGX/logs"
cat >"$NGX/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log info;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $NGX/logs/access.log;
    client_body_temp_path $NGX/client_body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    server_tokens off;
    sendfile off;
    keepalive_timeout 10;
    gzip on;
    gzip_types text/plain application/json;
    gzip_min_length 0;
    server {
        listen $IP_S:$P_NGX;
        root $WWW;
    }
}
EOF
ip netns exec "$SRV" timeout "$SRV_LIFE" "$NGINX" -p "$NGX" -e "$NGX/logs/error.log" \
    -c "$NGX/nginx.conf" >>"$TMP/nginx.out" 2>&1 &
PIDS+=($!)

cat >"$TMP/post_server.py" <<'EOF'
# Minimal HTTP/1.1 keep-alive server: POST answers 200 with a JSON body.
# BaseHTTPRequestHandler sends "100 Continue" itself for Expect: 100-continue.
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gophercap-post-server"
    sys_version = ""

    def _reply(self, code, obj):
        body = json.dumps(obj, sort_keys=True).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        self._reply(200, {"path": self.path, "received": len(data),
                          "content_type": self.headers.get("Content-Type", ""),
                          "checksum": sum(data) & 0xffff})

    def do_GET(self):
        self._reply(200, {"path": self.path, "hint": "POST here"})

    def log_message(self, fmt, *args):
        sys.stderr.write("post-server: " + (fmt % args) + "\n")

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
EOF
ip netns exec "$SRV" timeout "$SRV_LIFE" "$PY" "$TMP/post_server.py" "$IP_S" "$P_PY" \
    >>"$TMP/post.log" 2>&1 &
PIDS+=($!)

cat >"$TMP/ws_server.py" <<'EOF'
# WebSocket echo server (no compression); a message > 64 KiB is answered
# with a short text instead of being echoed, to keep the capture small.
import asyncio, sys
from websockets.asyncio.server import serve

async def handler(ws):
    async for msg in ws:
        if len(msg) > 65535:
            await ws.send("received %d bytes" % len(msg))
        else:
            await ws.send(msg)

async def main():
    async with serve(handler, sys.argv[1], int(sys.argv[2]), compression=None,
                     server_header="gophercap-ws-server", ping_interval=None,
                     max_size=1 << 20, close_timeout=5):
        await asyncio.sleep(float(sys.argv[3]))

asyncio.run(main())
EOF
ip netns exec "$SRV" timeout "$SRV_LIFE" "$PY" "$TMP/ws_server.py" "$IP_S" "$P_WS" "$SRV_LIFE" \
    >>"$TMP/ws.log" 2>&1 &
PIDS+=($!)

for port in $P_NGX $P_PY $P_WS; do   # wait (bounded) until each server accepts
    ok=
    for _ in $(seq 50); do
        if cx timeout 2 curl -s --noproxy '*' -o /dev/null "http://$IP_S:$port/"; then ok=1; break; fi
        sleep 0.2
    done
    [[ -n $ok ]] || { echo "server on port $port did not start" >&2; cat "$TMP"/*.log "$TMP/nginx.out" "$NGX/logs/error.log" >&2 || true; exit 1; }
done

mkdir -p "$OUT"
rm -f "$OUT"/*.pcap "$OUT"/*.pcapng

# wait_for FILE PATTERN: wait (max 10 s) until capturer says it is listening.
wait_for() {
    for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "capturer did not start:" >&2; cat "$1" >&2; return 1
}

# capture OUTNAME CMD...: tcpdump (bounded) on the client veth, run CMD, then
# stop tcpdump with SIGINT so it flushes cleanly.
capture() {
    local name=$1; shift
    local log=$TMP/$name.log
    timeout -s INT 90 ip netns exec "$CLI" tcpdump -Z root -U -n -i "$VC" \
        -w "$TMP/$name" "tcp and host $IP_S" >"$log" 2>&1 &
    local tp=$!; PIDS+=("$tp")
    wait_for "$log" "listening on"
    sleep 0.3
    "$@"
    sleep 1
    stop_bg "$tp"
    cp "$TMP/$name" "$OUT/$name"
    echo "== $name: $(grep -h 'captured' "$log")"
}

c() { cx timeout 15 curl -sS --noproxy '*' -A "$UA" "$@"; }
NG=http://$IP_S:$P_NGX PYS=http://$IP_S:$P_PY

# 1. keep-alive: 3 GETs on one connection (300 B HTML, 20 KB binary, 404).
capture get-keepalive.pcap c --local-port 40101 -o /dev/null -o /dev/null -o /dev/null \
    "$NG/index.html" "$NG/blob.bin" "$NG/missing.html"

# 2. two POSTs on one keep-alive connection: urlencoded form (200 B), JSON.
capture post.pcap c --local-port 40201 -o /dev/null -d "@$TMP/form.txt" "$PYS/form" \
    --next -A "$UA" -o /dev/null -H 'Content-Type: application/json' \
    --data-binary "@$TMP/body.json" "$PYS/api/items"

# 3. HEAD: Content-Length but no body.
capture head.pcap c --local-port 40301 -o /dev/null -I "$NG/blob.bin"

# 4. pipelining: three GETs in ONE send, last with Connection: close.
pipelined() {
    cx timeout 15 "$PY" - "$IP_C" 40401 "$IP_S" "$P_NGX" "$UA" <<'EOF'
import socket, sys
cip, cport, sip, sport, ua = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
def req(path, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: %s\r\nAccept: */*\r\n%s\r\n"
            % (path, sip, sport, ua, extra)).encode()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((cip, cport))
s.settimeout(5)
s.connect((sip, sport))
s.sendall(req("/index.html") + req("/tiny.txt") + req("/data.json", "Connection: close\r\n"))
got = b""
while len(got) < 1 << 20:
    b = s.recv(65536)
    if not b:
        break
    got += b
s.close()
n = got.count(b"HTTP/1.1 200 OK")
print("pipelined: %d bytes, %d responses" % (len(got), n))
sys.exit(0 if n == 3 else 1)
EOF
}
capture pipelined.pcap pipelined

# 5. Expect: 100-continue with a 4 KB body to the python server.
capture expect-100.pcap c --local-port 40501 -o /dev/null -H 'Expect: 100-continue' \
    -H 'Content-Type: application/octet-stream' --data-binary "@$TMP/body4k.bin" "$PYS/upload"

# 6. gzip + chunked (curl --compressed), then the same file plain, one connection.
capture chunked-gzip.pcap c --local-port 40601 -o /dev/null --compressed "$NG/text.txt" \
    --next -A "$UA" -o /dev/null "$NG/text.txt"

# 7. WebSocket: handshake, text, binary, fragmented text, ping/pong,
#    200 B (16-bit length), 70000 B (64-bit length), close 1000 + reason.
websocket() {
    cx timeout 30 "$PY" - "$IP_C" 40701 "$IP_S" "$P_WS" <<'EOF'
import asyncio, sys
from websockets.asyncio.client import connect
cip, cport, sip, sport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

async def main():
    async with connect("ws://%s:%d/echo" % (sip, sport), proxy=None, compression=None,
                       user_agent_header="gophercap-testdata", ping_interval=None,
                       open_timeout=5, close_timeout=5, max_size=1 << 20,
                       local_addr=(cip, cport)) as ws:
        async def roundtrip(msg, want=None):
            await ws.send(msg)
            got = await ws.recv()
            assert got == (msg if want is None else want), (len(got), got[:40])
        await roundtrip("hello gophercap")
        await roundtrip(bytes(range(64)))
        await ws.send(["frag-one|", "frag-two|", "frag-three"])   # 3 frames: text + 2 continuation
        assert await ws.recv() == "frag-one|frag-two|frag-three"
        pong = await ws.ping(b"gophercap-ping")
        await asyncio.wait_for(pong, 5)
        await roundtrip("".join(chr(ord("a") + i % 26) for i in range(200)))
        await roundtrip(bytes((i * 13 + 5) % 256 for i in range(70000)), "received 70000 bytes")
        await ws.close(1000, "gophercap done")
    print("websocket: ok")

asyncio.run(asyncio.wait_for(main(), 20))
EOF
}
capture websocket.pcap websocket

# 8. 50 short connections, one GET each, Connection: close (no keep-alive).
many_short() {
    local i
    for i in $(seq 1 50); do
        c --local-port $((41000 + i)) -o /dev/null -H 'Connection: close' "$NG/tiny.txt"
    done
}
capture many-short.pcap many_short

chmod 644 "$OUT"/*.pcap

# --- verification -----------------------------------------------------------
ts() { tshark "$@" 2>/dev/null; }   # (drop its "running as root" notice)
fail=0
check() { echo "CHECK FAILED: $*" >&2; fail=1; }
for f in "$OUT"/*.pcap; do
    n=$(basename "$f")
    max=$(ts -r "$f" -T fields -e frame.len | sort -n | tail -n1)
    [[ $max -le 1514 ]] || check "$n: frame of $max bytes (offload not off?)"
    if ts -r "$f" -q -z expert 2>/dev/null | grep -qiE 'previous segment.*not captured|ACKed segment that wasn.t captured'; then
        check "$n: missing segments"
    fi
    echo "--- $n ($(stat -c %s "$f") bytes, $(ts -r "$f" | wc -l) frames, max frame $max)"
    if [[ $n == websocket.pcap ]]; then
        ts -r "$f" -Y websocket -T fields -e websocket.fin -e websocket.opcode \
            -e websocket.mask -e websocket.payload_length -e websocket.payload_length_ext_16 \
            -e websocket.payload_length_ext_64 | sed 's/^/    ws /'
    fi
    ts -r "$f" -Y http -T fields -e http.request.method -e http.request.uri \
        -e http.response.code -e http.content_length | sed 's/^/    /' | sort | uniq -c
done
ts -r "$OUT/expect-100.pcap" -Y 'http.response.code == 100' | grep -q . || check "expect-100: no 100 Continue"
ts -r "$OUT/chunked-gzip.pcap" -Y 'http.transfer_encoding == "chunked" && http.content_encoding == "gzip"' | grep -q . \
    || check "chunked-gzip: no chunked+gzip response"
[[ $(ts -r "$OUT/many-short.pcap" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0' | wc -l) -eq 50 ]] \
    || check "many-short: not 50 connections"
[[ $(ts -r "$OUT/websocket.pcap" -Y 'websocket.payload_length_ext_64' | wc -l) -ge 1 ]] \
    || check "websocket: no 64-bit length frame"

ls -l "$OUT"
exit $fail
