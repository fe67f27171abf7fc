// Offline: a capture read through `file` gives, message for message, what
// `gophercap http-trace` prints for the same capture, in the TCP Sniffer's shape.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { once } = require("node:events");
const { createSniffer } = require("..");
const h = require("./helpers");

const CAPTURES = [
  ["get-keepalive.pcap", [8080]],
  ["post.pcap", [8081]],
  ["pipelined.pcap", [8080]],
  ["expect-100.pcap", [8081]],
  ["chunked-gzip.pcap", [8080]],
  ["head.pcap", [8080]],
  ["many-short.pcap", [8080]],
  ["websocket.pcap", [8082]],
];

for (const [name, ports] of CAPTURES) {
  test(`${name}: every message equals the engine's own line`, async () => {
    const lines = h.engineLines(h.capture(name), ports);
    const wantHttp = lines.filter((l) => l.type === "http").map(h.expectedHttp);
    const wantWs = lines.filter((l) => l.type === "websocket").map(h.expectedWebSocket);
    assert.ok(wantHttp.length > 0, "the capture has HTTP messages");

    const viaCallback = [];
    const viaEvent = [];
    const viaWs = [];
    const logs = [];
    const sniffer = createSniffer({
      file: h.capture(name),
      ports,
      binaryPath: h.engineBinary(),
      onHttpMessage: (m) => viaCallback.push(m),
    });
    sniffer.on("httpMessage", (m) => viaEvent.push(m));
    sniffer.on("websocketMessage", (m) => viaWs.push(m));
    sniffer.on("log", (l) => logs.push(l));
    const exited = once(sniffer, "exit");
    assert.equal(sniffer.isRunning(), false);
    await sniffer.start();
    const [exit] = await exited;
    assert.deepEqual(exit, { code: 0, signal: null, requested: false });
    assert.equal(sniffer.isRunning(), false, "the engine finished the file");
    await sniffer.stop(); // already stopped: resolves

    assert.deepStrictEqual(viaCallback, wantHttp);
    assert.deepStrictEqual(viaEvent, wantHttp);
    assert.deepStrictEqual(viaWs, wantWs);
    for (const m of viaCallback) {
      assert.ok(!Number.isNaN(Date.parse(m.timestamp)), `an ISO timestamp: ${m.timestamp}`);
      assert.equal(m.latencyMs === null, m.direction === "request");
      assert.equal(m.statusCode === null, m.direction === "request");
    }
    const events = logs.map((l) => l.fields.event).filter(Boolean);
    assert.deepEqual(events, ["ready", "finished"]);
    const finished = logs.find((l) => l.fields.event === "finished");
    assert.equal(finished.fields.written, lines.length);
    assert.ok(logs.every((l) => l.source === "engine" && l.level !== "ERROR"), JSON.stringify(logs));
  });
}

test("a message's fields, spelled out (get-keepalive.pcap)", async () => {
  const got = [];
  const sniffer = createSniffer({
    file: h.capture("get-keepalive.pcap"),
    ports: [8080],
    binaryPath: h.engineBinary(),
    onHttpMessage: (m) => got.push(m),
  });
  const exited = once(sniffer, "exit");
  await sniffer.start();
  await exited;
  assert.deepEqual(
    got.map((m) => [m.direction, m.method, m.path, m.statusCode]),
    [
      ["request", "GET", "/index.html", null],
      ["response", null, null, 200],
      ["request", "GET", "/blob.bin", null],
      ["response", null, null, 200],
      ["request", "GET", "/missing.html", null],
      ["response", null, null, 404],
    ],
  );
  const [request, response] = got;
  assert.deepEqual(request.receiver, { ip: "10.99.60.2", port: 8080 });
  assert.equal(request.destination.ip, "10.99.60.1");
  assert.equal(request.headers["user-agent"], "curl/7.88.1 (gophercap testdata)");
  assert.match(request.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  assert.equal(response.requestPath, "/index.html");
  assert.equal(typeof response.latencyMs, "number");
  assert.ok(response.latencyMs >= 0);
  assert.equal(response.bodyEncoding, "utf-8");
  assert.equal(response.bodyTruncated, false);
  assert.equal(got[3].bodyEncoding, "base64", "blob.bin is binary");
});

test("maxBodySize reaches the engine: bodies are cut and flagged", async () => {
  const got = [];
  const sniffer = createSniffer({
    file: h.capture("get-keepalive.pcap"),
    ports: [8080],
    maxBodySize: 4,
    binaryPath: h.engineBinary(),
  });
  sniffer.on("httpMessage", (m) => got.push(m));
  const exited = once(sniffer, "exit");
  await sniffer.start();
  await exited;
  const responses = got.filter((m) => m.direction === "response");
  assert.equal(responses.length, 3);
  for (const r of responses) {
    assert.equal(r.bodyTruncated, r.bodyLength > 4, JSON.stringify(r));
    assert.ok(Buffer.from(r.body, r.bodyEncoding === "base64" ? "base64" : "utf8").length <= 4);
  }
});

test("a missing capture rejects start() with the engine's message and exit code", async () => {
  const sniffer = createSniffer({
    file: "/nonexistent/gophercap-sniffer.pcap",
    ports: [8080],
    binaryPath: h.engineBinary(),
  });
  let errorEvents = 0;
  sniffer.on("error", () => errorEvents++);
  await assert.rejects(sniffer.start(), (e) => {
    assert.equal(e.name, "SnifferError");
    assert.match(e.message, /gophercap-sniffer\.pcap/);
    assert.equal(e.exitCode, 2);
    assert.ok(e.stderrTail.length > 0);
    return true;
  });
  assert.equal(sniffer.isRunning(), false);
  assert.equal(errorEvents, 0, "a failed start rejects; it emits no 'error'");
});

test("outputStdout writes the engine's lines to this process's stdout", () => {
  const file = h.capture("head.pcap");
  const script = `
    const { createSniffer } = require(${JSON.stringify(h.PACKAGE)});
    const s = createSniffer({ file: ${JSON.stringify(file)}, ports: [8080], outputStdout: true,
      binaryPath: ${JSON.stringify(h.engineBinary())} });
    s.start();`;
  const { execFileSync } = require("node:child_process");
  const out = execFileSync("node", ["-e", script], { env: h.cleanEnv(), timeout: 30_000 }).toString();
  const want = execFileSync(h.engineBinary(), ["-q", "http-trace", "--port=8080", file], { env: h.cleanEnv() }).toString();
  assert.equal(out, want);
  assert.equal(out.trim().split("\n").length, 2);
});
