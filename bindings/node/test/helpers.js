// Shared by the tests: where the engine and the test data are, and the engine's own output for
// a capture, mapped to the TCP Sniffer's shape by the README's table (written out here again,
// independently of src/message.ts).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { execFileSync } = require("node:child_process");

const REPO = path.resolve(__dirname, "../../..");
const PACKAGE = path.resolve(__dirname, "..");

/** The gophercap binary the tests drive: GOPHERCAP_BIN, else the newest cargo build. */
function engineBinary() {
  if (process.env.GOPHERCAP_BIN) {
    return process.env.GOPHERCAP_BIN;
  }
  const built = ["release", "debug"]
    .map((p) => path.join(REPO, "target", p, "gophercap"))
    .filter((p) => fs.existsSync(p))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (built.length === 0) {
    throw new Error("no gophercap binary: set GOPHERCAP_BIN or run cargo build first");
  }
  return built[0];
}

function capture(name) {
  return path.join(REPO, "testdata/real/http", name);
}

/** The environment the engine sees in the tests: none of its configuration variables. */
function cleanEnv() {
  const env = { ...process.env };
  for (const k of ["INTERFACE", "PORTS", "OUTPUT_STDOUT", "OUTPUT_URL", "OUTPUT_URL_AUTH_TOKEN",
    "METRICS_ADDR", "GOPHERCAP_LOG"]) {
    delete env[k];
  }
  return env;
}

/** What `gophercap http-trace --port P FILE` prints, one parsed object per line. */
function engineLines(file, ports) {
  const args = ["-q", "http-trace", ...ports.map((p) => `--port=${p}`), file];
  const out = execFileSync(engineBinary(), args, { env: cleanEnv(), maxBuffer: 256 << 20 });
  return out
    .toString("utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));
}

function headersByName(list) {
  const out = Object.create(null);
  for (const h of list) {
    const k = h.name.toLowerCase();
    out[k] = k in out ? out[k] + ", " + h.value : h.value;
  }
  return out;
}

/** An engine `http` line in the TCP Sniffer's shape, key by key as the README states it. */
function expectedHttp(r) {
  return {
    type: "http",
    timestamp: r.timestamp,
    connection: r.connection,
    receiver: { ip: r.receiver.ip, port: r.receiver.port },
    destination: { ip: r.destination.ip, port: r.destination.port },
    direction: r.direction,
    version: r.version,
    method: r.method,
    path: r.path,
    statusCode: r.status_code,
    reason: r.reason,
    headers: headersByName(r.headers),
    rawHeaders: r.headers,
    body: r.body,
    bodyEncoding: r.body_encoding,
    bodyLength: r.body_length,
    bodyTruncated: r.body_truncated,
    bodyDecoded: r.body_decoded,
    incomplete: r.incomplete,
    trailers: r.trailers,
    requestMethod: r.request_method,
    requestPath: r.request_path,
    latencyMs: r.latency_ms,
  };
}

function expectedWebSocket(r) {
  return {
    type: "websocket",
    timestamp: r.timestamp,
    connection: r.connection,
    receiver: r.receiver,
    destination: r.destination,
    direction: r.direction,
    opcode: r.opcode,
    fin: r.fin,
    compressed: r.compressed,
    payload: r.payload,
    payloadEncoding: r.payload_encoding,
    payloadLength: r.payload_length,
    truncated: r.truncated,
    incomplete: r.incomplete,
    closeCode: r.close_code,
    closeReason: r.close_reason,
  };
}

/** Resolves with `value()` once it is truthy, polling; rejects after `ms`. */
async function waitFor(what, ms, value) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = value();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

module.exports = {
  REPO,
  PACKAGE,
  engineBinary,
  capture,
  cleanEnv,
  engineLines,
  expectedHttp,
  expectedWebSocket,
  waitFor,
};
