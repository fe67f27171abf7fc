// Live, between two network namespaces of the test's own (10.99.74.0/24): start, curl, messages,
// stop draining a message in flight, isRunning at each step; start() twice, stop() twice, a
// callback that throws, a missing interface, an engine that dies. Needs root, ip, python3 and
// curl: without them each test is skipped with the reason, except under CI=true, where that is a
// failure.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { once } = require("node:events");
const { createSniffer } = require("..");
const h = require("./helpers");
const net = require("./netns");

const why = net.unavailable();
const ci = process.env.CI === "true";
let env;

test.before(async () => {
  if (!why) {
    env = await net.setup(h.engineBinary());
  }
});
test.after(() => net.teardown());

function live(name, fn) {
  test(name, { timeout: 60_000 }, async (t) => {
    if (why) {
      if (ci) {
        assert.fail(`the live tests cannot run under CI=true: ${why}`);
      }
      t.skip(`live: ${why}`);
      return;
    }
    await fn(t);
  });
}

function sniffer(extra = {}) {
  return createSniffer({ interface: net.SERVER_VETH, ports: [net.PORT], binaryPath: env.binaryPath, ...extra });
}

live("start, curl, messages arrive, stop drains the message in flight", async () => {
  const got = [];
  const logs = [];
  const s = sniffer({ onHttpMessage: (m) => got.push(m) });
  s.on("log", (l) => logs.push(l));
  let errors = 0;
  s.on("error", () => errors++);
  assert.equal(s.isRunning(), false, "before start");
  const starting = s.start();
  assert.equal(s.isRunning(), false, "while starting");
  await assert.rejects(s.start(), /already starting/);
  await starting;
  assert.equal(s.isRunning(), true, "after start");
  await assert.rejects(s.start(), /already running/, "start() twice rejects");
  assert.equal(s.isRunning(), true, "a second start() leaves it running");
  const ready = logs.find((l) => l.fields.event === "ready");
  assert.equal(ready.message, "http-trace capturing");
  assert.equal(ready.fields.interface, net.SERVER_VETH);

  assert.equal(await net.curl(["/hello", "/missing"]), "200\n404\n");
  await h.waitFor("4 messages", 10_000, () => got.length >= 4);
  assert.equal(s.isRunning(), true, "while messages arrive");
  assert.deepEqual(
    got.map((m) => [m.direction, m.method, m.path, m.statusCode, m.requestPath]),
    [
      ["request", "GET", "/hello", null, null],
      ["response", null, null, 200, "/hello"],
      ["request", "GET", "/missing", null, null],
      ["response", null, null, 404, "/missing"],
    ],
  );
  for (const m of got) {
    assert.deepEqual(m.receiver, { ip: net.SERVER_IP, port: net.PORT });
    assert.equal(m.destination.ip, net.CLIENT_IP);
    assert.equal(m.connection, got[0].connection, "one keep-alive connection");
    assert.ok(!Number.isNaN(Date.parse(m.timestamp)));
    assert.equal(m.incomplete, false);
  }
  assert.equal(got[1].body, "hello gophercap\n");
  assert.equal(got[1].headers["content-type"], "text/plain");
  assert.equal(got[1].bodyEncoding, "utf-8");
  assert.ok(got[1].latencyMs > 0 && got[1].latencyMs < 5000, `latency ${got[1].latencyMs}`);

  // A response in flight: headers and half its body sent, the rest 3 s later.
  const slow = net.curl(["/slow"]).catch(() => "");
  await h.waitFor("the /slow request", 10_000, () => got.some((m) => m.path === "/slow"));
  await new Promise((r) => setTimeout(r, 500));
  const exited = once(s, "exit");
  const stopping = s.stop();
  assert.equal(s.isRunning(), false, "false once stop() is called");
  const again = s.stop();
  await stopping;
  await again;
  assert.deepEqual((await exited)[0], { code: 0, signal: null, requested: true });
  assert.equal(s.isRunning(), false, "after stop");
  await s.stop(); // stop() when stopped resolves
  const response = got.find((m) => m.requestPath === "/slow");
  assert.ok(response, `the in-flight response was delivered: ${JSON.stringify(got.map((m) => m.path ?? m.requestPath))}`);
  assert.equal(response.statusCode, 200);
  assert.equal(response.incomplete, true);
  assert.equal(response.body, "0123456789");
  const finished = logs.find((l) => l.fields.event === "finished");
  assert.ok(finished, "the engine logged its finish");
  assert.equal(finished.fields.written, got.length);
  assert.equal(errors, 0);
  await slow;
});

live("a callback that throws is logged and the capture goes on", async () => {
  const logs = [];
  const events = [];
  let calls = 0;
  const s = sniffer({
    onHttpMessage: () => {
      calls++;
      throw new Error("callback boom");
    },
  });
  s.on("log", (l) => logs.push(l));
  s.on("httpMessage", () => {
    throw new Error("listener boom");
  });
  s.on("httpMessage", (m) => events.push(m));
  await s.start();
  try {
    await net.curl(["/hello"]);
    await h.waitFor("2 messages", 10_000, () => events.length >= 2);
    assert.equal(s.isRunning(), true);
    await net.curl(["/hello"]);
    await h.waitFor("4 messages", 10_000, () => events.length >= 4);
    assert.equal(s.isRunning(), true, "still running after four throws");
    assert.equal(calls, 4);
    const reported = logs.filter((l) => l.source === "sniffer");
    assert.equal(reported.filter((l) => /onHttpMessage threw: Error: callback boom/.test(l.message)).length, 4);
    assert.equal(reported.filter((l) => /'httpMessage' listener threw: Error: listener boom/.test(l.message)).length, 4);
    assert.ok(reported.every((l) => l.level === "ERROR"));
  } finally {
    await s.stop();
  }
});

live("a missing interface rejects start() with the interfaces there are", async () => {
  const s = createSniffer({ interface: "ghn-nope0", ports: [net.PORT], binaryPath: env.binaryPath });
  let errors = 0;
  s.on("error", () => errors++);
  await assert.rejects(s.start(), (e) => {
    assert.equal(e.name, "SnifferError");
    assert.match(e.message, /^ghn-nope0: no such interface; available: /);
    assert.ok(e.interfaces.includes(net.SERVER_VETH), e.message);
    assert.ok(e.interfaces.includes("lo"), e.message);
    assert.equal(e.exitCode, 3);
    return true;
  });
  assert.equal(s.isRunning(), false);
  assert.equal(errors, 0);
  await s.stop();
});

live("an engine that dies emits 'error' with its exit and stderr tail", async () => {
  const s = sniffer();
  await s.start();
  const failed = once(s, "error");
  process.kill(s.pid, "SIGKILL");
  const [e] = await failed;
  assert.equal(e.signal, "SIGKILL");
  assert.equal(e.exitCode, null);
  assert.match(e.message, /killed by SIGKILL/);
  assert.ok(e.stderrTail.some((l) => l.includes('"event":"ready"')), e.stderrTail.join("\n"));
  assert.equal(s.isRunning(), false);
  await s.stop();
});
