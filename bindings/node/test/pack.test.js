// The package as a user gets it: `npm pack`, installed into an empty project, where its
// example runs against a capture and its type declarations compile a TypeScript consumer.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const h = require("./helpers");

test("the packed tarball installs into an empty project and its example runs", { timeout: 120_000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gophercap-sniffer-pack-"));
  try {
    const packed = JSON.parse(
      execFileSync("npm", ["pack", "--json", "--pack-destination", tmp], {
        cwd: h.PACKAGE,
        stdio: ["ignore", "pipe", "pipe"],
      }).toString(),
    )[0];
    const files = packed.files.map((f) => f.path).sort();
    for (const want of ["dist/index.js", "dist/index.d.ts", "dist/sniffer.d.ts", "examples/trace.js", "README.md", "package.json"]) {
      assert.ok(files.includes(want), `${want} is packed: ${files}`);
    }
    assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/") || f.startsWith("node_modules/")), `${files}`);

    const project = path.join(tmp, "project");
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", path.join(tmp, packed.filename)], {
      cwd: project,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const installed = path.join(project, "node_modules", "gophercap-sniffer");
    const manifest = JSON.parse(fs.readFileSync(path.join(installed, "package.json"), "utf8"));
    assert.equal(manifest.dependencies, undefined, "no runtime dependencies");
    assert.deepEqual(fs.readdirSync(path.join(project, "node_modules")).filter((n) => !n.startsWith(".")), ["gophercap-sniffer"]);

    // The example, copied out as a user would, run against a capture.
    fs.copyFileSync(path.join(installed, "examples", "trace.js"), path.join(project, "trace.js"));
    const out = execFileSync("node", ["trace.js", h.capture("get-keepalive.pcap"), "8080"], {
      cwd: project,
      env: { ...h.cleanEnv(), GOPHERCAP_BIN: h.engineBinary() },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    }).toString();
    const lines = out.trim().split("\n");
    assert.equal(lines.length, 6, out);
    assert.match(lines[0], /^2026-11-\d\dT[\d:.]+Z 10\.99\.60\.1:\d+ > GET \/index\.html$/);
    assert.match(lines[5], /< 404 GET \/missing\.html \([\d.]+ ms, \d+ bytes\)$/);

    // ESM import of the CommonJS build, named exports included.
    const esm = execFileSync("node", ["--input-type=module", "-e",
      "import { createSniffer, SnifferError } from 'gophercap-sniffer'; console.log(typeof createSniffer, typeof SnifferError)"], {
      cwd: project,
    }).toString();
    assert.equal(esm.trim(), "function function");

    // A TypeScript consumer compiles against the shipped declarations.
    fs.writeFileSync(
      path.join(project, "check.ts"),
      `import { createSniffer, type HttpMessage, SnifferError, SnifferConfigError } from "gophercap-sniffer";
const sniffer = createSniffer({
  interface: "eth0",
  ports: [80, 8080],
  sampleRate: 0.5,
  onHttpMessage: (m: HttpMessage) => {
    const status: number | null = m.statusCode;
    const where: string = m.receiver.ip + ":" + m.receiver.port;
    const seen: unknown[] = [status, where, m.headers["content-type"], m.bodyTruncated, m.latencyMs];
    void seen;
  },
});
sniffer.on("httpMessage", (m) => { const t: string = m.timestamp; void t; });
sniffer.on("log", (l) => { const level: string = l.level; const event: unknown = l.fields.event; void level; void event; });
sniffer.on("error", (e: SnifferError) => { const code: number | null = e.exitCode; void code; });
sniffer.on("exit", (info) => { const requested: boolean = info.requested; void requested; });
async function main(): Promise<boolean> {
  await sniffer.start();
  await sniffer.stop();
  return sniffer.isRunning() || SnifferConfigError.name.length > 0;
}
void main;
`,
    );
    const tsc = path.join(h.PACKAGE, "node_modules", "typescript", "bin", "tsc");
    execFileSync("node", [tsc, "--noEmit", "--strict", "--target", "es2022", "--module", "commonjs",
      "--moduleResolution", "node10", "--typeRoots", path.join(h.PACKAGE, "node_modules", "@types"),
      "--types", "node", "check.ts"], { cwd: project, stdio: ["ignore", "pipe", "pipe"] });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
