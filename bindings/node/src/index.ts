// gophercap-sniffer: the TCP Sniffer's API over `gophercap http-trace`, run as a subprocess.

export { createSniffer, Sniffer, SnifferError } from "./sniffer";
export type { ExitInfo, SnifferEvents } from "./sniffer";
export { SnifferConfigError, validateConfig, engineCommand, CLEARED_ENV } from "./config";
export type { SnifferConfig, EngineCommand } from "./config";
export { toHttpMessage, toWebSocketMessage, headerRecord, parseLogLine } from "./message";
export type {
  Endpoint,
  HttpHeader,
  HttpMessage,
  WebSocketMessage,
  LogEntry,
  EngineRecord,
  EngineHttpRecord,
  EngineWebSocketRecord,
} from "./message";
