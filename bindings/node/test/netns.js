// Two network namespaces joined by a veth pair, as the Rust live tests make them: the client
// (10.99.74.1) runs curl, the server (10.99.74.2) a small python HTTP/1.1 server, and the
// sniffer captures on the server's end. Everything left inside is killed and both namespaces
// are deleted on teardown, also when a test fails or the process exits.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFileSync, spawn, spawnSync } = require("node:child_process");

const CLIENT = "ghn-node-a";
const SERVER = "ghn-node-b";
const CLIENT_VETH = "ghnnodea";
const SERVER_VETH = "ghnnodeb";
const CLIENT_IP = "10.99.74.1";
const SERVER_IP = "10.99.74.2";
const PORT = 8080;

/** `/hello` 200, `/slow` a 200 whose body stops halfway for 3 s, anything else 404. */
const SERVER_PY = `
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "20")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            time.sleep(3)
            self.wfile.write(b"abcdefghij")
            return
        code, body = (200, b"hello gophercap\\n") if self.path == "/hello" else (404, b"not here\\n")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass

server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("listening", flush=True)
server.serve_forever()
`;

function sh(cmd) {
  return execFileSync("sh", ["-c", cmd], { stdio: ["ignore", "pipe", "pipe"] }).toString();
}

/** Why the live tests cannot run here, or null. */
function unavailable() {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) {
    return "needs root";
  }
  for (const tool of ["ip", "python3", "curl", "timeout"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `needs ${tool}`;
    }
  }
  return null;
}

function remove() {
  for (const ns of [CLIENT, SERVER]) {
    const pids = spawnSync("ip", ["netns", "pids", ns]).stdout?.toString() ?? "";
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      spawnSync("kill", ["-KILL", pid]);
    }
    spawnSync("ip", ["netns", "del", ns]);
  }
}

let dir;
function teardown() {
  remove();
  if (dir) {
    fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  }
}

/** Makes the namespaces and starts the server; returns what the tests need. */
async function setup(engine) {
  remove();
  process.on("exit", teardown);
  sh(`ip netns add ${CLIENT} && ip netns add ${SERVER}`);
  for (const ns of [CLIENT, SERVER]) {
    // No IPv6: an idle veth carries nothing at all.
    sh(`ip netns exec ${ns} sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && ip -n ${ns} link set lo up`);
  }
  sh(
    `ip link add ${CLIENT_VETH} netns ${CLIENT} type veth peer name ${SERVER_VETH} netns ${SERVER} && ` +
      `ip -n ${CLIENT} addr add ${CLIENT_IP}/24 dev ${CLIENT_VETH} && ip -n ${SERVER} addr add ${SERVER_IP}/24 dev ${SERVER_VETH} && ` +
      `ip -n ${CLIENT} link set ${CLIENT_VETH} up && ip -n ${SERVER} link set ${SERVER_VETH} up`,
  );
  const server = spawn("ip", ["netns", "exec", SERVER, "timeout", "120", "python3", "-c", SERVER_PY, SERVER_IP, String(PORT)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the python server did not start")), 10_000);
    server.stdout.once("data", (d) => {
      clearTimeout(timer);
      d.toString().includes("listening") ? resolve() : reject(new Error(`python server: ${d}`));
    });
    server.once("exit", (code) => reject(new Error(`the python server exited (${code})`)));
  });
  // The sniffer runs the engine inside the server's namespace: `ip netns exec` execs, so the
  // pid the sniffer signals is the engine's own.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "gophercap-sniffer-live-"));
  const binaryPath = path.join(dir, "gophercap-in-netns");
  fs.writeFileSync(binaryPath, `#!/bin/sh\nexec ip netns exec ${SERVER} '${engine}' "$@"\n`, { mode: 0o755 });
  return { binaryPath };
}

/** curl from the client namespace (bounded); resolves with its stdout. */
function curl(paths, extra = []) {
  return new Promise((resolve, reject) => {
    const args = ["netns", "exec", CLIENT, "timeout", "15", "curl", "-sS", "--noproxy", "*", ...extra];
    for (const p of paths) {
      args.push("-o", "/dev/null", "-w", "%{http_code}\\n", `http://${SERVER_IP}:${PORT}${p}`);
    }
    const child = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`curl ${paths}: ${code} ${err}`))));
  });
}

module.exports = { unavailable, setup, teardown, curl, CLIENT_IP, SERVER_IP, SERVER_VETH, PORT };
