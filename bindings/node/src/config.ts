// The sniffer's configuration: checked in full before anything is spawned, then turned into
// the engine's command line and environment (the subprocess contract in the README).

import type { HttpMessage } from "./message";

export interface SnifferConfig {
  /** Capture live on this interface (needs root or CAP_NET_RAW). Exactly one of `interface`
   * and `file`. */
  interface?: string;
  /** Read this capture (pcap, pcapng, gzip, a folder or a tarball) instead of an interface. */
  file?: string;
  /** HTTP server ports (1-65535); the side with the port is the receiver. Required. */
  ports: number[];
  /** POST each message (one JSON object, the engine's own line) to this URL; https unless
   * `allowHttp`. */
  outputUrl?: string;
  /** Allow a plain http:// `outputUrl`. */
  allowHttp?: boolean;
  /** Sent as `Authorization: Bearer TOKEN` with each POST (given to the engine in its
   * environment, never on its command line). */
  outputUrlAuthToken?: string;
  /** Also write each message, as the engine's JSON line, to this process's stdout. */
  outputStdout?: boolean;
  /** Share of connections traced, 0 to 1 (a fixed hash of the endpoints). Default 1. */
  sampleRate?: number;
  /** Body bytes kept per message; the rest is counted and `bodyTruncated` set. Default 1 MiB. */
  maxBodySize?: number;
  /** Connections followed at once; the least recently active is dropped. Default 10000. */
  maxConcurrentConnections?: number;
  /** A connection idle this long is closed (packet time when reading a file). Default 300000. */
  connectionIdleTimeoutMs?: number;
  /** Called with each HTTP message. A callback that throws is logged and the capture goes on. */
  onHttpMessage?: (message: HttpMessage) => void;
  /** The gophercap binary. Default: the GOPHERCAP_BIN environment variable, else `gophercap`
   * on PATH. */
  binaryPath?: string;
  /** How long `start()` waits for the engine to report the capture open. Default 30000. */
  startTimeoutMs?: number;
  /** How long `stop()` waits for the engine to drain and exit before killing it. Default 30000
   * (the engine itself gives a POST queue at most 10 s). */
  stopTimeoutMs?: number;
}

/** A configuration that cannot work; `field` names the option at fault. */
export class SnifferConfigError extends TypeError {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`gophercap-sniffer: ${field ? `config.${field}` : "config"} ${message}`);
    this.name = "SnifferConfigError";
    this.field = field;
  }
}

const KNOWN = new Set([
  "interface",
  "file",
  "ports",
  "outputUrl",
  "allowHttp",
  "outputUrlAuthToken",
  "outputStdout",
  "sampleRate",
  "maxBodySize",
  "maxConcurrentConnections",
  "connectionIdleTimeoutMs",
  "onHttpMessage",
  "binaryPath",
  "startTimeoutMs",
  "stopTimeoutMs",
]);

function isSet(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function nonEmptyString(c: Record<string, unknown>, field: string): void {
  const v = c[field];
  if (isSet(v) && (typeof v !== "string" || v.length === 0 || v.includes("\0"))) {
    throw new SnifferConfigError(field, "must be a non-empty string");
  }
}

function boolean(c: Record<string, unknown>, field: string): void {
  if (isSet(c[field]) && typeof c[field] !== "boolean") {
    throw new SnifferConfigError(field, "must be true or false");
  }
}

function integer(c: Record<string, unknown>, field: string, min: number): void {
  const v = c[field];
  if (isSet(v) && !(Number.isSafeInteger(v) && (v as number) >= min)) {
    throw new SnifferConfigError(field, `must be an integer of at least ${min} (got ${String(v)})`);
  }
}

/** Throws a SnifferConfigError naming the first field at fault; returns nothing when the
 * configuration is good. */
export function validateConfig(config: unknown): asserts config is SnifferConfig {
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new SnifferConfigError("", "must be an object");
  }
  const c = config as Record<string, unknown>;
  for (const key of Object.keys(c)) {
    if (!KNOWN.has(key)) {
      throw new SnifferConfigError(key, "is not an option");
    }
  }
  nonEmptyString(c, "interface");
  nonEmptyString(c, "file");
  if (isSet(c.interface) && isSet(c.file)) {
    throw new SnifferConfigError("file", "and config.interface exclude each other: give one");
  }
  if (!isSet(c.interface) && !isSet(c.file)) {
    throw new SnifferConfigError("interface", "is required (or config.file, to read a capture)");
  }
  const ports = c.ports;
  if (!Array.isArray(ports) || ports.length === 0) {
    throw new SnifferConfigError("ports", "is required: a non-empty array of ports (1-65535)");
  }
  ports.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 1 || p > 65535) {
      throw new SnifferConfigError(`ports[${i}]`, `must be a port from 1 to 65535 (got ${String(p)})`);
    }
  });
  boolean(c, "allowHttp");
  boolean(c, "outputStdout");
  nonEmptyString(c, "outputUrl");
  if (isSet(c.outputUrl)) {
    let url: URL;
    try {
      url = new URL(c.outputUrl as string);
    } catch {
      throw new SnifferConfigError("outputUrl", `is not a URL (got ${String(c.outputUrl)})`);
    }
    if (url.protocol === "http:") {
      if (c.allowHttp !== true) {
        throw new SnifferConfigError(
          "outputUrl",
          "must be an https:// URL (set config.allowHttp to send to http://)",
        );
      }
    } else if (url.protocol !== "https:") {
      throw new SnifferConfigError("outputUrl", `must be an https:// URL (got ${url.protocol}//)`);
    }
  }
  nonEmptyString(c, "outputUrlAuthToken");
  if (isSet(c.outputUrlAuthToken) && !isSet(c.outputUrl)) {
    throw new SnifferConfigError("outputUrlAuthToken", "needs config.outputUrl");
  }
  const rate = c.sampleRate;
  if (isSet(rate) && !(typeof rate === "number" && rate >= 0 && rate <= 1)) {
    throw new SnifferConfigError("sampleRate", `must be a number from 0 to 1 (got ${String(rate)})`);
  }
  integer(c, "maxBodySize", 0);
  integer(c, "maxConcurrentConnections", 1);
  integer(c, "connectionIdleTimeoutMs", 0);
  integer(c, "startTimeoutMs", 1);
  integer(c, "stopTimeoutMs", 1);
  if (isSet(c.onHttpMessage) && typeof c.onHttpMessage !== "function") {
    throw new SnifferConfigError("onHttpMessage", "must be a function");
  }
  nonEmptyString(c, "binaryPath");
}

/** The engine's environment variables this package sets or clears: a parent's INTERFACE,
 * PORTS, OUTPUT_* or METRICS_ADDR (the engine reads them like flags) must not leak into it, nor
 * a GOPHERCAP_LOG that would hide the readiness line. */
export const CLEARED_ENV = [
  "INTERFACE",
  "PORTS",
  "OUTPUT_STDOUT",
  "OUTPUT_URL",
  "OUTPUT_URL_AUTH_TOKEN",
  "METRICS_ADDR",
  "GOPHERCAP_LOG",
] as const;

export interface EngineCommand {
  binary: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** The binary, arguments and environment for a validated configuration. */
export function engineCommand(
  config: SnifferConfig,
  parentEnv: NodeJS.ProcessEnv = process.env,
): EngineCommand {
  const binary = config.binaryPath ?? (parentEnv.GOPHERCAP_BIN || "gophercap");
  // Global options first: JSON logs on stderr, at info (the readiness line is info).
  const args = ["--log-format", "json", "-v", "http-trace", "--format", "json", "--stdout"];
  for (const port of config.ports) {
    args.push(`--port=${port}`);
  }
  if (config.outputUrl !== undefined) {
    args.push(`--output-url=${config.outputUrl}`);
    if (config.allowHttp) {
      args.push("--allow-http");
    }
  }
  if (config.sampleRate !== undefined) {
    args.push(`--sample-rate=${config.sampleRate}`);
  }
  if (config.maxBodySize !== undefined) {
    args.push(`--max-body-size=${config.maxBodySize}`);
  }
  if (config.maxConcurrentConnections !== undefined) {
    args.push(`--max-concurrent-connections=${config.maxConcurrentConnections}`);
  }
  if (config.connectionIdleTimeoutMs !== undefined) {
    args.push(`--connection-idle-timeout-ms=${config.connectionIdleTimeoutMs}`);
  }
  if (config.interface !== undefined) {
    args.push(`--interface=${config.interface}`);
  } else {
    // After "--", a file name that starts with "-" is still a file.
    args.push("--", config.file as string);
  }
  const env: NodeJS.ProcessEnv = { ...parentEnv };
  for (const key of CLEARED_ENV) {
    delete env[key];
  }
  if (config.outputUrlAuthToken !== undefined) {
    env.OUTPUT_URL_AUTH_TOKEN = config.outputUrlAuthToken;
  }
  return { binary, args, env };
}
