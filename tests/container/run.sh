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
#   e. the webhook's patch, run: certificates from `gophercap webhook certs`, the webhook from the
#      image as deploy/deployment.yaml runs it, an AdmissionReview of a Deployment's pod
#      (testdata/admission) whose container is step c's server POSTed over HTTPS with the
#      certificate verified for the Service's name, the patch applied with jsonpatch and the pod
#      validated (tests/webhook/patched_pod.py), then `podman kube play` of that pod. What kube
#      play is given differs from the patched pod only where the API server, the kubelet or
#      podman 4.3 require (the step says where, and checks it). podman must run the sidecar with
#      the injected securityContext, args and memory limit; N requests from the host must all
#      be in the injected sidecar's JSON lines, its start log must name the interface and the
#      pod, and it must exit 0 on `podman pod stop`.
#
# The bases are kept under /var/cache/gophercap-test-bases (GOPHERCAP_TEST_BASES), one tarball
# per package list, and in podman's image store; a machine without them makes them (about a
# minute). Everything the run creates (pods, network, containers, certificates, the runc bundle)
# is removed on exit, failed or not. Needs root, podman, runc, mmdebstrap, catatonit, curl and
# python3 with jsonpatch and kubernetes-validate; without root it skips, except under CI=true
# where it fails.
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
WEBHOOK_IP=$SUBNET_PREFIX.20   # step e: the webhook, standing in for its Service
WEBHOOK_HOST=gophercap-webhook.gophercap.svc
KUBE_POD_IP=$SUBNET_PREFIX.11  # step e: the pod the webhook patched, under podman kube play
# podman 4 kube play publishes every containerPort on the host (0.0.0.0): step e's pod declares
# ports a shared machine is unlikely to use.
KUBE_HTTP_PORT=18080
KUBE_METRICS_PORT=19100
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
python3 -c 'import jsonpatch, kubernetes_validate' 2>/dev/null \
    || fail "python3 lacks jsonpatch or kubernetes_validate (pip install jsonpatch kubernetes-validate)"

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
    # Step e's pod, named by generateName.
    podman pod ls --format '{{.Name}}' 2>/dev/null | grep "^$NAME-web-" \
        | xargs -r podman pod rm -f -t 0 >/dev/null 2>&1
    for c in rootfs server sidecar webhook; do podman rm -f -t 0 "$NAME-$c" >/dev/null 2>&1; done
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

# ---------------------------------------------------------------------------------------------
step "e. the webhook's pod, played: certificates, an AdmissionReview over HTTPS, podman kube play"

# The webhook as deploy/deployment.yaml runs it (its arguments, uid 65532, no capability, a
# read-only root, the certificates mounted read-only with a Secret volume's mode 0644), from
# the image, at an address of the pod network that stands in for its Service. The certificates
# are those of `webhook certs` for the Service's name.
mkdir -p "$WORK/certs"
podman run --rm -v "$WORK/certs:/certs" "$IMAGE" webhook certs --service "${WEBHOOK_HOST%%.*}" \
    --namespace gophercap --out /certs >"$WORK/ca-bundle" || fail "webhook certs"
chmod 0644 "$WORK/certs/tls.crt" "$WORK/certs/tls.key"
podman run -d --name "$NAME-webhook" --network "$NAME-net" --ip "$WEBHOOK_IP" \
    --user 65532:65532 --cap-drop all --security-opt no-new-privileges --read-only \
    -v "$WORK/certs:/tls:ro" "$IMAGE" \
    webhook --listen=0.0.0.0:8443 --tls-cert=/tls/tls.crt --tls-key=/tls/tls.key \
    --image="$IMAGE" --sidecar-metrics-port="$KUBE_METRICS_PORT" --log-format=json >/dev/null
# Every request to it as the API server makes them: HTTPS to the Service's name, the server's
# certificate verified against the CA.
webhook_https() {
    curl -sS --max-time 5 --cacert "$WORK/certs/ca.crt" \
        --resolve "$WEBHOOK_HOST:8443:$WEBHOOK_IP" "$@"
}
show_webhook() { echo "--- webhook log" >&2; podman logs "$NAME-webhook" 2>&1 | tail -20 >&2; }
for i in $(seq 1 40); do
    code=$(webhook_https -o /dev/null -w '%{http_code}' "https://$WEBHOOK_HOST:8443/readyz" 2>/dev/null || true)
    [ "$code" = 200 ] && break
    if [ "$i" -eq 40 ]; then show_webhook; fail "the webhook's /readyz was not 200 within 20 s (last: $code)"; fi
    sleep 0.5
done
pass "webhook up from the image, as uid 65532 with no capability; its certificate for $WEBHOOK_HOST verified against the CA of webhook certs"

# The AdmissionReview of testdata/admission/deployment-pod.json, as the API server sends the
# pod a Deployment's ReplicaSet creates (generateName and no name, the namespace in the request
# only, the API server's defaults filled in), its container step c's HTTP server. The stand-in
# base declares no PATH, and kube play, unlike podman run, gives a container none: full paths.
# As its container's first process python ignores SIGTERM; a shell that traps it ends the
# container at once, so that stopping the pod does not wait for SIGKILL.
python3 - "$ROOT/testdata/admission/deployment-pod.json" "$SERVER_BASE" "$NAME-web-7f9c6d9b8" \
    "$KUBE_HTTP_PORT" >"$WORK/review.json" <<'EOF'
import json, sys
fixture, image, replicaset, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
review = json.load(open(fixture))
request = review["request"]
assert request["operation"] == "CREATE" and request["kind"]["kind"] == "Pod", request
pod = request["object"]
assert "name" not in pod["metadata"] and "namespace" not in pod["metadata"], pod["metadata"]
pod["metadata"]["generateName"] = replicaset + "-"
pod["metadata"]["ownerReferences"][0]["name"] = replicaset
(web,) = pod["spec"]["containers"]
web["image"] = image
web["command"] = ["/bin/sh", "-c", "trap 'exit 0' TERM; /usr/bin/python3 -m http.server "
                  f"{port} --bind 0.0.0.0 --directory /etc & wait"]
web["ports"] = [{"containerPort": port, "protocol": "TCP"}]
json.dump(review, sys.stdout)
EOF
code=$(webhook_https -o "$WORK/answer.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$WORK/review.json" "https://$WEBHOOK_HOST:8443/mutate") \
    || { show_webhook; fail "POST /mutate"; }
[ "$code" = 200 ] || { cat "$WORK/answer.json" >&2; fail "POST /mutate answered $code"; }
python3 - "$WORK/review.json" "$WORK/answer.json" <<'EOF' || fail "the AdmissionReview answer"
import json, sys
request, answer = (json.load(open(p)) for p in sys.argv[1:3])
r = answer["response"]
assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview", answer
assert r["uid"] == request["request"]["uid"] and r["allowed"] is True, r
assert r["patchType"] == "JSONPatch" and r.get("patch"), r
EOF
# The patch applied by an implementation other than gophercap's, the pod validated (strict).
python3 tests/webhook/patched_pod.py "$WORK/review.json" "$WORK/answer.json" \
    >"$WORK/patched.json" 2>"$WORK/patched.err" \
    || { cat "$WORK/patched.err" >&2; fail "the patched pod"; }
pass "POST /mutate over HTTPS: allowed, a JSON Patch; jsonpatch applies it and the pod is valid for Kubernetes $(python3 -c 'import kubernetes_validate as k; print(k.latest_version())') (strict)"

# From the patched pod to what kube play runs: what the API server and the kubelet would do
# after admission, and what podman 4.3 cannot take, and nothing else; the script checks that
# undoing these gives back the patched pod exactly.
# - a name from generateName (5 characters, as the API server makes them) and the namespace;
# - the env entries from the fieldRefs metadata.namespace and spec.nodeName, which kube play
#   refuses (it resolves metadata.name), as plain values: what the kubelet would resolve;
# - the annotation gophercap.io/injected left out: kube play holds annotation values to 63
#   characters (Kubernetes allows 256 KiB); its value is checked here.
# The sidecar's image is local and the patch sets no imagePullPolicy: for a tag other than
# latest, kube play's default is to pull only a missing image, so nothing is pulled.
python3 - "$WORK/review.json" "$WORK/patched.json" "$(hostname)" "$IMAGE" "$KUBE_HTTP_PORT" \
    "$KUBE_METRICS_PORT" >"$WORK/played.json" 2>"$WORK/played.err" <<'EOF' \
    || { cat "$WORK/played.err" >&2; fail "the pod for kube play"; }
import copy, json, random, sys
review_path, patched_path, node, image, port, metrics = sys.argv[1:7]
namespace = json.load(open(review_path))["request"]["namespace"]
patched = json.load(open(patched_path))
pod = copy.deepcopy(patched)
meta = pod["metadata"]
meta["name"] = meta["generateName"] + "".join(
    random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
meta["namespace"] = namespace
injected = meta["annotations"].pop("gophercap.io/injected")
want = f"container=gophercap image={image} ports={port} metrics={metrics}"
assert injected == want, f"gophercap.io/injected: {injected!r}, want {want!r}"
(sidecar,) = [c for c in pod["spec"]["containers"] if c["name"] == "gophercap"]
resolved = {"metadata.namespace": namespace, "spec.nodeName": node}
replaced = {}
for i, env in enumerate(sidecar["env"]):
    path = env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    if path in resolved:
        sidecar["env"][i] = {"name": env["name"], "value": resolved[path]}
        replaced[env["name"]] = env
assert sorted(replaced) == ["NAMESPACE", "NODE_NAME"], replaced

# Undone, the changes give back the patched pod.
undone = copy.deepcopy(pod)
del undone["metadata"]["name"], undone["metadata"]["namespace"]
undone["metadata"]["annotations"]["gophercap.io/injected"] = injected
(c,) = [c for c in undone["spec"]["containers"] if c["name"] == "gophercap"]
c["env"] = [replaced.get(e["name"], e) for e in c["env"]]
assert undone == patched, "the pod for kube play differs from the patched pod in more than these"

# What the sidecar must keep: the injected securityContext, args, resources and probe.
assert sidecar["securityContext"] == {
    "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
    "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
    "runAsUser": 0, "runAsNonRoot": False,
}, sidecar["securityContext"]
assert sidecar["args"] == ["http-trace", "--max-concurrent-connections=2000",
                           "--max-body-size=65536", "--max-reassembly-mb=32"], sidecar["args"]
assert sidecar["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "344Mi"}}, sidecar["resources"]
assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": int(metrics)}
assert "imagePullPolicy" not in sidecar and sidecar["image"] == image, sidecar
json.dump(pod, sys.stdout)
print(f"{meta['name']} in {namespace}: {', '.join(sorted(replaced))} as values, "
      f"the annotation ({len(injected)} characters) left out", file=sys.stderr)
EOF
KUBE_POD=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["metadata"]["name"])' \
    "$WORK/played.json")
echo "for kube play: $(cat "$WORK/played.err")"
pass "the pod for kube play is the patched pod but for the name, the two fieldRefs and the annotation; securityContext, args, resources and probe as injected"

# The liveness probe becomes a podman healthcheck run by systemd timers; without systemd podman
# logs that it cannot add them and goes on.
timeout 120 podman kube play --network "$NAME-net" --ip "$KUBE_POD_IP" "$WORK/played.json" \
    >"$WORK/kube-play.log" 2>&1 || { cat "$WORK/kube-play.log" >&2; fail "podman kube play"; }
KUBE_SIDECAR=$KUBE_POD-gophercap
kube_sidecar_logs() {
    podman logs "$KUBE_SIDECAR" >"$WORK/kube-sidecar.out" 2>"$WORK/kube-sidecar.err" || true
}
show_kube_sidecar() {
    kube_sidecar_logs
    echo "--- $KUBE_SIDECAR stderr" >&2
    tail -20 "$WORK/kube-sidecar.err" >&2
}

# What podman runs is what the webhook wrote: NET_RAW alone, no_new_privs, a read-only root,
# uid 0, the args, the memory limit (344Mi).
podman inspect "$KUBE_SIDECAR" >"$WORK/kube-sidecar.inspect.json"
python3 - "$WORK/played.json" "$WORK/kube-sidecar.inspect.json" <<'EOF' \
    || { show_kube_sidecar; fail "the sidecar podman ran"; }
import json, sys
(want,) = [c for c in json.load(open(sys.argv[1]))["spec"]["containers"] if c["name"] == "gophercap"]
(got,) = json.load(open(sys.argv[2]))
assert got["State"]["Running"], got["State"]
assert got["EffectiveCaps"] == ["CAP_NET_RAW"] and got["BoundingCaps"] == ["CAP_NET_RAW"], got
assert "no-new-privileges" in got["HostConfig"]["SecurityOpt"], got["HostConfig"]["SecurityOpt"]
assert got["HostConfig"]["ReadonlyRootfs"] is True
assert got["Config"]["User"] in ("0", "0:0"), got["Config"]["User"]
assert got["Args"] == want["args"], got["Args"]
assert got["HostConfig"]["Memory"] == 344 * 2**20, got["HostConfig"]["Memory"]
EOF
pass "podman runs the sidecar as injected: NET_RAW alone, no_new_privs, read-only root, uid 0, the args, 344Mi"

# Bounded waits: the capture is open (/readyz), and the server accepts connections (a TCP
# connection without a request, so that nothing is traced before the N requests).
for i in $(seq 1 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
        "http://$KUBE_POD_IP:$KUBE_METRICS_PORT/readyz" || true)
    if [ "$code" = 200 ] && timeout 1 bash -c ": <>/dev/tcp/$KUBE_POD_IP/$KUBE_HTTP_PORT" 2>/dev/null; then
        break
    fi
    if [ "$i" -eq 60 ]; then show_kube_sidecar; fail "the played pod was not ready within 30 s (sidecar /readyz: $code)"; fi
    sleep 0.5
done
for i in $(seq 1 "$N"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "User-Agent: gophercap-container-test" "http://$KUBE_POD_IP:$KUBE_HTTP_PORT/hostname?n=$i") \
        || fail "request $i to the played pod failed"
    [ "$code" = 200 ] || fail "request $i to the played pod answered $code"
done
# The last response may still be on its way through the capture: poll its stdout, bounded.
for i in $(seq 1 40); do
    kube_sidecar_logs
    lines=$(grep -c '"direction"' "$WORK/kube-sidecar.out" || true)
    [ "$lines" -ge $((2 * N)) ] && break
    sleep 0.5
done
pass "$N requests to $KUBE_POD_IP:$KUBE_HTTP_PORT, $lines JSON lines on the sidecar's stdout"

t0=$(date +%s)
timeout $((STOP_GRACE_S + 15)) podman pod stop -t "$STOP_GRACE_S" "$KUBE_POD" \
    >/dev/null 2>"$WORK/pod-stop.err" || { cat "$WORK/pod-stop.err" >&2; fail "podman pod stop"; }
took=$(( $(date +%s) - t0 ))
exit_code=$(podman inspect "$KUBE_SIDECAR" --format '{{.State.ExitCode}}')
kube_sidecar_logs
if [ "$exit_code" != 0 ] || [ "$took" -ge "$STOP_GRACE_S" ]; then
    show_kube_sidecar
    fail "after pod stop the injected sidecar exited $exit_code in ${took}s (grace ${STOP_GRACE_S}s)"
fi
start_line=$(grep -m1 'http-trace capturing' "$WORK/kube-sidecar.err" || true)
namespace=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["request"]["namespace"])' \
    "$WORK/review.json")
for want in "interface=eth0" "ports=$KUBE_HTTP_PORT" \
    "placement=pod_name=$KUBE_POD namespace=$namespace node_name=$(hostname)"; do
    [[ "$start_line" == *"$want"* ]] || { show_kube_sidecar; fail "start log lacks $want: $start_line"; }
done
check_messages "$WORK/kube-sidecar.out" "$N" "$KUBE_POD_IP" "$KUBE_HTTP_PORT" \
    || { show_kube_sidecar; fail "the injected sidecar's JSON lines"; }
pass "the injected sidecar traced every request and response, named the interface and the pod at start, and exited 0 in ${took}s"

timeout 60 podman kube down "$WORK/played.json" >/dev/null 2>&1 || fail "podman kube down"
! podman pod exists "$KUBE_POD" || fail "the played pod is still there after kube down"
pass "podman kube down removed the pod"

echo
echo "image $IMAGE: $((size / 1000000)) MB; $(( $(date +%s) - START )) s in all"
echo "container: $passed passed, 0 failed"
