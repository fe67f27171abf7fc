// Trace HTTP with gophercap-sniffer: one line per message, from a capture file or live.
//
//   node trace.js CAPTURE_FILE PORT[,PORT...]     read a capture to its end
//   node trace.js INTERFACE PORT[,PORT...]        capture live (root or CAP_NET_RAW) until Ctrl-C
//
// The gophercap binary comes from GOPHERCAP_BIN, else PATH.
"use strict";

const fs = require("node:fs");
const { createSniffer } = require("gophercap-sniffer");

const [target, ports] = process.argv.slice(2);
if (!target || !ports) {
  console.error("usage: node trace.js (CAPTURE_FILE | INTERFACE) PORT[,PORT...]");
  process.exit(2);
}

const sniffer = createSniffer({
  ...(fs.existsSync(target) ? { file: target } : { interface: target }),
  ports: ports.split(",").map(Number),
  onHttpMessage(m) {
    const client = `${m.destination.ip}:${m.destination.port}`;
    if (m.direction === "request") {
      console.log(`${m.timestamp} ${client} > ${m.method} ${m.path}`);
    } else {
      const latency = m.latencyMs === null ? "?" : m.latencyMs.toFixed(3);
      console.log(
        `${m.timestamp} ${client} < ${m.statusCode} ${m.requestMethod} ${m.requestPath} ` +
          `(${latency} ms, ${m.bodyLength} bytes${m.bodyTruncated ? ", truncated" : ""})`,
      );
    }
  },
});

sniffer.on("error", (e) => {
  console.error(`gophercap stopped: ${e.message}`);
  process.exitCode = 1;
});
sniffer.on("exit", ({ code }) => console.error(`done (engine exit code ${code})`));
process.once("SIGINT", () => sniffer.stop());
process.once("SIGTERM", () => sniffer.stop());

sniffer.start().then(
  () => console.error(`tracing ${target} on port ${ports}`),
  (e) => {
    console.error(e.message);
    process.exitCode = 1;
  },
);
