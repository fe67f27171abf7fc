// The engine's JSON lines (snake_case, every key on every line) and the TCP Sniffer's message
// shape (camelCase) they are mapped to. The mapping is one-to-one: nothing is dropped, `headers`
// is added as a name-to-value record beside the ordered list (`rawHeaders`).

/** One side of a connection. */
export interface Endpoint {
  ip: string;
  port: number;
}

/** A header as it was on the wire: original case, in order, repeats kept. */
export interface HttpHeader {
  name: string;
  value: string;
}

/** One HTTP/1.x message, in the TCP Sniffer's shape. */
export interface HttpMessage {
  type: "http";
  /** RFC 3339 / ISO 8601 in UTC with nanoseconds: the packet that carried the first byte. */
  timestamp: string;
  /** The engine's connection id (unique within one run, even when a 5-tuple is reused). */
  connection: number;
  /** The server's side. */
  receiver: Endpoint;
  /** The client's side. */
  destination: Endpoint;
  direction: "request" | "response";
  version: string;
  /** Requests only (null on responses). */
  method: string | null;
  /** Requests only: the request target, path and query. */
  path: string | null;
  /** Responses only. */
  statusCode: number | null;
  /** Responses only: the reason phrase. */
  reason: string | null;
  /**
   * Headers by lower-case name; a repeated header's values joined with ", " (as Node's `http`
   * does). Redacted values (Authorization, Proxy-Authorization, Cookie, Set-Cookie by default)
   * are "[REDACTED]".
   */
  headers: Record<string, string>;
  /** Every header in order, original case, repeats kept. */
  rawHeaders: HttpHeader[];
  /** The body kept: text when it is UTF-8, base64 otherwise (see `bodyEncoding`). */
  body: string;
  bodyEncoding: "utf-8" | "base64";
  /** Body bytes on the wire (after de-chunking, before decoding), all of them. */
  bodyLength: number;
  /** The body was cut at `maxBodySize`. */
  bodyTruncated: boolean;
  /** The body was decoded from gzip or deflate. */
  bodyDecoded: boolean;
  /** The message was hit by missing bytes, or was still in flight when the capture ended. */
  incomplete: boolean;
  trailers: HttpHeader[];
  /** Responses: the request this answers. */
  requestMethod: string | null;
  requestPath: string | null;
  /** Responses: milliseconds from the request's first byte to the response's first byte. */
  latencyMs: number | null;
}

/** One WebSocket message (after an HTTP upgrade on a traced connection). */
export interface WebSocketMessage {
  type: "websocket";
  timestamp: string;
  connection: number;
  receiver: Endpoint;
  destination: Endpoint;
  direction: "client_to_server" | "server_to_client";
  opcode: string;
  fin: boolean;
  compressed: boolean;
  payload: string;
  payloadEncoding: "utf-8" | "base64";
  payloadLength: number;
  truncated: boolean;
  incomplete: boolean;
  closeCode: number | null;
  closeReason: string | null;
}

/** A line of the engine's stdout as it is written (`gophercap http-trace`, JSON format). */
export interface EngineHttpRecord {
  type: "http";
  timestamp: string;
  connection: number;
  receiver: Endpoint;
  destination: Endpoint;
  direction: "request" | "response";
  version: string;
  method: string | null;
  path: string | null;
  status_code: number | null;
  reason: string | null;
  headers: HttpHeader[];
  body: string;
  body_encoding: "utf-8" | "base64";
  body_length: number;
  body_truncated: boolean;
  body_decoded: boolean;
  incomplete: boolean;
  trailers: HttpHeader[];
  request_method: string | null;
  request_path: string | null;
  latency_ms: number | null;
}

export interface EngineWebSocketRecord {
  type: "websocket";
  timestamp: string;
  connection: number;
  receiver: Endpoint;
  destination: Endpoint;
  direction: "client_to_server" | "server_to_client";
  opcode: string;
  fin: boolean;
  compressed: boolean;
  payload: string;
  payload_encoding: "utf-8" | "base64";
  payload_length: number;
  truncated: boolean;
  incomplete: boolean;
  close_code: number | null;
  close_reason: string | null;
}

export type EngineRecord = EngineHttpRecord | EngineWebSocketRecord;

function endpoint(e: Endpoint): Endpoint {
  return { ip: e.ip, port: e.port };
}

function headerList(list: HttpHeader[]): HttpHeader[] {
  return list.map((h) => ({ name: h.name, value: h.value }));
}

/** Headers by lower-case name, repeats joined with ", ". */
export function headerRecord(list: HttpHeader[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const { name, value } of list) {
    const key = name.toLowerCase();
    out[key] = key in out ? `${out[key]}, ${value}` : value;
  }
  return out;
}

/** An engine `http` line in the TCP Sniffer's shape. */
export function toHttpMessage(r: EngineHttpRecord): HttpMessage {
  return {
    type: "http",
    timestamp: r.timestamp,
    connection: r.connection,
    receiver: endpoint(r.receiver),
    destination: endpoint(r.destination),
    direction: r.direction,
    version: r.version,
    method: r.method,
    path: r.path,
    statusCode: r.status_code,
    reason: r.reason,
    headers: headerRecord(r.headers),
    rawHeaders: headerList(r.headers),
    body: r.body,
    bodyEncoding: r.body_encoding,
    bodyLength: r.body_length,
    bodyTruncated: r.body_truncated,
    bodyDecoded: r.body_decoded,
    incomplete: r.incomplete,
    trailers: headerList(r.trailers),
    requestMethod: r.request_method,
    requestPath: r.request_path,
    latencyMs: r.latency_ms,
  };
}

/** An engine `websocket` line, camelCase. */
export function toWebSocketMessage(r: EngineWebSocketRecord): WebSocketMessage {
  return {
    type: "websocket",
    timestamp: r.timestamp,
    connection: r.connection,
    receiver: endpoint(r.receiver),
    destination: endpoint(r.destination),
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

/** One line of the engine's stderr: its structured log (`--log-format json`). */
export interface LogEntry {
  /** ERROR, WARN, INFO, DEBUG or TRACE. A stderr line that is not JSON is reported as ERROR. */
  level: string;
  message: string;
  /** When the engine logged it (absent for a line that is not JSON). */
  timestamp?: string;
  /** Every other key of the line: `event`, `interface`, `ports`, `exit_code`, counters, ... */
  fields: Record<string, unknown>;
  /** The line as the engine wrote it. */
  raw: string;
  /** "engine" for the engine's lines; "sniffer" for what this package reports itself. */
  source: "engine" | "sniffer";
}

/** A stderr line as a log entry. */
export function parseLogLine(raw: string): LogEntry {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { level: "ERROR", message: raw, fields: {}, raw, source: "engine" };
  }
  const { level, message, timestamp, target: _target, ...fields } = value as Record<
    string,
    unknown
  >;
  return {
    level: typeof level === "string" ? level : "INFO",
    message: typeof message === "string" ? message : "",
    timestamp: typeof timestamp === "string" ? timestamp : undefined,
    fields,
    raw,
    source: "engine",
  };
}
