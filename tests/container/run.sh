#!/usr/bin/env bash
# The container image, built from the repository's Dockerfile and run under podman, as root:
#
#   a. bases made from Debian packages (mmdebstrap, `podman import`) stand in for the Dockerfile's
#      public images, which cannot be pulled here; the build stage's base gets this machine's Rust
#      toolchain mounted and the crates come from the registry with this machine's CA bundle as
#      the `cacert` build secret. The image's size (what it adds to its base), labels and
#      contents are checked.
#   b. `--version` and `map` of the read-only mounted testdata, as the image's default user.
#   c. a pod on a network of its own (10.99.80.0/24): python's http.server, and the image as a
#      sidecar with NET_RAW alone and no-new-privileges, configured by the environment; N requests
#      from the host; /metrics scraped while it runs; SIGTERM. Every request and response must be
#      in its JSON lines, its start log must name the pod and the interface, the message counters
#      must be N, and it must exit 0 within the grace period.
#   d. what a Kubernetes runtime (containerd, CRI-O) asks runc for under
#      `capabilities: {drop: [ALL], add: [NET_RAW]}` and `allowPrivilegeEscalation: false`:
#      NET_RAW in the bounding, effective and permitted sets, none ambient, no_new_privs, a
#      read-only root, in the pod's network namespace. As uid 0 the capture opens; as uid 65534
#      it does not (podman would have made NET_RAW ambient for that user, a cluster does not).
#      `--user 65534:65534` is refused with NET_RAW alone and, with SETUID and SETGID added,
#      leaves the capture open as 65534 without a capability.
#
# The bases are kept under /var/cache/gophercap-test-bases (GOPHERCAP_TEST_BASES), one tarball
# per package list, and in podman's image store; a machine without them makes them (about a
# minute). Everything the run creates (pod, network, containers, the runc bundle) is removed on
# exit, failed or not. Needs root, podman, runc, mmdebstrap, catatonit, curl and python3; without
# root it skips, except under CI=true where it fails.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
ROOT=$PWD

N=20                           # requests through the pod
SUBNET_PREFIX=10.99.80         # the pod network; the host is .1
POD_IP=$SUBNET_PREFIX.10
HTTP_PORT=8080
METRICS_PORT=9100
STOP_GRACE_S=20                # podman stop's timeout; gophercap's own --grace-period-s is 10
NAME=gophercap-ctest           # prefix of every pod, network and container made here
IMAGE=localhost/gophercap:ctest
CACHE=${GOPHERCAP_TEST_BASES:-/var/cache/gophercap-test-bases}
SUITE=bookworm

passed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; echo "container: $passed passed, 1 failed" >&2; exit 1; }
step() { echo; echo "== $* ($(( $(date +%s) - START ))s)"; }
START=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = true ]; then
        fail "the container test needs root (podman, mmdebstrap, network namespaces)"
    fi
    echo "tests/container/run.sh: skipped: needs root (podman, mmdebstrap, network namespaces)"
    exit 0
fi
for tool in podman runc mmdebstrap catatonit curl python3 rustc timeout; do
    command -v "$tool" >/dev/null || fail "$tool is missing (.ci/run installs podman, runc, mmdebstrap and catatonit)"
done

WORK=$(mktemp -d /tmp/gophercap-ctest.XXXXXX)
# crun fails on this kernel's cgroups and raising limits is denied: runc, cgroupfs and
# ulimits at the ones we have. CNI, the backend Debian's podman installs without recommends.
export CONTAINERS_CONF=$WORK/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "cni"
EOF

RUNC_ROOT=/run/$NAME-runc
MOUNTED=""
remove_all() {
    set +e
    for c in root nonroot user-refused user; do
        runc --root "$RUNC_ROOT" delete -f "$NAME-k8s-$c" >/dev/null 2>&1
    done
    if [ -n "$MOUNTED" ]; then podman umount "$MOUNTED" >/dev/null 2>&1; fi
    podman pod rm -f -t 0 "$NAME-pod" >/dev/null 2>&1
    for c in rootfs server sidecar; do podman rm -f -t 0 "$NAME-$c" >/dev/null 2>&1; done
    podman network rm -f "$NAME-net" >/dev/null 2>&1
    set -e
}
# Leftovers of a run that was killed, then this run's on every exit.
remove_all
mkdir -p "$RUNC_ROOT"
trap 'remove_all; rm -rf "$WORK" "$RUNC_ROOT"' EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
step "a. bases and the image"

SLIM_DPKG=(
    # What debian:bookworm-slim leaves out.
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/groff/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
    --dpkgopt='path-exclude=/usr/share/linda/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
)

# make_base NAME PACKAGES [podman import --change ...]: prints the image's name.
make_base() {
    local name=$1 packages=$2
    shift 2
    local opts=(--variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${SLIM_DPKG[@]}")
    if [ -n "$packages" ]; then opts+=(--include="$packages"); fi
    local key
    key=$(printf '%s\n' "$SUITE" "$(mmdebstrap --version)" "${opts[@]}" "$@" | sha256sum | cut -c1-16)
    local image=localhost/$NAME-base/$name:$key tar=$CACHE/$name-$key.tar
    if podman image exists "$image"; then
        echo "$image"
        return
    fi
    mkdir -p "$CACHE"
    if [ ! -s "$tar" ]; then
        rm -f "$CACHE/$name-"*.tar "$CACHE/.partial-$name.tar"
        timeout 600 mmdebstrap "${opts[@]}" "$SUITE" "$CACHE/.partial-$name.tar" \
            >"$WORK/mmdebstrap-$name.log" 2>&1 \
            || { tail -30 "$WORK/mmdebstrap-$name.log" >&2; fail "mmdebstrap $name"; }
        mv "$CACHE/.partial-$name.tar" "$tar"
    fi
    local change=()
    for c in "$@"; do change+=(--change "$c"); done
    podman import "${change[@]}" "$tar" "$image" >/dev/null 2>&1 || fail "podman import $name"
    # Bases of an older package list go.
    podman images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/$NAME-base/$name:" \
        | grep -v ":$key\$" | xargs -r podman rmi >/dev/null 2>&1 || true
    echo "$image"
}

# The toolchain is mounted at /opt, which both bases have, so the mount leaves no trace in the
# runtime image.
TOOLCHAIN=$(rustc --print sysroot)
[ -x "$TOOLCHAIN/bin/cargo" ] || fail "no cargo in $TOOLCHAIN"
# The three at once: mmdebstrap waits on downloads as much as on the processor.
make_base build ca-certificates,gcc,libc6-dev,pkg-config \
    'ENV PATH=/opt/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV CARGO_HOME=/usr/local/cargo' 'CMD ["bash"]' >"$WORK/base-build" &
build_job=$!
make_base slim "" 'CMD ["bash"]' >"$WORK/base-slim" &
slim_job=$!
make_base python python3 'CMD ["python3"]' >"$WORK/base-python" &
python_job=$!
for job in "$build_job" "$slim_job" "$python_job"; do
    wait "$job" || fail "making the bases"
done
BUILD_BASE=$(cat "$WORK/base-build")
RUNTIME_BASE=$(cat "$WORK/base-slim")
SERVER_BASE=$(cat "$WORK/base-python")
pass "bases: $BUILD_BASE $RUNTIME_BASE $SERVER_BASE"

secret=()
CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
if [ -s "$CA" ]; then secret=(--secret "id=cacert,src=$CA"); fi
echo "building the Dockerfile at $(( $(date +%s) - START ))s (toolchain $(rustc --version), CA bundle ${secret[*]:-none})"
if ! timeout 900 podman build \
    --build-arg RUST_IMAGE="$BUILD_BASE" --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
    -v "$TOOLCHAIN:/opt:ro" "${secret[@]}" -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
    tail -40 "$WORK/build.log" >&2
    fail "podman build"
fi
grep -E '^\s+Finished' "$WORK/build.log" || echo "every layer came from podman's cache"

# The budget is 100 MB on debian:bookworm-slim (about 75 MB); the stand-in base is a little
# larger, so what is held to it is what the Dockerfile adds: 25 MB at most.
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
base_size=$(podman image inspect "$RUNTIME_BASE" --format '{{.Size}}')
added=$((size - base_size))
echo "image size: $size bytes ($((size / 1000000)) MB), of which the Dockerfile added $added ($((added / 1000000)) MB) to the base's $base_size"
[ "$added" -le 25000000 ] || fail "the Dockerfile adds $((added / 1000000)) MB to its base, over 25 MB"
cargo_field() { sed -n "/^\[package\]/,/^\[/s/^$1 *= *\"\(.*\)\"/\1/p" Cargo.toml | head -1; }
version=$(cargo_field version)
label() { podman image inspect "$IMAGE" --format "{{index .Labels \"org.opencontainers.image.$1\"}}"; }
[ "$(label version)" = "$version" ] || fail "label version $(label version), Cargo.toml $version"
[ "$(label licenses)" = "$(cargo_field license)" ] \
    || fail "label licenses $(label licenses), Cargo.toml $(cargo_field license)"
podman run --rm --entrypoint sh "$IMAGE" -c \
    'for t in cargo rustc cc gcc ld; do command -v $t && exit 1; done; [ ! -e /src ] && [ -z "$(ls -A /opt)" ] && [ "$(ls /usr/local/bin)" = gophercap ]' \
    || fail "the image holds build tools or build files"
pass "image built, $((size / 1000000)) MB ($((added / 1000000)) MB over its base), labels from Cargo.toml, the binary and no build tools"

# ---------------------------------------------------------------------------------------------
step "b. --version and map, as the image's default user"

out=$(podman run --rm "$IMAGE" --version)
[ "$out" = "gophercap $version" ] || fail "--version said '$out'"
pass "--version: $out"

podman run --rm --cap-drop all -v "$ROOT/testdata:/pcaps:ro" "$IMAGE" map /pcaps/real /pcaps/synthetic \
    >"$WORK/map.json" 2>"$WORK/map.err" || { cat "$WORK/map.err" >&2; fail "map exited non-zero"; }
python3 - "$WORK/map.json" "$ROOT/testdata" <<'EOF' || fail "map's JSON"
import json, os, sys
doc = json.load(open(sys.argv[1]))
paths = [c["path"] for c in doc["captures"]]
errors = [c["path"] for c in doc["captures"] if c["error"] is not None]
assert not errors, f"captures with errors: {errors}"
magics = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
          b"\x0a\x0d\x0d\x0a", b"\x1f\x8b")
want = []
for sub in ("real", "synthetic"):
    for folder, _, files in os.walk(os.path.join(sys.argv[2], sub)):
        for f in files:
            full = os.path.join(folder, f)
            with open(full, "rb") as fh:
                if fh.read(4).startswith(magics):
                    want.append("/pcaps/" + os.path.relpath(full, sys.argv[2]))
missing = [w for w in want if not any(p == w or p.startswith(w + "!") for p in paths)]
assert want and not missing, f"not listed: {missing}"
print(f"map listed {len(paths)} captures from {len(want)} files")
EOF
pass "map of the read-only testdata: valid JSON, every capture listed"

# ---------------------------------------------------------------------------------------------
step "c. the pod: an HTTP server and the sidecar"

podman network create --subnet "$SUBNET_PREFIX.0/24" "$NAME-net" >/dev/null
podman pod create --name "$NAME-pod" --network "$NAME-net" --ip "$POD_IP" >/dev/null
podman run -d --pod "$NAME-pod" --name "$NAME-server" "$SERVER_BASE" \
    python3 -m http.server "$HTTP_PORT" --bind 0.0.0.0 --directory /etc >/dev/null
# Bounded waits: the server answers (before the capture starts, so that this request is not
# counted), then the sidecar is ready (its capture is open).
for i in $(seq 1 60); do
    curl -s -o /dev/null --max-time 1 "http://$POD_IP:$HTTP_PORT/" && break
    [ "$i" -lt 60 ] || fail "the HTTP server in the pod did not answer in 30 s"
    sleep 0.5
done
# The securityContext of the README's "Sidecar" section: NET_RAW alone, no new privileges, a
# read-only root, the image's own user; configured by the environment alone.
podman run -d --pod "$NAME-pod" --name "$NAME-sidecar" \
    --cap-drop all --cap-add NET_RAW --security-opt no-new-privileges --read-only \
    -e PORTS="$HTTP_PORT" -e INTERFACE=eth0 -e OUTPUT_STDOUT=true \
    -e POD_NAME=web-0 -e NAMESPACE=gophercap-test -e NODE_NAME="$(hostname)" \
    "$IMAGE" http-trace --metrics-addr "0.0.0.0:$METRICS_PORT" >/dev/null

sidecar_logs() { podman logs "$NAME-sidecar" >"$WORK/sidecar.out" 2>"$WORK/sidecar.err" || true; }
show_sidecar() { sidecar_logs; echo "--- sidecar stderr" >&2; tail -20 "$WORK/sidecar.err" >&2; }

for i in $(seq 1 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$POD_IP:$METRICS_PORT/readyz" || true)
    [ "$code" = 200 ] && break
    if [ "$i" -eq 60 ]; then show_sidecar; fail "/readyz was not 200 within 30 s (last: $code)"; fi
    [ "$(podman inspect "$NAME-sidecar" --format '{{.State.Running}}')" = true ] \
        || { show_sidecar; fail "the sidecar exited"; }
    sleep 0.5
done
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$POD_IP:$METRICS_PORT/healthz" || true)
[ "$code" = 200 ] || fail "/healthz answered $code"
pass "pod up: server at $POD_IP:$HTTP_PORT, sidecar ready (/readyz and /healthz 200)"

# The requests, one connection each; the metrics scraped halfway.
for i in $(seq 1 "$N"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "User-Agent: gophercap-container-test" "http://$POD_IP:$HTTP_PORT/hostname?n=$i") \
        || fail "request $i failed"
    [ "$code" = 200 ] || fail "request $i answered $code"
    if [ "$i" -eq $((N / 2)) ]; then
        curl -sf --max-time 5 "http://$POD_IP:$METRICS_PORT/metrics" >"$WORK/metrics-mid.txt" \
            || fail "/metrics while capturing"
    fi
done
grep -q '^gophercap_capture_received_packets_total' "$WORK/metrics-mid.txt" \
    || fail "/metrics halfway has no gophercap_capture_received_packets_total"

# message_count FILE DIRECTION: the counter's value, or -1.
message_count() {
    python3 - "$1" "$2" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
pattern = r'^gophercap_http_messages_total\{[^}]*direction="%s"[^}]*\}\s+(\S+)' % sys.argv[2]
m = re.search(pattern, text, re.M)
print(int(float(m.group(1))) if m else -1)
EOF
}
# The last response may still be on its way through the capture: poll, bounded.
for i in $(seq 1 40); do
    curl -sf --max-time 5 "http://$POD_IP:$METRICS_PORT/metrics" >"$WORK/metrics.txt" || true
    req=$(message_count "$WORK/metrics.txt" request)
    resp=$(message_count "$WORK/metrics.txt" response)
    [ "$req" -ge "$N" ] && [ "$resp" -ge "$N" ] && break
    sleep 0.5
done
[ "$req" -eq "$N" ] && [ "$resp" -eq "$N" ] \
    || fail "gophercap_http_messages_total: request $req, response $resp, want $N each"
for metric in gophercap_capture_received_packets_total gophercap_capture_dropped_packets_total \
    gophercap_capture_interface_dropped_packets_total gophercap_packets_decoded_total \
    gophercap_connections_active gophercap_reassembly_gaps_total \
    gophercap_reassembly_gap_bytes_total gophercap_post_retries_total \
    gophercap_post_failures_total; do
    grep -q "^$metric[ {]" "$WORK/metrics.txt" || fail "/metrics has no $metric"
done
pass "/metrics: $N requests and $N responses counted"

t0=$(date +%s)
timeout $((STOP_GRACE_S + 15)) podman stop -t "$STOP_GRACE_S" "$NAME-sidecar" >/dev/null \
    || fail "podman stop"
took=$(( $(date +%s) - t0 ))
exit_code=$(podman inspect "$NAME-sidecar" --format '{{.State.ExitCode}}')
sidecar_logs
if [ "$exit_code" != 0 ] || [ "$took" -ge "$STOP_GRACE_S" ]; then
    show_sidecar
    fail "after SIGTERM the sidecar exited $exit_code in ${took}s (grace ${STOP_GRACE_S}s)"
fi
pass "SIGTERM: exit 0 in ${took}s"

start_line=$(grep -m1 'http-trace capturing' "$WORK/sidecar.err" || true)
for want in "interface=eth0" "placement=pod_name=web-0" "namespace=gophercap-test" "ports=$HTTP_PORT"; do
    [[ "$start_line" == *"$want"* ]] || { show_sidecar; fail "start log lacks $want: $start_line"; }
done
pass "start log: $start_line"

# check_messages FILE N IP PORT: the N requests from the host to IP:PORT and their responses,
# each once and nothing else, in the JSON lines FILE.
check_messages() {
    python3 - "$1" "$2" "$3" "$4" "$SUBNET_PREFIX.1" <<'EOF'
import json, sys
path, n, ip, port, client = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
requests, responses = {}, {}
for line in open(path):
    m = json.loads(line)
    assert m["type"] == "http", m
    assert m["receiver"] == {"ip": ip, "port": port}, m["receiver"]
    assert m["destination"]["ip"] == client, m["destination"]
    assert not m["incomplete"], m
    if m["direction"] == "request":
        assert m["method"] == "GET", m
        requests[m["path"]] = requests.get(m["path"], 0) + 1
    else:
        assert m["direction"] == "response" and m["status_code"] == 200, m
        assert m["request_method"] == "GET" and m["latency_ms"] is not None, m
        responses[m["request_path"]] = responses.get(m["request_path"], 0) + 1
want = {f"/hostname?n={i}": 1 for i in range(1, n + 1)}
assert requests == want, f"requests: {requests}"
assert responses == want, f"responses: {responses}"
print(f"{len(requests)} requests and {len(responses)} responses, each once")
EOF
}
check_messages "$WORK/sidecar.out" "$N" "$POD_IP" "$HTTP_PORT" \
    || { show_sidecar; fail "the sidecar's JSON lines"; }
pass "every request and response in the sidecar's JSON lines"

# ---------------------------------------------------------------------------------------------
step "d. a cluster runtime's securityContext: NET_RAW, no_new_privs, uid 0 and uid 65534"

# The probe prints its capability sets, then is gophercap capturing (as the container's first
# process, so that a signal from the runtime reaches it).
probe() {
    echo "grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status | tr -s '\t\n' '  ' >&2; echo >&2;
exec gophercap http-trace -i eth0 --port $HTTP_PORT $*"
}
status_of() { grep -m1 -oE "$2:? +[0-9a-f]+" "$1" | awk '{print $2}'; }

# The pod's network namespace, as a Kubernetes runtime joins its sandbox's.
infra=$(podman pod inspect "$NAME-pod" --format '{{.InfraContainerID}}')
infra_pid=$(podman inspect "$infra" --format '{{.State.Pid}}')
[ "$infra_pid" -gt 0 ] || fail "no pid for the pod's infra container"
podman create --name "$NAME-rootfs" "$IMAGE" >/dev/null
MOUNTED=$NAME-rootfs
rootfs=$(podman mount "$NAME-rootfs")

# run_like_k8s NAME UID CAPS [gophercap args]: runc with the spec containerd and CRI-O write
# for the Sidecar securityContext with `add: [CAPS]` (comma-separated), in the pod's network
# namespace. The capture runs until it is open (and has switched user, with --user) plus a
# second, then the runtime sends SIGINT. Prints the exit code; stderr is in $WORK/k8s-NAME.err
# and the capturing process's /proc status, read from outside, in $WORK/k8s-NAME.proc.
run_like_k8s() {
    local name=$1 uid=$2 caps=$3
    shift 3
    local bundle=$WORK/bundle-$name id=$NAME-k8s-$name err=$WORK/k8s-$name.err
    mkdir -p "$bundle"
    (cd "$bundle" && runc spec)
    python3 - "$bundle/config.json" "$rootfs" "$uid" "/proc/$infra_pid/ns/net" "$caps" "$(probe "$@")" <<'EOF'
import json, sys
path, rootfs, uid, netns, caps, probe = sys.argv[1:7]
spec = json.load(open(path))
spec["root"] = {"path": rootfs, "readonly": True}      # readOnlyRootFilesystem: true
p = spec["process"]
p["terminal"] = False
p["user"] = {"uid": int(uid), "gid": int(uid)}         # runAsUser
p["cwd"] = "/"
p["args"] = ["sh", "-c", probe]
p["env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
# capabilities: {drop: [ALL], add: [...]}: bounding, effective and permitted; nothing
# inheritable, nothing ambient.
added = ["CAP_" + c for c in caps.split(",")]
p["capabilities"] = {k: added for k in ("bounding", "effective", "permitted")}
p["noNewPrivileges"] = True                            # allowPrivilegeEscalation: false
p["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
spec["hostname"] = "web-0"
spec["linux"]["namespaces"] = [
    {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
    {"type": "network", "path": netns},
]
json.dump(spec, open(path, "w"))
EOF
    timeout 60 runc --root "$RUNC_ROOT" run --bundle "$bundle" "$id" \
        >"$WORK/k8s-$name.out" 2>"$err" </dev/null &
    local runner=$! want='http-trace capturing'
    case " $* " in *" --user "*) want='running as an unprivileged user' ;; esac
    for _ in $(seq 1 40); do
        grep -q "$want" "$err" && break
        kill -0 "$runner" 2>/dev/null || break
        sleep 0.25
    done
    sleep 1
    : >"$WORK/k8s-$name.proc"
    local pid
    for pid in $(runc --root "$RUNC_ROOT" ps "$id" 2>/dev/null | awk 'NR > 1 {print $2}'); do
        grep -E '^(Uid|CapEff)' "/proc/$pid/status" >>"$WORK/k8s-$name.proc" 2>/dev/null || true
    done
    runc --root "$RUNC_ROOT" kill "$id" INT >/dev/null 2>&1 || true
    for _ in $(seq 1 40); do
        kill -0 "$runner" 2>/dev/null || break
        sleep 0.25
    done
    runc --root "$RUNC_ROOT" kill "$id" KILL >/dev/null 2>&1 || true
    local rc=0
    wait "$runner" || rc=$?
    runc --root "$RUNC_ROOT" delete -f "$id" >/dev/null 2>&1 || true
    echo "$rc"
}

rc=$(run_like_k8s root 0 NET_RAW)
err=$WORK/k8s-root.err
echo "uid 0: $(head -1 "$err")"
if [ "$rc" != 0 ] || ! grep -q 'http-trace capturing' "$err"; then
    cat "$err" >&2
    fail "uid 0 with NET_RAW and no_new_privs: exit $rc"
fi
[ "$(status_of "$err" CapBnd)" = 0000000000002000 ] \
    && [ "$(status_of "$err" CapEff)" = 0000000000002000 ] \
    && [ "$(status_of "$err" CapAmb)" = 0000000000000000 ] \
    && [ "$(status_of "$err" NoNewPrivs)" = 1 ] \
    || fail "the uid 0 run did not have NET_RAW alone, nothing ambient and no_new_privs"
pass "uid 0, NET_RAW alone, nothing ambient, no_new_privs, read-only root: captures, exit 0 on SIGINT"

rc=$(run_like_k8s nonroot 65534 NET_RAW)
err=$WORK/k8s-nonroot.err
echo "uid 65534: $(head -1 "$err")"
[ "$rc" != 0 ] || fail "uid 65534 captured without an ambient capability"
[ "$(status_of "$err" CapEff)" = 0000000000000000 ] || fail "uid 65534 kept a capability"
echo "  $(grep -m1 -iE 'not permitted|denied' "$err" || sed -n 2p "$err")"
pass "uid 65534 in the same context has no capability and cannot capture"

# --user needs SETUID and SETGID besides: without them the switch is refused, with them the
# capture goes on as 65534 with no capability left.
rc=$(run_like_k8s user-refused 0 NET_RAW --user 65534:65534)
[ "$rc" = 3 ] && grep -q 'EPERM' "$WORK/k8s-user-refused.err" \
    || { cat "$WORK/k8s-user-refused.err" >&2; fail "--user with NET_RAW alone: exit $rc"; }
rc=$(run_like_k8s user 0 NET_RAW,SETUID,SETGID --user 65534:65534)
proc=$(tr -s '\t\n' '  ' <"$WORK/k8s-user.proc")
echo "uid 0, NET_RAW SETUID SETGID, --user 65534:65534: after the switch $proc-> exit $rc"
[ "$rc" = 0 ] && grep -q 'running as an unprivileged user' "$WORK/k8s-user.err" \
    && grep -qE '^Uid:\s+65534\s+65534\s+65534\s+65534' "$WORK/k8s-user.proc" \
    && grep -qE '^CapEff:\s+0000000000000000' "$WORK/k8s-user.proc" \
    || { cat "$WORK/k8s-user.err" >&2; fail "--user with NET_RAW, SETUID and SETGID"; }
pass "--user: refused with NET_RAW alone; with SETUID and SETGID added the capture stays open as 65534, no capability"

# The same uid 65534 under podman captures: podman makes an added capability ambient for a
# non-root user, which is why a non-root image that passes here can still fail in a cluster.
rc=0
podman run --rm --pod "$NAME-pod" --user 65534 --cap-drop all --cap-add NET_RAW \
    --security-opt no-new-privileges --read-only --entrypoint sh "$IMAGE" \
    -c "$(probe) & sleep 3; kill -INT \$!; wait \$!" >/dev/null 2>"$WORK/podman-65534.err" || rc=$?
echo "podman, uid 65534: $(head -1 "$WORK/podman-65534.err") -> exit $rc"
[ "$(status_of "$WORK/podman-65534.err" CapAmb)" = 0000000000002000 ] && [ "$rc" = 0 ] \
    || fail "podman no longer makes NET_RAW ambient for a non-root user; the README's reasoning needs a look"
pass "podman, uid 65534: NET_RAW ambient, captures (a cluster runtime gives no ambient set)"

echo
echo "image $IMAGE: $((size / 1000000)) MB; $(( $(date +%s) - START )) s in all"
echo "container: $passed passed, 0 failed"
