// The sniffer: `gophercap http-trace` run as a child process. Messages come as JSON lines on
// its stdout, logs as JSON lines on its stderr; the log line with `"event":"ready"` says the
// capture is open; SIGTERM makes it drain every output and exit 0.

import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { StringDecoder } from "node:string_decoder";
import { engineCommand, validateConfig, type SnifferConfig } from "./config";
import {
  parseLogLine,
  toHttpMessage,
  toWebSocketMessage,
  type EngineRecord,
  type HttpMessage,
  type LogEntry,
  type WebSocketMessage,
} from "./message";

/** A failure of the engine: it could not start, or it died. The message is the engine's own
 * (its last error line) whenever it wrote one. */
export class SnifferError extends Error {
  /** The engine's exit code (2: bad configuration, 3: runtime failure, 1: damaged input), or
   * null when it did not exit by itself. */
  readonly exitCode: number | null;
  /** The signal that ended it, if one did. */
  readonly signal: NodeJS.Signals | null;
  /** The last lines of its stderr, as written. */
  readonly stderrTail: string[];
  /** For a missing interface: the interfaces that exist, as the engine listed them. */
  readonly interfaces?: string[];
  constructor(
    message: string,
    details: {
      exitCode?: number | null;
      signal?: NodeJS.Signals | null;
      stderrTail?: string[];
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "SnifferError";
    this.exitCode = details.exitCode ?? null;
    this.signal = details.signal ?? null;
    this.stderrTail = details.stderrTail ?? [];
    const listed = /no such interface; available: (.*)$/.exec(message);
    if (listed) {
      this.interfaces = listed[1].split(", ").filter((name) => name.length > 0);
    }
  }
}

/** How the engine ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when `stop()` asked for it. */
  requested: boolean;
}

export interface SnifferEvents {
  httpMessage: [message: HttpMessage];
  websocketMessage: [message: WebSocketMessage];
  log: [entry: LogEntry];
  error: [error: SnifferError];
  exit: [info: ExitInfo];
}

type State = "stopped" | "starting" | "running" | "stopping";

/** Lines kept from stderr for errors. */
const TAIL_LINES = 20;

/** Engines still running when this process exits are sent SIGTERM (they drain and exit). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const c of live) {
        c.kill("SIGTERM");
      }
    });
  }
}

/** Splits a stream into lines, decoding UTF-8 across chunk boundaries. */
function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  const decoder = new StringDecoder("utf8");
  let pending = "";
  stream.on("data", (chunk: Buffer) => {
    const text = decoder.write(chunk);
    let start = 0;
    let end = text.indexOf("\n");
    if (end < 0) {
      pending += text;
      return;
    }
    onLine(pending + text.slice(0, end));
    pending = "";
    start = end + 1;
    while ((end = text.indexOf("\n", start)) >= 0) {
      onLine(text.slice(start, end));
      start = end + 1;
    }
    pending = text.slice(start);
  });
  stream.on("end", () => {
    const rest = pending + decoder.end();
    pending = "";
    if (rest.length > 0) {
      onLine(rest);
    }
  });
}

export interface Sniffer {
  on<E extends keyof SnifferEvents>(event: E, listener: (...args: SnifferEvents[E]) => void): this;
  once<E extends keyof SnifferEvents>(event: E, listener: (...args: SnifferEvents[E]) => void): this;
  off<E extends keyof SnifferEvents>(event: E, listener: (...args: SnifferEvents[E]) => void): this;
  addListener<E extends keyof SnifferEvents>(
    event: E,
    listener: (...args: SnifferEvents[E]) => void,
  ): this;
  removeListener<E extends keyof SnifferEvents>(
    event: E,
    listener: (...args: SnifferEvents[E]) => void,
  ): this;
  emit<E extends keyof SnifferEvents>(event: E, ...args: SnifferEvents[E]): boolean;
}

export class Sniffer extends EventEmitter {
  readonly config: Readonly<SnifferConfig>;
  private state: State = "stopped";
  private child: ChildProcess | undefined;
  private tail: string[] = [];
  /** The engine's last ERROR line of this run (its fatal error, when it failed). */
  private lastError: LogEntry | undefined;
  private startSettle: { resolve: () => void; reject: (e: SnifferError) => void } | undefined;
  private stopPromise: Promise<void> | undefined;
  private stopSettle: { resolve: () => void; reject: (e: SnifferError) => void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private killedAfterTimeout = false;

  /** Checks the configuration (throwing a SnifferConfigError that names the field); spawns
   * nothing until `start()`. */
  constructor(config: SnifferConfig) {
    super();
    validateConfig(config);
    this.config = Object.freeze({ ...config, ports: [...config.ports] });
  }

  /** True between a resolved `start()` and `stop()` (or the engine's end). */
  isRunning(): boolean {
    return this.state === "running";
  }

  /** The engine's process id while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Spawns the engine; resolves once it reports the capture open (`"event":"ready"`). Rejects
   * with a SnifferError carrying the engine's own message when it cannot start (a missing
   * interface, with the list of interfaces; no permission to capture; a missing file), when no
   * readiness came within `startTimeoutMs`, or when already started.
   */
  start(): Promise<void> {
    if (this.state !== "stopped") {
      return Promise.reject(new SnifferError(`gophercap-sniffer: already ${this.state}`));
    }
    const { binary, args, env } = engineCommand(this.config);
    this.state = "starting";
    this.tail = [];
    this.lastError = undefined;
    this.killedAfterTimeout = false;
    this.stopPromise = undefined;
    const started = new Promise<void>((resolve, reject) => {
      this.startSettle = { resolve, reject };
    });
    let child: ChildProcess;
    try {
      child = spawn(binary, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      this.state = "stopped";
      this.startSettle = undefined;
      return Promise.reject(new SnifferError(`gophercap-sniffer: cannot run ${binary}: ${String(e)}`, { cause: e }));
    }
    this.child = child;
    track(child);
    lines(child.stdout!, (line) => this.onStdout(line));
    lines(child.stderr!, (line) => this.onStderr(line));
    child.on("error", (e: NodeJS.ErrnoException) => {
      // Spawning failed (ENOENT, EACCES): 'close' may or may not follow.
      const hint =
        e.code === "ENOENT" ? " (set config.binaryPath or GOPHERCAP_BIN, or put gophercap on PATH)" : "";
      this.settleStart(
        new SnifferError(`gophercap-sniffer: cannot run ${binary}: ${e.message}${hint}`, { cause: e }),
      );
      if (child.pid === undefined) {
        this.finish(child, null, null);
      }
    });
    child.on("close", (code: number | null, signal: NodeJS.Signals | null) =>
      this.finish(child, code, signal),
    );
    const limit = this.config.startTimeoutMs ?? 30_000;
    this.timer = setTimeout(() => {
      if (this.state === "starting" && this.child === child) {
        this.settleStart(
          new SnifferError(
            `gophercap-sniffer: the engine did not report the capture open within ${limit} ms`,
            { stderrTail: [...this.tail] },
          ),
        );
        this.terminate(child);
      }
    }, limit);
    return started;
  }

  /**
   * Sends the engine SIGTERM and resolves once it has drained every output (messages in flight
   * are delivered, flagged `incomplete`) and exited. Safe to call when stopped; a second call
   * while stopping returns the same promise. Rejects when the engine exits with a failure, or
   * does not exit within `stopTimeoutMs` (it is then killed).
   */
  stop(): Promise<void> {
    if (this.stopPromise) {
      return this.stopPromise;
    }
    const child = this.child;
    if (this.state === "stopped" || child === undefined) {
      return Promise.resolve();
    }
    if (this.state === "starting") {
      this.settleStart(new SnifferError("gophercap-sniffer: stopped before the capture opened"));
    }
    this.state = "stopping";
    this.stopPromise = new Promise<void>((resolve, reject) => {
      this.stopSettle = { resolve, reject };
    });
    this.terminate(child);
    return this.stopPromise;
  }

  private terminate(child: ChildProcess): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    child.kill("SIGTERM");
    const limit = this.config.stopTimeoutMs ?? 30_000;
    this.timer = setTimeout(() => {
      if (this.child === child) {
        this.killedAfterTimeout = true;
        child.kill("SIGKILL");
      }
    }, limit);
  }

  private settleStart(error?: SnifferError): void {
    const settle = this.startSettle;
    this.startSettle = undefined;
    if (!settle) {
      return;
    }
    if (error) {
      settle.reject(error);
    } else {
      settle.resolve();
    }
  }

  /** The error for an engine that ended with `code`/`signal`: its own words when it has any. */
  private failure(prefix: string, code: number | null, signal: NodeJS.Signals | null): SnifferError {
    const tail = [...this.tail];
    let message: string;
    if (this.lastError && this.lastError.message) {
      message = this.lastError.message;
    } else {
      const last = tail.filter((l) => l.trim().length > 0).slice(-3).join("\n");
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      message = `${prefix}: gophercap ${how}${last ? `: ${last}` : ""}`;
    }
    return new SnifferError(message, { exitCode: code, signal, stderrTail: tail });
  }

  private finish(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) {
      return;
    }
    live.delete(child);
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const was = this.state;
    this.state = "stopped";
    this.child = undefined;
    const requested = was === "stopping";
    if (this.startSettle) {
      this.settleStart(this.failure("gophercap-sniffer: the engine did not start", code, signal));
    }
    const stopSettle = this.stopSettle;
    this.stopSettle = undefined;
    if (stopSettle) {
      if (this.killedAfterTimeout) {
        stopSettle.reject(
          new SnifferError(
            `gophercap-sniffer: the engine did not exit within ${this.config.stopTimeoutMs ?? 30_000} ms of SIGTERM and was killed`,
            { exitCode: code, signal, stderrTail: [...this.tail] },
          ),
        );
      } else if (code === 0 || signal === "SIGTERM") {
        // SIGTERM itself ends an engine that had not yet set up its handler (a stop right at
        // the start): nothing was captured, nothing lost.
        stopSettle.resolve();
      } else {
        stopSettle.reject(this.failure("gophercap-sniffer: stopping failed", code, signal));
      }
    } else if (was === "running" && code !== 0) {
      this.emit("error", this.failure("gophercap-sniffer: the engine died", code, signal));
    }
    this.safeEmit("exit", { code, signal, requested });
  }

  private onStdout(line: string): void {
    if (line.length === 0) {
      return;
    }
    let record: EngineRecord;
    try {
      record = JSON.parse(line) as EngineRecord;
    } catch {
      this.report("WARN", `not a JSON line on the engine's stdout: ${line.slice(0, 200)}`);
      return;
    }
    if (this.config.outputStdout) {
      process.stdout.write(line + "\n");
    }
    if (record.type === "http") {
      const message = toHttpMessage(record);
      if (this.config.onHttpMessage) {
        try {
          this.config.onHttpMessage(message);
        } catch (e) {
          this.report("ERROR", `onHttpMessage threw: ${describe(e)}`, { error: e });
        }
      }
      this.safeEmit("httpMessage", message);
    } else if (record.type === "websocket") {
      this.safeEmit("websocketMessage", toWebSocketMessage(record));
    }
  }

  private onStderr(raw: string): void {
    if (raw.length === 0) {
      return;
    }
    this.tail.push(raw);
    if (this.tail.length > TAIL_LINES) {
      this.tail.shift();
    }
    const entry = parseLogLine(raw);
    if (entry.level === "ERROR") {
      // The fatal line (`"event":"failed"`) wins over any error before it.
      if (!(this.lastError?.fields.event === "failed")) {
        this.lastError = entry;
      }
    }
    this.safeEmit("log", entry);
    if (entry.fields.event === "ready" && this.state === "starting") {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      this.state = "running";
      this.settleStart();
    }
  }

  /** A log entry of this package's own. */
  private report(level: string, message: string, fields: Record<string, unknown> = {}): void {
    this.safeEmit("log", {
      level,
      message,
      timestamp: new Date().toISOString(),
      fields,
      raw: message,
      source: "sniffer",
    });
  }

  /** Calls every listener; one that throws is logged, and the others (and the capture) go
   * on. */
  private safeEmit<E extends "httpMessage" | "websocketMessage" | "log" | "exit">(
    event: E,
    ...args: SnifferEvents[E]
  ): void {
    for (const listener of this.rawListeners(event)) {
      try {
        (listener as (...a: SnifferEvents[E]) => void).apply(this, args);
      } catch (e) {
        if (event === "log") {
          // Nowhere left to report it without recursion.
          process.emitWarning(`gophercap-sniffer: a 'log' listener threw: ${describe(e)}`);
        } else {
          this.report("ERROR", `a '${event}' listener threw: ${describe(e)}`, { error: e });
        }
      }
    }
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** A sniffer for `config`; throws a SnifferConfigError (naming the field) when the
 * configuration is invalid, before anything is spawned. */
export function createSniffer(config: SnifferConfig): Sniffer {
  return new Sniffer(config);
}
