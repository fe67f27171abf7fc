// Configuration: a bad one throws at once, naming the field, and nothing is spawned; a good one
// becomes the engine's command line and environment as the README's contract states.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { once } = require("node:events");
const { createSniffer, engineCommand, SnifferConfigError } = require("..");

/** A stand-in engine that only records that it was run. */
function recordingBinary() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gophercap-sniffer-"));
  const marker = path.join(dir, "spawned");
  const bin = path.join(dir, "gophercap");
  fs.writeFileSync(bin, `#!/bin/sh\ntouch '${marker}'\nexit 2\n`, { mode: 0o755 });
  return { bin, marker, dir };
}

const BAD = [
  [{ interface: "eth0" }, "ports", /config\.ports is required/],
  [{ interface: "eth0", ports: [] }, "ports", /config\.ports/],
  [{ interface: "eth0", ports: "80" }, "ports", /config\.ports/],
  [{ interface: "eth0", ports: [80, 0] }, "ports[1]", /config\.ports\[1\] must be a port from 1 to 65535 \(got 0\)/],
  [{ interface: "eth0", ports: [65536] }, "ports[0]", /65535/],
  [{ interface: "eth0", ports: [80.5] }, "ports[0]", /got 80\.5/],
  [{ interface: "eth0", ports: [80], sampleRate: 1.5 }, "sampleRate", /config\.sampleRate must be a number from 0 to 1/],
  [{ interface: "eth0", ports: [80], sampleRate: -0.1 }, "sampleRate", /sampleRate/],
  [{ interface: "eth0", ports: [80], sampleRate: NaN }, "sampleRate", /sampleRate/],
  [{ interface: "eth0", ports: [80], outputUrl: "http://collector:8080/" }, "outputUrl", /config\.outputUrl must be an https:\/\/ URL/],
  [{ interface: "eth0", ports: [80], outputUrl: "ftp://collector/" }, "outputUrl", /https/],
  [{ interface: "eth0", ports: [80], outputUrl: "not a url" }, "outputUrl", /not a URL/],
  [{ interface: "eth0", ports: [80], outputUrlAuthToken: "t" }, "outputUrlAuthToken", /needs config\.outputUrl/],
  [{ ports: [80] }, "interface", /config\.interface is required/],
  [{ interface: "eth0", file: "x.pcap", ports: [80] }, "file", /exclude each other/],
  [{ interface: "", ports: [80] }, "interface", /non-empty string/],
  [{ interface: "eth0", ports: [80], maxBodySize: -1 }, "maxBodySize", /maxBodySize/],
  [{ interface: "eth0", ports: [80], maxConcurrentConnections: 0 }, "maxConcurrentConnections", /at least 1/],
  [{ interface: "eth0", ports: [80], connectionIdleTimeoutMs: 1.5 }, "connectionIdleTimeoutMs", /integer/],
  [{ interface: "eth0", ports: [80], onHttpMessage: "log" }, "onHttpMessage", /function/],
  [{ interface: "eth0", ports: [80], outputStdout: "yes" }, "outputStdout", /true or false/],
  [{ interface: "eth0", port: 80 }, "port", /config\.port is not an option/],
];

test("bad configurations throw at once, naming the field, and spawn nothing", () => {
  const { bin, marker, dir } = recordingBinary();
  try {
    for (const [config, field, message] of BAD) {
      assert.throws(
        () => createSniffer({ ...config, binaryPath: bin }),
        (e) => {
          assert.ok(e instanceof SnifferConfigError, `${JSON.stringify(config)}: ${e}`);
          assert.ok(e instanceof TypeError);
          assert.equal(e.field, field, JSON.stringify(config));
          assert.match(e.message, message);
          return true;
        },
      );
    }
    assert.throws(() => createSniffer(null), /config must be an object/);
    assert.throws(() => createSniffer(), /config must be an object/);
    // A good configuration spawns nothing either until start().
    const sniffer = createSniffer({ interface: "eth0", ports: [80], binaryPath: bin });
    assert.equal(sniffer.isRunning(), false);
    assert.equal(fs.existsSync(marker), false, "nothing was spawned");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("http is allowed with allowHttp", () => {
  assert.doesNotThrow(() =>
    createSniffer({ interface: "eth0", ports: [80], outputUrl: "http://c:8080/", allowHttp: true }),
  );
});

test("the engine's command line and environment", () => {
  const parent = {
    PATH: "/usr/bin",
    GOPHERCAP_BIN: "/opt/gophercap",
    INTERFACE: "eth9",
    PORTS: "1",
    OUTPUT_STDOUT: "true",
    OUTPUT_URL: "https://elsewhere/",
    OUTPUT_URL_AUTH_TOKEN: "leaked",
    METRICS_ADDR: ":9090",
    GOPHERCAP_LOG: "error",
  };
  const live = engineCommand(
    {
      interface: "eth0",
      ports: [80, 8080],
      outputUrl: "https://collector.example/ingest",
      outputUrlAuthToken: "s3cret",
      sampleRate: 0.25,
      maxBodySize: 4096,
      maxConcurrentConnections: 100,
      connectionIdleTimeoutMs: 5000,
    },
    parent,
  );
  assert.equal(live.binary, "/opt/gophercap");
  assert.deepEqual(live.args, [
    "--log-format", "json", "-v", "http-trace", "--format", "json", "--stdout",
    "--port=80", "--port=8080",
    "--output-url=https://collector.example/ingest",
    "--sample-rate=0.25", "--max-body-size=4096", "--max-concurrent-connections=100",
    "--connection-idle-timeout-ms=5000",
    "--interface=eth0",
  ]);
  assert.deepEqual(live.env, { PATH: "/usr/bin", GOPHERCAP_BIN: "/opt/gophercap", OUTPUT_URL_AUTH_TOKEN: "s3cret" });
  assert.ok(!live.args.some((a) => a.includes("s3cret")), "the token is not on the command line");

  const offline = engineCommand(
    { file: "-odd-name.pcap", ports: [80], binaryPath: "./gc", outputUrl: "http://c/", allowHttp: true },
    { PATH: "/bin" },
  );
  assert.equal(offline.binary, "./gc");
  assert.deepEqual(offline.args.slice(-4), ["--output-url=http://c/", "--allow-http", "--", "-odd-name.pcap"]);
  assert.equal(engineCommand({ interface: "lo", ports: [1] }, {}).binary, "gophercap", "PATH by default");
});

test("a binary that cannot be run rejects start() and says how to point at one", async () => {
  const sniffer = createSniffer({ interface: "eth0", ports: [80], binaryPath: "/nonexistent/gophercap" });
  await assert.rejects(sniffer.start(), /cannot run \/nonexistent\/gophercap: .*ENOENT.*binaryPath or GOPHERCAP_BIN/);
  assert.equal(sniffer.isRunning(), false);
  await sniffer.stop();
});

test("an engine that exits before it is ready rejects start() with its stderr", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gophercap-sniffer-"));
  try {
    const bin = path.join(dir, "gophercap");
    fs.writeFileSync(bin, "#!/bin/sh\necho 'gophercap: something plain went wrong' >&2\nexit 3\n", { mode: 0o755 });
    const sniffer = createSniffer({ file: "x.pcap", ports: [80], binaryPath: bin });
    await assert.rejects(sniffer.start(), (e) => {
      assert.match(e.message, /something plain went wrong/);
      assert.equal(e.exitCode, 3);
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A stand-in engine script in a fresh folder. */
function fakeEngine(script) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gophercap-sniffer-"));
  const bin = path.join(dir, "gophercap");
  fs.writeFileSync(bin, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return { bin, dir };
}

test("no readiness within startTimeoutMs rejects start() and ends the engine", async () => {
  const { bin, dir } = fakeEngine("exec sleep 30");
  try {
    const sniffer = createSniffer({ file: "x.pcap", ports: [80], binaryPath: bin, startTimeoutMs: 300 });
    const exited = once(sniffer, "exit");
    await assert.rejects(sniffer.start(), /did not report the capture open within 300 ms/);
    const [info] = await exited;
    assert.equal(info.signal, "SIGTERM");
    assert.equal(sniffer.isRunning(), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("stop() while starting rejects start() and resolves", async () => {
  const { bin, dir } = fakeEngine("exec sleep 30");
  try {
    const sniffer = createSniffer({ file: "x.pcap", ports: [80], binaryPath: bin, startTimeoutMs: 500 });
    const starting = sniffer.start();
    const stopping = sniffer.stop();
    await assert.rejects(starting, /stopped before the capture opened/);
    await stopping;
    assert.equal(sniffer.isRunning(), false);
    // A stopped sniffer starts again (this stand-in never gets ready).
    await assert.rejects(sniffer.start(), /within 500 ms/);
    await sniffer.stop();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("an engine that ignores SIGTERM is killed after stopTimeoutMs and stop() rejects", async () => {
  const ready = JSON.stringify({ level: "INFO", message: "http-trace reading captures", event: "ready" });
  const { bin, dir } = fakeEngine(`trap '' TERM\necho '${ready}' >&2\nwhile :; do sleep 0.05; done`);
  try {
    const sniffer = createSniffer({ file: "x.pcap", ports: [80], binaryPath: bin, stopTimeoutMs: 300 });
    await sniffer.start();
    assert.equal(sniffer.isRunning(), true);
    await assert.rejects(sniffer.stop(), /did not exit within 300 ms of SIGTERM and was killed/);
    assert.equal(sniffer.isRunning(), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
