//! `gophercap tap --config FILE`: the tap's configuration, read in Stethoscope's own format so
//! that existing Stethoscope configs keep working unchanged. The file is JSON5 plus the two
//! liberties Stethoscope's loader allowed (full-line `#` comments, unquoted keys with hyphens),
//! which a string-aware pre-pass turns into JSON5 before the json5 crate parses it. The value
//! tree is then walked by hand rather than through serde derives: the walk can name every key
//! path it complains about, refuse unknown keys everywhere, and report all mistakes at once.

use json5::char::{is_json5_line_terminator as is_line_end, is_json5_whitespace};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A complete, commented configuration: `gophercap tap --example-config` prints it.
pub const EXAMPLE_CONFIG: &str = include_str!("example.json5");

/// Everything `gophercap tap` needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TapConfig {
    pub capture: CaptureConfig,
    /// The tap dials out to a receiver; `Some` only when enabled.
    pub connector: Option<ConnectorConfig>,
    /// The tap listens and receivers connect to it; `Some` only when enabled.
    pub listener: Option<ListenerConfig>,
    /// `Some` only when enabled.
    pub pcap: Option<PcapOutputConfig>,
    pub role: Role,
    /// `None` when `control.enabled` is false.
    pub control: Option<ControlConfig>,
    pub logging: LoggingConfig,
    pub runtime: RuntimeConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaptureConfig {
    /// `None` only for offline runs, which read a file instead.
    pub iface: Option<String>,
    pub local_ip: IpAddr,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub local_port: Option<u16>,
    /// The rendered BPF filter; `None` when the config asked for no filter (`""`).
    pub bpf_filter: Option<String>,
    pub session_idle: Duration,
    /// Startup buffer of the client-to-server direction (`c2s_buffer_bytes`).
    pub requests_buffer_bytes: usize,
    /// Startup buffer of the server-to-client direction (`s2c_buffer_bytes`).
    pub responses_buffer_bytes: usize,
    /// The libpcap kernel buffer size (`scapy_bufsize`).
    pub pcap_buffer_bytes: Option<usize>,
    /// Accepted for compatibility only: the link type comes from the capture itself.
    pub linktype: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorConfig {
    pub host: String,
    pub requests_port: u16,
    pub responses_port: u16,
    pub connect_timeout: Duration,
    pub retry_every: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    pub bind_ip: IpAddr,
    /// Inclusive; `None` lets the OS pick free ports.
    pub port_range: Option<(u16, u16)>,
    /// (requests, responses) ports of the first session; `None` when not given or both 0.
    pub first_ports: Option<(u16, u16)>,
    pub ack_stall: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapFormat {
    Pcap,
    Pcapng,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PcapOutputConfig {
    pub format: PcapFormat,
    pub per_session: bool,
    pub dir: PathBuf,
    pub queue_size: usize,
    /// `None` never closes an idle file.
    pub idle_close: Option<Duration>,
    pub close_on_fin: bool,
    pub fin_close_grace: Duration,
    pub sync: bool,
}

/// Which end of the connections the tapped host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    pub bind_ip: IpAddr,
    /// 0 lets the OS pick a free port.
    pub listen_port: u16,
    pub default_categories: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    pub console_level: tracing::Level,
    /// `Some` only when file logging is enabled.
    pub file: Option<(PathBuf, tracing::Level)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub workers: usize,
    pub capture_queue_size: usize,
    pub max_output_buffer_bytes: usize,
    pub drain_timeout: Duration,
    /// `None` disables the periodic statistics.
    pub stats_interval: Option<Duration>,
}

/// One validation mistake: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The key path, such as `io.output.listner.port_range_end`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not JSON5 (after the pre-pass). Line and column are 1-based, in the original text.
    #[error("{}line {line}, column {column}: {message}", file_prefix(file))]
    Syntax {
        file: Option<PathBuf>,
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed but wrong: every issue found, one per line.
    #[error("{}", issue_lines(file, issues))]
    Invalid {
        file: Option<PathBuf>,
        issues: Vec<Issue>,
    },
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

fn issue_lines(file: &Option<PathBuf>, issues: &[Issue]) -> String {
    let prefix = file_prefix(file);
    issues
        .iter()
        .map(|issue| format!("{prefix}{issue}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl TapConfig {
    /// Parse and validate; `offline` relaxes the iface requirement.
    pub fn parse(text: &str, offline: bool) -> Result<TapConfig, ConfigError> {
        let prepared = prepare(text);
        let root = match json5::from_str::<Strict>(&prepared.text) {
            Ok(Strict(value)) => value,
            Err(e) => return Err(prepared.syntax_error(&e)),
        };
        let mut issues = Issues::default();
        let config = walk(&root, offline, &mut issues);
        if issues.0.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                file: None,
                issues: issues.0,
            })
        }
    }

    /// Read and [`parse`](Self::parse) a file; every error names it.
    pub fn load(path: &Path, offline: bool) -> Result<TapConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        TapConfig::parse(&text, offline).map_err(|e| match e {
            ConfigError::Syntax {
                line,
                column,
                message,
                ..
            } => ConfigError::Syntax {
                file: Some(path.to_owned()),
                line,
                column,
                message,
            },
            ConfigError::Invalid { issues, .. } => ConfigError::Invalid {
                file: Some(path.to_owned()),
                issues,
            },
            read @ ConfigError::Read { .. } => read,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Pre-pass: Stethoscope's liberties → JSON5.

/// The pre-pass output, with what it needs to point syntax errors back at the original text.
struct Prepared {
    text: String,
    /// (line, column), 0-based in `text`, of every character the pre-pass inserted.
    inserted: Vec<(usize, usize)>,
}

impl Prepared {
    fn syntax_error(&self, err: &json5::Error) -> ConfigError {
        // An unclosed object or array is reported at its opening; only an input that ends
        // before any value begins comes without a position.
        let pos = err
            .position()
            .unwrap_or_else(|| json5::Position::from_offset(self.text.len(), &self.text));
        let shift = self
            .inserted
            .iter()
            .filter(|&&(line, column)| line == pos.line && column < pos.column)
            .count();
        let message = match err.code() {
            Some(code) => code.to_string(),
            None => {
                let full = err.to_string();
                match full.strip_suffix(&format!(" at {pos}")) {
                    Some(bare) => bare.to_owned(),
                    None => full,
                }
            }
        };
        ConfigError::Syntax {
            file: None,
            line: pos.line + 1,
            column: pos.column - shift + 1,
            message,
        }
    }
}

/// The pre-pass output text, tracking line and column as json5 counts them (characters, with
/// CR LF as one line break) so that inserted characters can be accounted for.
struct Out {
    text: String,
    line: usize,
    column: usize,
    after_cr: bool,
    /// Nothing but whitespace yet on the current line.
    line_blank: bool,
}

impl Out {
    fn push(&mut self, c: char) {
        self.text.push(c);
        if c == '\n' && self.after_cr {
            self.after_cr = false;
            return;
        }
        self.after_cr = c == '\r';
        if is_line_end(c) {
            self.line += 1;
            self.column = 0;
            self.line_blank = true;
        } else {
            self.column += 1;
            if !is_json5_whitespace(c) {
                self.line_blank = false;
            }
        }
    }
}

/// Blank out full-line `#` comments and quote unquoted keys that contain `-`, leaving strings
/// and comments alone. Line breaks are kept, so only the quotes shift columns.
fn prepare(src: &str) -> Prepared {
    #[derive(Clone, Copy)]
    enum State {
        Code,
        Str(char),
        LineComment,
        BlockComment,
    }
    let chars: Vec<char> = src.chars().collect();
    let mut out = Out {
        text: String::with_capacity(src.len() + 16),
        line: 0,
        column: 0,
        after_cr: false,
        line_blank: true,
    };
    let mut inserted = Vec::new();
    let mut state = State::Code;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match state {
            State::Code if c == '#' && out.line_blank => {
                while i < chars.len() && !is_line_end(chars[i]) {
                    out.push(' ');
                    i += 1;
                }
                continue;
            }
            State::Code if c == '"' || c == '\'' => state = State::Str(c),
            State::Code if c == '/' && next == Some('/') => state = State::LineComment,
            State::Code if c == '/' && next == Some('*') => {
                out.push('/');
                out.push('*');
                i += 2;
                state = State::BlockComment;
                continue;
            }
            State::Code if c.is_ascii_alphanumeric() || c == '_' || c == '$' => {
                let end = (i..chars.len())
                    .find(|&j| {
                        !(chars[j].is_ascii_alphanumeric() || matches!(chars[j], '_' | '$' | '-'))
                    })
                    .unwrap_or(chars.len());
                let word = &chars[i..end];
                let is_key = chars[end..].iter().find(|&&c| !is_json5_whitespace(c)) == Some(&':');
                let quote = is_key && !c.is_ascii_digit() && word.contains(&'-');
                if quote {
                    inserted.push((out.line, out.column));
                    out.push('"');
                }
                word.iter().for_each(|&w| out.push(w));
                if quote {
                    inserted.push((out.line, out.column));
                    out.push('"');
                }
                i = end;
                continue;
            }
            State::Code => {}
            State::Str(_) if c == '\\' => {
                out.push(c);
                if let Some(escaped) = next {
                    out.push(escaped);
                }
                i += 2;
                continue;
            }
            State::Str(quote) if c == quote => state = State::Code,
            State::Str(_) => {}
            State::LineComment if is_line_end(c) => state = State::Code,
            State::LineComment => {}
            State::BlockComment if c == '*' && next == Some('/') => {
                out.push('*');
                out.push('/');
                i += 2;
                state = State::Code;
                continue;
            }
            State::BlockComment => {}
        }
        out.push(c);
        i += 1;
    }
    Prepared {
        text: out.text,
        inserted,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON5 → serde_json::Value, refusing what serde_json's own conversion would let slip.

/// serde_json keeps the last of two equal keys without a word, and turns NaN and Infinity into
/// null (which here would mean "use the default"); a configuration should get neither.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON5 value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(n.into())))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(n.into())))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Strict, E> {
        Number::from_f64(n)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("NaN and Infinity are not allowed in a configuration"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(s)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "key {key:?} appears twice in the object that opens here"
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Strict(Value::Object(object)))
    }
}

// ---------------------------------------------------------------------------------------------
// The walk: typed reads that record every mistake under its key path.

#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn add(&mut self, path: String, message: impl Into<String>) {
        self.0.push(Issue {
            path,
            message: message.into(),
        });
    }
}

/// How a value is named in "expected …, found …".
fn found(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// One object of the file. Every key the schema reads is remembered, so what is left at
/// `finish` is unknown. An absent section reads as empty and reports nothing missing inside
/// it: whoever requires the section says so once.
struct Obj<'v> {
    path: String,
    map: Option<&'v Map<String, Value>>,
    known: Vec<&'static str>,
    /// This object or one around it is not an object: that was reported, and nothing inside
    /// it is also reported missing.
    broken: bool,
}

impl<'v> Obj<'v> {
    fn root(value: &'v Value, issues: &mut Issues) -> Obj<'v> {
        let map = match value {
            Value::Object(map) => Some(map),
            other => {
                issues.add(
                    String::new(),
                    format!(
                        "the configuration must be an object, found {}",
                        found(other)
                    ),
                );
                None
            }
        };
        Obj {
            path: String::new(),
            map,
            known: Vec::new(),
            broken: map.is_none(),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn is_present(&self) -> bool {
        self.map.is_some()
    }

    /// Present and not null.
    fn has(&self, key: &str) -> bool {
        self.map
            .and_then(|m| m.get(key))
            .is_some_and(|v| !v.is_null())
    }

    /// The value of `key`, marking it known; null reads as absent.
    fn get(&mut self, key: &'static str) -> Option<&'v Value> {
        self.known.push(key);
        self.map?.get(key).filter(|v| !v.is_null())
    }

    /// Read `key` with `convert`, which says what it expected when the value does not fit.
    fn read<T>(
        &mut self,
        issues: &mut Issues,
        key: &'static str,
        convert: impl FnOnce(&'v Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.get(key)?;
        convert(value)
            .map_err(|message| issues.add(self.path_of(key), message))
            .ok()
    }

    /// Report `key` missing when this object is present and `key` is not.
    fn need<T>(&self, issues: &mut Issues, key: &str, value: Option<T>, why: &str) -> Option<T> {
        if value.is_none() && self.is_present() && !self.has(key) {
            issues.add(self.path_of(key), format!("missing required key{why}"));
        }
        value
    }

    fn section(&mut self, issues: &mut Issues, key: &'static str) -> Obj<'v> {
        let map = self.read(issues, key, |v| match v {
            Value::Object(map) => Ok(map),
            other => Err(format!("expected an object, found {}", found(other))),
        });
        Obj {
            path: self.path_of(key),
            map,
            known: Vec::new(),
            broken: self.broken || (map.is_none() && self.has(key)),
        }
    }

    fn string(&mut self, issues: &mut Issues, key: &'static str) -> Option<&'v str> {
        self.read(issues, key, |v| match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(format!("expected a string, found {}", found(other))),
        })
    }

    fn text(&mut self, issues: &mut Issues, key: &'static str) -> Option<String> {
        self.read(issues, key, |v| match v {
            Value::String(s) if s.is_empty() => Err("must not be empty".to_owned()),
            Value::String(s) => Ok(s.clone()),
            other => Err(format!(
                "expected a non-empty string, found {}",
                found(other)
            )),
        })
    }

    fn flag(&mut self, issues: &mut Issues, key: &'static str) -> Option<bool> {
        self.read(issues, key, |v| match v {
            Value::Bool(b) => Ok(*b),
            other => Err(format!("expected true or false, found {}", found(other))),
        })
    }

    /// An integer in `min..=max`; `max == u64::MAX` means unbounded.
    fn int(&mut self, issues: &mut Issues, key: &'static str, min: u64, max: u64) -> Option<u64> {
        self.read(issues, key, |v| match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => {
                let wanted = match (min, max) {
                    (0, u64::MAX) => "a non-negative integer".to_owned(),
                    (min, u64::MAX) => format!("an integer of at least {min}"),
                    (min, max) => format!("an integer from {min} to {max}"),
                };
                Err(format!("expected {wanted}, found {}", found(v)))
            }
        })
    }

    fn port(&mut self, issues: &mut Issues, key: &'static str, min: u16) -> Option<u16> {
        self.int(issues, key, min.into(), u16::MAX.into())
            .map(|n| n as u16)
    }

    fn size(&mut self, issues: &mut Issues, key: &'static str, min: u64) -> Option<usize> {
        let n = self.int(issues, key, min, u64::MAX)?;
        usize::try_from(n)
            .map_err(|_| issues.add(self.path_of(key), format!("{n} is too large")))
            .ok()
    }

    /// A number of seconds (integer or not): greater than 0, or at least 0 with `zero_ok`.
    fn seconds(
        &mut self,
        issues: &mut Issues,
        key: &'static str,
        zero_ok: bool,
    ) -> Option<Duration> {
        self.read(issues, key, |v| {
            let wanted = if zero_ok {
                "a number of seconds, 0 or more"
            } else {
                "a number of seconds greater than 0"
            };
            match v.as_f64() {
                Some(s) if s > 0.0 || (zero_ok && s == 0.0) => {
                    Duration::try_from_secs_f64(s).map_err(|_| format!("{s} seconds is too long"))
                }
                _ => Err(format!("expected {wanted}, found {}", found(v))),
            }
        })
    }

    fn ip(&mut self, issues: &mut Issues, key: &'static str) -> Option<IpAddr> {
        self.read(issues, key, |v| {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("expected an IPv4 or IPv6 address, found {}", found(v)))
        })
    }

    /// One of `options`, compared exactly.
    fn choice(
        &mut self,
        issues: &mut Issues,
        key: &'static str,
        options: &[&'static str],
    ) -> Option<&'static str> {
        self.read(issues, key, |v| {
            v.as_str()
                .and_then(|s| options.iter().copied().find(|o| *o == s))
                .ok_or_else(|| {
                    let list: Vec<String> = options.iter().map(|o| format!("{o:?}")).collect();
                    format!("expected one of {}, found {}", list.join(", "), found(v))
                })
        })
    }

    /// Report the keys no reader asked for.
    fn finish(self, issues: &mut Issues) {
        let Some(map) = self.map else { return };
        for key in map.keys() {
            if !self.known.contains(&key.as_str()) {
                issues.add(
                    self.path_of(key),
                    format!(
                        "unknown key (this section takes: {})",
                        self.known.join(", ")
                    ),
                );
            }
        }
    }
}

const PLACEHOLDERS: &str = "{local_ip}, {remote_ip}, {remote_port}, {local_port}";

const DEFAULT_FILTER: &str = "tcp and ((src host {local_ip} and dst host {remote_ip} and dst port \
     {remote_port}) or (src host {remote_ip} and src port {remote_port} and dst host {local_ip}))";

/// The endpoints a filter template is rendered with.
struct Endpoints {
    local_ip: IpAddr,
    remote_ip: IpAddr,
    remote_port: u16,
    local_port: Option<u16>,
}

/// Fill the placeholders of a `bpf-filter` template; when a local port is set and the
/// template ignores it, the filter is narrowed to that port anyway.
fn render_filter(template: &str, at: &Endpoints) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut uses_local_port = false;
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        if rest[open..].starts_with('}') {
            return Err(format!("unmatched }} (placeholders are {PLACEHOLDERS})"));
        }
        let Some(len) = rest[open..].find('}') else {
            return Err(format!("unclosed {{ (placeholders are {PLACEHOLDERS})"));
        };
        match &rest[open + 1..open + len] {
            "local_ip" => out.push_str(&at.local_ip.to_string()),
            "remote_ip" => out.push_str(&at.remote_ip.to_string()),
            "remote_port" => out.push_str(&at.remote_port.to_string()),
            "local_port" => {
                uses_local_port = true;
                if let Some(port) = at.local_port {
                    out.push_str(&port.to_string());
                }
            }
            name => {
                return Err(format!(
                    "unknown placeholder {{{name}}} (placeholders are {PLACEHOLDERS})"
                ));
            }
        }
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    Ok(match at.local_port {
        Some(port) if !uses_local_port => {
            let l = at.local_ip;
            format!(
                "({out}) and ((src host {l} and src port {port}) or (dst host {l} and dst port {port}))"
            )
        }
        _ => out,
    })
}

const DEFAULT_BUFFER_BYTES: usize = 1 << 20;

fn capture(capture: &mut Obj, issues: &mut Issues, offline: bool) -> CaptureConfig {
    let iface = capture.text(issues, "iface");
    let iface = if offline {
        iface
    } else {
        capture.need(
            issues,
            "iface",
            iface,
            " (live capture needs an interface; only offline runs may leave it out)",
        )
    };
    let local_ip = capture.ip(issues, "local_ip");
    let local_ip = capture.need(issues, "local_ip", local_ip, "");
    let remote_ip = capture.ip(issues, "remote_ip");
    let remote_ip = capture.need(issues, "remote_ip", remote_ip, "");
    let remote_port = capture.port(issues, "remote_port", 1);
    let remote_port = capture.need(issues, "remote_port", remote_port, "");
    let local_port = capture.port(issues, "local_port", 1);
    if let (Some(local), Some(remote)) = (local_ip, remote_ip)
        && local.is_ipv4() != remote.is_ipv4()
    {
        issues.add(
            capture.path_of("remote_ip"),
            format!("{remote} and local_ip {local} are of different IP versions"),
        );
    }
    // A missing or invalid endpoint is already an issue, so the whole result is an error and
    // the stand-in below is never seen; rendering still checks the template's placeholders.
    let at = Endpoints {
        local_ip: local_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
        remote_ip: remote_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
        remote_port: remote_port.unwrap_or(0),
        local_port,
    };
    let template = capture
        .string(issues, "bpf-filter")
        .unwrap_or(DEFAULT_FILTER);
    let bpf_filter = if template.trim().is_empty() {
        None
    } else {
        render_filter(template, &at)
            .map_err(|m| issues.add(capture.path_of("bpf-filter"), m))
            .ok()
    };
    let session_idle = capture.seconds(issues, "session_idle_sec", false);
    let both = capture.size(issues, "buffer_bytes", 0);
    let c2s = capture.size(issues, "c2s_buffer_bytes", 0);
    let s2c = capture.size(issues, "s2c_buffer_bytes", 0);
    let pcap_buffer_bytes = capture.int(issues, "scapy_bufsize", 1, i32::MAX as u64);
    let linktype = capture.choice(issues, "linktype", &["ethernet", "raw", "linux_sll"]);
    CaptureConfig {
        iface,
        local_ip: at.local_ip,
        remote_ip: at.remote_ip,
        remote_port: at.remote_port,
        local_port,
        bpf_filter,
        session_idle: session_idle.unwrap_or(Duration::from_secs(120)),
        requests_buffer_bytes: c2s.or(both).unwrap_or(DEFAULT_BUFFER_BYTES),
        responses_buffer_bytes: s2c.or(both).unwrap_or(DEFAULT_BUFFER_BYTES),
        pcap_buffer_bytes: pcap_buffer_bytes.map(|n| n as usize),
        linktype: linktype.map(str::to_owned),
    }
}

fn connector(rh: &mut Obj, issues: &mut Issues) -> Option<ConnectorConfig> {
    let enabled = rh.flag(issues, "enabled").unwrap_or(false);
    let host = rh.text(issues, "host");
    let requests_port = rh.port(issues, "requests_port", 0);
    let responses_port = rh.port(issues, "responses_port", 0);
    let mut timeouts = rh.section(issues, "timeouts");
    let connect = timeouts.seconds(issues, "connect", false);
    let retry_every = timeouts.seconds(issues, "retry-every", false);
    timeouts.finish(issues);
    if !enabled {
        return None;
    }
    let why = " (remote-host is enabled)";
    let host = rh.need(issues, "host", host, why);
    let mut dialled = |key: &str, port: Option<u16>| match rh.need(issues, key, port, why) {
        Some(0) => {
            issues.add(
                rh.path_of(key),
                "0 cannot be dialled: a connector connects to the port its receiver listens on",
            );
            None
        }
        port => port,
    };
    let requests_port = dialled("requests_port", requests_port);
    let responses_port = dialled("responses_port", responses_port);
    Some(ConnectorConfig {
        host: host.unwrap_or_default(),
        requests_port: requests_port.unwrap_or(0),
        responses_port: responses_port.unwrap_or(0),
        connect_timeout: connect.unwrap_or(Duration::from_secs(5)),
        retry_every: retry_every.unwrap_or(Duration::from_secs(30)),
    })
}

fn listener(l: &mut Obj, issues: &mut Issues) -> Option<ListenerConfig> {
    let enabled = l.flag(issues, "enabled").unwrap_or(false);
    let bind_ip = l.ip(issues, "bind_ip");
    let start = l.port(issues, "port_range_start", 0);
    let end = l.port(issues, "port_range_end", 0);
    let first_requests = l.port(issues, "first_requests_port", 0);
    let first_responses = l.port(issues, "first_responses_port", 0);
    let mut timeouts = l.section(issues, "timeouts");
    let ack_stall = timeouts.seconds(issues, "ack_stall_sec", false);
    timeouts.finish(issues);
    if !enabled {
        return None;
    }
    let why = " (the listener is enabled)";
    let start = l.need(issues, "port_range_start", start, why);
    let end = l.need(issues, "port_range_end", end, why);
    let port_range = match (start, end) {
        (Some(0), Some(0)) => None,
        (Some(0), Some(end)) => {
            issues.add(
                l.path_of("port_range_start"),
                format!(
                    "0 with port_range_end {end}: set both to 0 to let the OS pick free ports, \
                     or neither (one-zero range)"
                ),
            );
            None
        }
        (Some(start), Some(0)) => {
            issues.add(
                l.path_of("port_range_end"),
                format!(
                    "0 with port_range_start {start}: set both to 0 to let the OS pick free \
                     ports, or neither (one-zero range)"
                ),
            );
            None
        }
        (Some(start), Some(end)) if end < start => {
            issues.add(
                l.path_of("port_range_end"),
                format!("{end} is below port_range_start {start} (inverted range)"),
            );
            None
        }
        (Some(start), Some(end)) if end == start => {
            issues.add(
                l.path_of("port_range_end"),
                format!(
                    "{start}-{end} holds one port, but a session needs a requests port and a \
                     responses port (empty range)"
                ),
            );
            None
        }
        (Some(start), Some(end)) => Some((start, end)),
        _ => None,
    };
    let first_ports = match (first_requests, first_responses) {
        (Some(0), Some(0)) | (None, None) => None,
        (Some(requests), Some(responses)) if requests == responses => {
            issues.add(
                l.path_of("first_responses_port"),
                format!(
                    "{responses} is also first_requests_port: requests and responses need \
                     different ports"
                ),
            );
            None
        }
        (Some(requests), Some(responses)) => Some((requests, responses)),
        (Some(_), None) => {
            l.need(
                issues,
                "first_responses_port",
                None::<u16>,
                " (first_requests_port is set: give both or neither)",
            );
            None
        }
        (None, Some(_)) => {
            l.need(
                issues,
                "first_requests_port",
                None::<u16>,
                " (first_responses_port is set: give both or neither)",
            );
            None
        }
    };
    Some(ListenerConfig {
        bind_ip: bind_ip.unwrap_or(Ipv4Addr::LOCALHOST.into()),
        port_range,
        first_ports,
        ack_stall,
    })
}

fn pcap(p: &mut Obj, issues: &mut Issues) -> Option<PcapOutputConfig> {
    let enabled = p.flag(issues, "enabled").unwrap_or(false);
    let format = match p.choice(issues, "format", &["pcap", "pcapng"]) {
        Some("pcap") => PcapFormat::Pcap,
        _ => PcapFormat::Pcapng,
    };
    let per_session = p.flag(issues, "per_session").unwrap_or(true);
    let dir = p.text(issues, "dir");
    let legacy = p.text(issues, "path");
    if p.has("dir") && p.has("path") {
        issues.add(
            p.path_of("path"),
            "given together with dir: path is the older name of dir, keep one",
        );
    }
    let queue_size = p.size(issues, "queue_size", 1).unwrap_or(20_000);
    let idle_close = p.seconds(issues, "idle_close_sec", true);
    let close_on_fin = p.flag(issues, "close_on_fin").unwrap_or(true);
    let fin_close_grace = p.seconds(issues, "fin_close_grace_sec", true);
    let sync = p.flag(issues, "sync").unwrap_or(false);
    if !enabled {
        return None;
    }
    let dir = dir.or(legacy);
    if !p.has("dir") && !p.has("path") {
        p.need(
            issues,
            "dir",
            None::<()>,
            " (pcap output is enabled; path is accepted as its older name)",
        );
    }
    Some(PcapOutputConfig {
        format,
        per_session,
        dir: dir.map(PathBuf::from).unwrap_or_default(),
        queue_size,
        idle_close: match idle_close {
            Some(Duration::ZERO) => None,
            other => Some(other.unwrap_or(Duration::from_secs(120))),
        },
        close_on_fin,
        fin_close_grace: fin_close_grace.unwrap_or(Duration::from_secs(1)),
        sync,
    })
}

const CATEGORIES: [&str; 6] = ["session", "flow", "ports", "output", "stats", "control"];

fn control(c: &mut Obj, issues: &mut Issues) -> Option<ControlConfig> {
    let enabled = c.flag(issues, "enabled").unwrap_or(true);
    let bind_ip = c.ip(issues, "bind_ip");
    let listen_port = c.port(issues, "listen_port", 0);
    let path = c.path_of("default_cats");
    let categories = c.read(issues, "default_cats", |v| match v {
        Value::Array(items) => Ok(items),
        other => Err(format!(
            "expected an array of category names, found {}",
            found(other)
        )),
    });
    let default_categories = match categories {
        Some(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item.as_str() {
                Some(name) if CATEGORIES.contains(&name) => Some(name.to_owned()),
                _ => {
                    issues.add(
                        format!("{path}[{i}]"),
                        format!(
                            "expected one of {}, found {}",
                            CATEGORIES.map(|c| format!("{c:?}")).join(", "),
                            found(item)
                        ),
                    );
                    None
                }
            })
            .collect(),
        None => ["session", "ports", "output", "control"]
            .map(String::from)
            .to_vec(),
    };
    enabled.then(|| ControlConfig {
        bind_ip: bind_ip.unwrap_or(Ipv4Addr::LOCALHOST.into()),
        listen_port: listen_port.unwrap_or(50005),
        default_categories,
    })
}

fn verbosity(obj: &mut Obj, issues: &mut Issues) -> Option<tracing::Level> {
    obj.read(issues, "verbosity", |v| {
        use tracing::Level;
        match v.as_str().map(str::to_ascii_uppercase).as_deref() {
            Some("TRACE") => Ok(Level::TRACE),
            Some("DEBUG") => Ok(Level::DEBUG),
            Some("INFO") => Ok(Level::INFO),
            Some("WARN" | "WARNING") => Ok(Level::WARN),
            Some("ERROR" | "CRITICAL") => Ok(Level::ERROR),
            _ => Err(format!(
                "expected one of TRACE, DEBUG, INFO, WARN, WARNING, ERROR, CRITICAL, found {}",
                found(v)
            )),
        }
    })
}

/// The logging settings, and `logging.stats.report_interval` (Stethoscope's older home of the
/// statistics interval).
fn logging(l: &mut Obj, issues: &mut Issues) -> (LoggingConfig, Option<Duration>) {
    let mut console = l.section(issues, "console");
    let console_level = verbosity(&mut console, issues).unwrap_or(tracing::Level::INFO);
    console.finish(issues);
    let mut file = l.section(issues, "file");
    let file_enabled = file.flag(issues, "enabled").unwrap_or(false);
    let file_path = file.text(issues, "path");
    let file_level = verbosity(&mut file, issues).unwrap_or(tracing::Level::INFO);
    let file_path = if file_enabled {
        file.need(issues, "path", file_path, " (file logging is enabled)")
    } else {
        None
    };
    file.finish(issues);
    let mut stats = l.section(issues, "stats");
    let report_interval = stats.seconds(issues, "report_interval", true);
    stats.finish(issues);
    let logging = LoggingConfig {
        console_level,
        file: file_path.map(|p| (PathBuf::from(p), file_level)),
    };
    (logging, report_interval)
}

fn runtime(r: &mut Obj, issues: &mut Issues, report_interval: Option<Duration>) -> RuntimeConfig {
    let workers = match r.int(issues, "workers", 0, 256) {
        Some(0) | None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(n) => n as usize,
    };
    let capture_queue_size = r.int(issues, "capture_queue_size", 1, 5_000_000);
    let max_output_buffer_bytes = r.size(issues, "max_output_buffer_bytes", 1);
    let drain_timeout_ms = r.int(issues, "drain_timeout_ms", 0, u64::MAX);
    let stats_interval = r
        .seconds(issues, "stats_interval_sec", true)
        .or(report_interval)
        .unwrap_or(Duration::from_secs(5));
    RuntimeConfig {
        workers,
        capture_queue_size: capture_queue_size.map_or(50_000, |n| n as usize),
        max_output_buffer_bytes: max_output_buffer_bytes.unwrap_or(1_000_000),
        drain_timeout: Duration::from_millis(drain_timeout_ms.unwrap_or(5000)),
        stats_interval: (!stats_interval.is_zero()).then_some(stats_interval),
    }
}

fn walk(root: &Value, offline: bool, issues: &mut Issues) -> TapConfig {
    let mut top = Obj::root(root, issues);
    let mut io = top.section(issues, "io");

    let mut input = io.section(issues, "input");
    if !input.broken && !input.has("capture") {
        issues.add(input.path_of("capture"), "missing required section");
    }
    let mut capture_obj = input.section(issues, "capture");
    let capture = capture(&mut capture_obj, issues, offline);
    capture_obj.finish(issues);
    input.finish(issues);

    let mut output = io.section(issues, "output");
    let mut remote_host = output.section(issues, "remote-host");
    let connector = connector(&mut remote_host, issues);
    remote_host.finish(issues);
    // `listner` is Stethoscope's spelling. The section is read under the name the file uses;
    // the other name only counts as known, so that giving both is one error, not two.
    let (spelling, other) = if output.has("listner") {
        ("listner", "listener")
    } else {
        ("listener", "listner")
    };
    if output.has(other) {
        issues.add(
            output.path_of("listener"),
            "given together with listner: they are two spellings of one section, keep one",
        );
    }
    let mut listener_obj = output.section(issues, spelling);
    output.get(other);
    let listener = listener(&mut listener_obj, issues);
    listener_obj.finish(issues);
    let mut pcap_obj = output.section(issues, "pcap");
    let pcap = pcap(&mut pcap_obj, issues);
    pcap_obj.finish(issues);
    output.finish(issues);

    let mut mapping = io.section(issues, "mapping");
    let role = match mapping.choice(issues, "role", &["client", "server"]) {
        Some("server") => Role::Server,
        _ => Role::Client,
    };
    mapping.finish(issues);
    io.finish(issues);

    let mut control_obj = top.section(issues, "control");
    let control = control(&mut control_obj, issues);
    control_obj.finish(issues);

    let mut logging_obj = top.section(issues, "logging");
    let (logging, report_interval) = logging(&mut logging_obj, issues);
    logging_obj.finish(issues);

    let mut runtime_obj = top.section(issues, "runtime");
    let runtime = runtime(&mut runtime_obj, issues, report_interval);
    runtime_obj.finish(issues);
    top.finish(issues);

    TapConfig {
        capture,
        connector,
        listener,
        pcap,
        role,
        control,
        logging,
        runtime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// A valid live configuration with extra text spliced into the capture section, into
    /// `io` and at the top level.
    fn config(capture: &str, io: &str, top: &str) -> String {
        format!(
            "{{ io: {{ input: {{ capture: {{ iface: 'eth0', local_ip: '10.99.1.20', \
             remote_ip: '10.99.7.5', remote_port: 5432, {capture} }} }}, {io} }}, {top} }}"
        )
    }

    fn ok(text: &str) -> TapConfig {
        TapConfig::parse(text, false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The issues of an invalid configuration, as displayed.
    fn issues_of(text: &str, offline: bool) -> Vec<String> {
        match TapConfig::parse(text, offline) {
            Err(ConfigError::Invalid { issues, .. }) => {
                issues.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected validation issues, got {other:?}"),
        }
    }

    fn issues(text: &str) -> Vec<String> {
        issues_of(text, false)
    }

    fn syntax(text: &str) -> (usize, usize, String) {
        match TapConfig::parse(text, false) {
            Err(ConfigError::Syntax {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    fn cpus() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    const DEFAULT_RENDERED: &str = "tcp and ((src host 10.99.1.20 and dst host 10.99.7.5 and dst \
         port 5432) or (src host 10.99.7.5 and src port 5432 and dst host 10.99.1.20))";

    #[test]
    fn example_config_parses_and_validates() {
        let c = TapConfig::parse(EXAMPLE_CONFIG, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.capture.iface.as_deref(), Some("eth0"));
        assert_eq!(c.capture.bpf_filter.as_deref(), Some(DEFAULT_RENDERED));
        assert_eq!(c.connector.unwrap().host, "10.99.40.2");
        let listener = c.listener.unwrap();
        assert_eq!(listener.bind_ip, IpAddr::from(Ipv4Addr::LOCALHOST));
        assert_eq!(listener.port_range, Some((33100, 33199)));
        assert_eq!(c.pcap.unwrap().fin_close_grace, Duration::from_millis(1500));
        assert_eq!(c.control.unwrap().listen_port, 50005);
        assert_eq!(c.logging.file, None);
        assert_eq!(c.runtime.stats_interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn minimal_config_takes_every_default() {
        let c = ok(&config("", "", ""));
        let expected = TapConfig {
            capture: CaptureConfig {
                iface: Some("eth0".into()),
                local_ip: "10.99.1.20".parse().unwrap(),
                remote_ip: "10.99.7.5".parse().unwrap(),
                remote_port: 5432,
                local_port: None,
                bpf_filter: Some(DEFAULT_RENDERED.into()),
                session_idle: Duration::from_secs(120),
                requests_buffer_bytes: 1_048_576,
                responses_buffer_bytes: 1_048_576,
                pcap_buffer_bytes: None,
                linktype: None,
            },
            connector: None,
            listener: None,
            pcap: None,
            role: Role::Client,
            control: Some(ControlConfig {
                bind_ip: Ipv4Addr::LOCALHOST.into(),
                listen_port: 50005,
                default_categories: vec![
                    "session".into(),
                    "ports".into(),
                    "output".into(),
                    "control".into(),
                ],
            }),
            logging: LoggingConfig {
                console_level: tracing::Level::INFO,
                file: None,
            },
            runtime: RuntimeConfig {
                workers: cpus(),
                capture_queue_size: 50_000,
                max_output_buffer_bytes: 1_000_000,
                drain_timeout: Duration::from_millis(5000),
                stats_interval: Some(Duration::from_secs(5)),
            },
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn enabled_sections_take_their_defaults() {
        let c = ok(&config(
            "",
            "output: { 'remote-host': { enabled: true, host: 'rx', requests_port: 7001, \
             responses_port: 7002 }, listener: { enabled: true, port_range_start: 0, \
             port_range_end: 0 }, pcap: { enabled: true, path: '/tmp/p' } }",
            "",
        ));
        assert_eq!(
            c.connector,
            Some(ConnectorConfig {
                host: "rx".into(),
                requests_port: 7001,
                responses_port: 7002,
                connect_timeout: Duration::from_secs(5),
                retry_every: Duration::from_secs(30),
            })
        );
        assert_eq!(
            c.listener,
            Some(ListenerConfig {
                bind_ip: Ipv4Addr::LOCALHOST.into(),
                port_range: None,
                first_ports: None,
                ack_stall: None,
            })
        );
        assert_eq!(
            c.pcap,
            Some(PcapOutputConfig {
                format: PcapFormat::Pcapng,
                per_session: true,
                dir: "/tmp/p".into(),
                queue_size: 20_000,
                idle_close: Some(Duration::from_secs(120)),
                close_on_fin: true,
                fin_close_grace: Duration::from_secs(1),
                sync: false,
            })
        );
    }

    /// A config as a Stethoscope user writes it: `#` comments, unquoted hyphenated keys,
    /// single quotes, trailing commas, and the `listner` spelling.
    const STETHOSCOPE_STYLE: &str = r#"
# tap for the orders service
{
  io: {
    input: {
      capture: {
        iface: 'ens5',
        # the service and us
        local_ip: '10.99.3.14',
        remote_ip: '10.99.200.9',
        remote_port: 8443,
        local_port: null,
        bpf-filter: 'tcp and host {remote_ip} and port {remote_port}',
        session_idle_sec: 45.5,
        buffer_bytes: 262144,
        s2c_buffer_bytes: 2097152,
        scapy_bufsize: 33554432,
        linktype: 'linux_sll',
      },
    },
    output: {
      remote-host: {
        enabled: true,
        host: 'collector.tap.internal',
        requests_port: 9100,
        responses_port: 9101,
        timeouts: { connect: 2, retry-every: 10, },
      },
      listner: {
        enabled: true,
        bind_ip: '10.99.3.14',
        port_range_start: 40000,
        port_range_end: 40099,
        first_requests_port: 40010,
        first_responses_port: 40011,
        timeouts: { ack_stall_sec: 7.5 },
      },
      pcap: {
        enabled: true,
        format: 'pcap',
        per_session: false,
        path: '/srv/tap/pcaps',
        queue_size: 5000,
        idle_close_sec: 0,
        close_on_fin: false,
        fin_close_grace_sec: 0.25,
        sync: true,
      },
    },
    mapping: { role: 'server' },
  },
  # operators only reach it over ssh
  control: {
    bind_ip: '::1',
    listen_port: 0,
    default_cats: ['flow', 'stats'],
  },
  logging: {
    console: { verbosity: 'warning' },
    file: { enabled: true, path: '/var/log/tap/orders.log', verbosity: 'Critical' },
    stats: { report_interval: 60 },
  },
  runtime: {
    workers: 4,
    capture_queue_size: 200000,
    max_output_buffer_bytes: 8388608,
    drain_timeout_ms: 0,
    stats_interval_sec: 0,
  },
}
"#;

    #[test]
    fn stethoscope_style_config_parses_to_the_expected_struct() {
        let expected = TapConfig {
            capture: CaptureConfig {
                iface: Some("ens5".into()),
                local_ip: "10.99.3.14".parse().unwrap(),
                remote_ip: "10.99.200.9".parse().unwrap(),
                remote_port: 8443,
                local_port: None,
                bpf_filter: Some("tcp and host 10.99.200.9 and port 8443".into()),
                session_idle: Duration::from_millis(45_500),
                requests_buffer_bytes: 262_144,
                responses_buffer_bytes: 2_097_152,
                pcap_buffer_bytes: Some(33_554_432),
                linktype: Some("linux_sll".into()),
            },
            connector: Some(ConnectorConfig {
                host: "collector.tap.internal".into(),
                requests_port: 9100,
                responses_port: 9101,
                connect_timeout: Duration::from_secs(2),
                retry_every: Duration::from_secs(10),
            }),
            listener: Some(ListenerConfig {
                bind_ip: "10.99.3.14".parse().unwrap(),
                port_range: Some((40000, 40099)),
                first_ports: Some((40010, 40011)),
                ack_stall: Some(Duration::from_millis(7500)),
            }),
            pcap: Some(PcapOutputConfig {
                format: PcapFormat::Pcap,
                per_session: false,
                dir: "/srv/tap/pcaps".into(),
                queue_size: 5000,
                idle_close: None,
                close_on_fin: false,
                fin_close_grace: Duration::from_millis(250),
                sync: true,
            }),
            role: Role::Server,
            control: Some(ControlConfig {
                bind_ip: Ipv6Addr::LOCALHOST.into(),
                listen_port: 0,
                default_categories: vec!["flow".into(), "stats".into()],
            }),
            logging: LoggingConfig {
                console_level: tracing::Level::WARN,
                file: Some(("/var/log/tap/orders.log".into(), tracing::Level::ERROR)),
            },
            runtime: RuntimeConfig {
                workers: 4,
                capture_queue_size: 200_000,
                max_output_buffer_bytes: 8_388_608,
                drain_timeout: Duration::ZERO,
                stats_interval: None,
            },
        };
        assert_eq!(ok(STETHOSCOPE_STYLE), expected);
    }

    #[test]
    fn missing_required_capture_keys_are_all_reported() {
        let text = "{ io: { input: { capture: {} } } }";
        assert_eq!(
            issues(text),
            [
                "io.input.capture.iface: missing required key (live capture needs an interface; \
                 only offline runs may leave it out)",
                "io.input.capture.local_ip: missing required key",
                "io.input.capture.remote_ip: missing required key",
                "io.input.capture.remote_port: missing required key",
            ]
        );
        assert_eq!(
            issues_of(text, true),
            [
                "io.input.capture.local_ip: missing required key",
                "io.input.capture.remote_ip: missing required key",
                "io.input.capture.remote_port: missing required key",
            ]
        );
    }

    #[test]
    fn offline_runs_need_no_iface() {
        let text = "{ io: { input: { capture: { local_ip: '10.99.1.20', remote_ip: '10.99.7.5', \
                    remote_port: 5432 } } } }";
        let c = TapConfig::parse(text, true).unwrap();
        assert_eq!(c.capture.iface, None);
        assert_eq!(c.capture.bpf_filter.as_deref(), Some(DEFAULT_RENDERED));
    }

    #[test]
    fn missing_capture_section_is_reported_once() {
        assert_eq!(issues("{}"), ["io.input.capture: missing required section"]);
        assert_eq!(
            issues("{ io: { input: { capture: null } } }"),
            ["io.input.capture: missing required section"]
        );
    }

    #[test]
    fn wrong_types_say_what_was_expected_and_found() {
        let text = "{ io: { input: { capture: { iface: 3, local_ip: '10.99.1', remote_ip: true, \
                    remote_port: '5000', local_port: 5.5, session_idle_sec: '60', \
                    buffer_bytes: -1 } }, output: 'none' }, control: { enabled: 'yes' } }";
        assert_eq!(
            issues(text),
            [
                "io.input.capture.iface: expected a non-empty string, found 3",
                "io.input.capture.local_ip: expected an IPv4 or IPv6 address, found string \
                 \"10.99.1\"",
                "io.input.capture.remote_ip: expected an IPv4 or IPv6 address, found true",
                "io.input.capture.remote_port: expected an integer from 1 to 65535, found string \
                 \"5000\"",
                "io.input.capture.local_port: expected an integer from 1 to 65535, found 5.5",
                "io.input.capture.session_idle_sec: expected a number of seconds greater than 0, \
                 found string \"60\"",
                "io.input.capture.buffer_bytes: expected a non-negative integer, found -1",
                "io.output: expected an object, found string \"none\"",
                "control.enabled: expected true or false, found string \"yes\"",
            ]
        );
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let text = config(
            "remote_port: 70000, session_idle_sec: 0, scapy_bufsize: 0",
            "",
            "runtime: { workers: 257, capture_queue_size: 0, stats_interval_sec: -1 }",
        );
        // remote_port appears twice in `text`: the duplicate is caught first.
        assert_eq!(
            syntax(&text).2,
            "key \"remote_port\" appears twice in the object that opens here"
        );
        let text = text.replace("remote_port: 5432, ", "");
        assert_eq!(
            issues(&text),
            [
                "io.input.capture.remote_port: expected an integer from 1 to 65535, found 70000",
                "io.input.capture.session_idle_sec: expected a number of seconds greater than 0, \
                 found 0",
                "io.input.capture.scapy_bufsize: expected an integer from 1 to 2147483647, found 0",
                "runtime.workers: expected an integer from 0 to 256, found 257",
                "runtime.capture_queue_size: expected an integer from 1 to 5000000, found 0",
                "runtime.stats_interval_sec: expected a number of seconds, 0 or more, found -1",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused_at_every_depth() {
        let text = config(
            "snaplen: 65535",
            "output: { pcap: { compress: true }, 'remote-host': { timeouts: { read: 1 } } }, \
             extra: {}",
            "metrics: {}",
        );
        assert_eq!(
            issues(&text),
            [
                "io.input.capture.snaplen: unknown key (this section takes: iface, local_ip, \
                 remote_ip, remote_port, local_port, bpf-filter, session_idle_sec, buffer_bytes, \
                 c2s_buffer_bytes, s2c_buffer_bytes, scapy_bufsize, linktype)",
                "io.output.remote-host.timeouts.read: unknown key (this section takes: connect, \
                 retry-every)",
                "io.output.pcap.compress: unknown key (this section takes: enabled, format, \
                 per_session, dir, path, queue_size, idle_close_sec, close_on_fin, \
                 fin_close_grace_sec, sync)",
                "io.extra: unknown key (this section takes: input, output, mapping)",
                "metrics: unknown key (this section takes: io, control, logging, runtime)",
            ]
        );
    }

    fn listener_issues(body: &str) -> Vec<String> {
        issues(&config(
            "",
            &format!("output: {{ listner: {{ {body} }} }}"),
            "",
        ))
    }

    fn listener_of(body: &str) -> ListenerConfig {
        ok(&config(
            "",
            &format!("output: {{ listener: {{ {body} }} }}"),
            "",
        ))
        .listener
        .unwrap()
    }

    #[test]
    fn listener_port_ranges_are_checked() {
        assert_eq!(
            listener_issues("enabled: true, port_range_start: 33530, port_range_end: 33000"),
            [
                "io.output.listner.port_range_end: 33000 is below port_range_start 33530 \
              (inverted range)"
            ]
        );
        assert_eq!(
            listener_issues("enabled: true, port_range_start: 33000, port_range_end: 33000"),
            [
                "io.output.listner.port_range_end: 33000-33000 holds one port, but a session \
              needs a requests port and a responses port (empty range)"
            ]
        );
        assert_eq!(
            listener_issues("enabled: true, port_range_start: 0, port_range_end: 33010"),
            [
                "io.output.listner.port_range_start: 0 with port_range_end 33010: set both to 0 \
              to let the OS pick free ports, or neither (one-zero range)"
            ]
        );
        assert_eq!(
            listener_issues("enabled: true, port_range_start: 33000, port_range_end: 0"),
            [
                "io.output.listner.port_range_end: 0 with port_range_start 33000: set both to 0 \
              to let the OS pick free ports, or neither (one-zero range)"
            ]
        );
        assert_eq!(
            listener_issues("enabled: true"),
            [
                "io.output.listner.port_range_start: missing required key (the listener is \
                 enabled)",
                "io.output.listner.port_range_end: missing required key (the listener is enabled)",
            ]
        );
        assert_eq!(
            listener_of("enabled: true, port_range_start: 33000, port_range_end: 33001").port_range,
            Some((33000, 33001))
        );
        assert_eq!(
            listener_of("enabled: true, port_range_start: 0, port_range_end: 0").port_range,
            None
        );
    }

    #[test]
    fn disabled_listener_is_only_type_checked() {
        let c = ok(&config(
            "",
            "output: { listner: { enabled: false, port_range_start: 33000, port_range_end: 0 } }",
            "",
        ));
        assert_eq!(c.listener, None);
        assert_eq!(
            listener_issues("port_range_start: 'low'"),
            [
                "io.output.listner.port_range_start: expected an integer from 0 to 65535, found \
              string \"low\""
            ]
        );
    }

    #[test]
    fn first_ports_come_in_pairs_of_different_ports() {
        let range = "enabled: true, port_range_start: 0, port_range_end: 0";
        assert_eq!(
            listener_issues(&format!("{range}, first_requests_port: 33100")),
            [
                "io.output.listner.first_responses_port: missing required key \
              (first_requests_port is set: give both or neither)"
            ]
        );
        assert_eq!(
            listener_issues(&format!(
                "{range}, first_requests_port: null, first_responses_port: 33101"
            )),
            [
                "io.output.listner.first_requests_port: missing required key \
              (first_responses_port is set: give both or neither)"
            ]
        );
        assert_eq!(
            listener_issues(&format!(
                "{range}, first_requests_port: 33100, first_responses_port: 33100"
            )),
            [
                "io.output.listner.first_responses_port: 33100 is also first_requests_port: \
              requests and responses need different ports"
            ]
        );
        let both_zero = format!("{range}, first_requests_port: 0, first_responses_port: 0");
        assert_eq!(listener_of(&both_zero).first_ports, None);
        let given = format!("{range}, first_requests_port: 33100, first_responses_port: 33101");
        assert_eq!(listener_of(&given).first_ports, Some((33100, 33101)));
    }

    #[test]
    fn listener_binds_loopback_unless_told_otherwise() {
        let range = "enabled: true, port_range_start: 0, port_range_end: 0";
        assert_eq!(
            listener_of(range).bind_ip,
            IpAddr::from(Ipv4Addr::LOCALHOST)
        );
        let l = listener_of(&format!(
            "{range}, bind_ip: '0.0.0.0', timeouts: {{ ack_stall_sec: 3 }}"
        ));
        assert_eq!(l.bind_ip, IpAddr::from(Ipv4Addr::UNSPECIFIED));
        assert_eq!(l.ack_stall, Some(Duration::from_secs(3)));
    }

    #[test]
    fn both_listener_spellings_are_an_error() {
        let text = config(
            "",
            "output: { listner: { enabled: false }, listener: { enabled: false } }",
            "",
        );
        assert_eq!(
            issues(&text),
            [
                "io.output.listener: given together with listner: they are two spellings of one \
              section, keep one"
            ]
        );
    }

    #[test]
    fn pcap_dir_and_legacy_path() {
        let pcap = |body: &str| config("", &format!("output: {{ pcap: {{ {body} }} }}"), "");
        assert_eq!(
            issues(&pcap("enabled: true, dir: '/a', path: '/b'")),
            [
                "io.output.pcap.path: given together with dir: path is the older name of dir, \
              keep one"
            ]
        );
        assert_eq!(
            issues(&pcap("enabled: true")),
            [
                "io.output.pcap.dir: missing required key (pcap output is enabled; path is \
              accepted as its older name)"
            ]
        );
        assert_eq!(
            issues(&pcap(
                "enabled: true, dir: '', format: 'erf', queue_size: 0"
            )),
            [
                "io.output.pcap.format: expected one of \"pcap\", \"pcapng\", found string \"erf\"",
                "io.output.pcap.dir: must not be empty",
                "io.output.pcap.queue_size: expected an integer of at least 1, found 0",
            ]
        );
        let c = ok(&pcap("enabled: true, dir: '/a', idle_close_sec: 30"));
        let p = c.pcap.unwrap();
        assert_eq!(p.dir, PathBuf::from("/a"));
        assert_eq!(p.idle_close, Some(Duration::from_secs(30)));
        assert_eq!(ok(&pcap("enabled: false")).pcap, None);
    }

    #[test]
    fn connector_needs_real_ports_when_enabled() {
        let rh = |body: &str| {
            config(
                "",
                &format!("output: {{ 'remote-host': {{ {body} }} }}"),
                "",
            )
        };
        assert_eq!(
            issues(&rh("enabled: true, requests_port: 0")),
            [
                "io.output.remote-host.host: missing required key (remote-host is enabled)",
                "io.output.remote-host.requests_port: 0 cannot be dialled: a connector connects \
                 to the port its receiver listens on",
                "io.output.remote-host.responses_port: missing required key (remote-host is \
                 enabled)",
            ]
        );
        assert_eq!(
            issues(&rh("enabled: false, host: '', timeouts: { connect: 0 }")),
            [
                "io.output.remote-host.host: must not be empty",
                "io.output.remote-host.timeouts.connect: expected a number of seconds greater \
                 than 0, found 0",
            ]
        );
        assert_eq!(ok(&rh("enabled: false, requests_port: 0")).connector, None);
    }

    #[test]
    fn role_must_be_client_or_server() {
        let text = config("", "mapping: { role: 'proxy' }", "");
        assert_eq!(
            issues(&text),
            ["io.mapping.role: expected one of \"client\", \"server\", found string \"proxy\""]
        );
    }

    #[test]
    fn control_categories_are_checked_one_by_one() {
        let text = config(
            "",
            "",
            "control: { default_cats: ['session', 'packets', 7], listen_port: 65536 }",
        );
        assert_eq!(
            issues(&text),
            [
                "control.listen_port: expected an integer from 0 to 65535, found 65536",
                "control.default_cats[1]: expected one of \"session\", \"flow\", \"ports\", \
                 \"output\", \"stats\", \"control\", found string \"packets\"",
                "control.default_cats[2]: expected one of \"session\", \"flow\", \"ports\", \
                 \"output\", \"stats\", \"control\", found 7",
            ]
        );
        assert_eq!(
            issues(&config("", "", "control: { default_cats: 'all' }")),
            ["control.default_cats: expected an array of category names, found string \"all\""]
        );
        assert_eq!(
            ok(&config("", "", "control: { enabled: false }")).control,
            None
        );
    }

    #[test]
    fn verbosity_names_are_case_insensitive_and_checked() {
        let c = ok(&config(
            "",
            "",
            "logging: { console: { verbosity: 'Warning' }, file: { verbosity: 'critical' } }",
        ));
        assert_eq!(c.logging.console_level, tracing::Level::WARN);
        assert_eq!(c.logging.file, None);
        let text = config(
            "",
            "",
            "logging: { console: { verbosity: 'loud' }, file: { enabled: true } }",
        );
        assert_eq!(
            issues(&text),
            [
                "logging.console.verbosity: expected one of TRACE, DEBUG, INFO, WARN, WARNING, \
                 ERROR, CRITICAL, found string \"loud\"",
                "logging.file.path: missing required key (file logging is enabled)",
            ]
        );
    }

    #[test]
    fn stats_interval_alias_and_precedence() {
        let alias = ok(&config(
            "",
            "",
            "logging: { stats: { report_interval: 12 } }",
        ));
        assert_eq!(alias.runtime.stats_interval, Some(Duration::from_secs(12)));
        let both = ok(&config(
            "",
            "",
            "logging: { stats: { report_interval: 12 } }, runtime: { stats_interval_sec: 2 }",
        ));
        assert_eq!(both.runtime.stats_interval, Some(Duration::from_secs(2)));
        let off = ok(&config(
            "",
            "",
            "logging: { stats: { report_interval: 0 } }",
        ));
        assert_eq!(off.runtime.stats_interval, None);
    }

    #[test]
    fn zero_workers_means_one_per_cpu() {
        assert_eq!(
            ok(&config("", "", "runtime: { workers: 0 }"))
                .runtime
                .workers,
            cpus()
        );
        assert_eq!(
            ok(&config("", "", "runtime: { workers: 256 }"))
                .runtime
                .workers,
            256
        );
    }

    #[test]
    fn buffer_sizes_default_then_override_per_direction() {
        let c = ok(&config("buffer_bytes: 1000, c2s_buffer_bytes: 0", "", ""));
        assert_eq!(c.capture.requests_buffer_bytes, 0);
        assert_eq!(c.capture.responses_buffer_bytes, 1000);
    }

    fn filter_of(capture: &str) -> Option<String> {
        ok(&config(capture, "", "")).capture.bpf_filter
    }

    #[test]
    fn filter_template_renders_placeholders() {
        assert_eq!(
            filter_of("'bpf-filter': 'tcp port {remote_port} and host {remote_ip}'").as_deref(),
            Some("tcp port 5432 and host 10.99.7.5")
        );
        assert_eq!(
            filter_of("'bpf-filter': 'tcp port {local_port}'").as_deref(),
            Some("tcp port ")
        );
        assert_eq!(
            filter_of("local_port: 40123, 'bpf-filter': 'tcp and port {local_port}'").as_deref(),
            Some("tcp and port 40123")
        );
    }

    #[test]
    fn filter_is_narrowed_to_a_local_port_the_template_ignores() {
        assert_eq!(
            filter_of("local_port: 40123").unwrap(),
            format!(
                "({DEFAULT_RENDERED}) and ((src host 10.99.1.20 and src port 40123) or \
                 (dst host 10.99.1.20 and dst port 40123))"
            )
        );
    }

    #[test]
    fn filter_renders_ipv6_addresses() {
        let text = "{ io: { input: { capture: { iface: 'eth0', local_ip: '2001:db8:99::14', \
                    remote_ip: '2001:db8:99::9', remote_port: 443, local_port: 50000, \
                    'bpf-filter': 'ip6 and host {remote_ip}' } } } }";
        assert_eq!(
            ok(text).capture.bpf_filter.unwrap(),
            "(ip6 and host 2001:db8:99::9) and ((src host 2001:db8:99::14 and src port 50000) \
             or (dst host 2001:db8:99::14 and dst port 50000))"
        );
    }

    #[test]
    fn empty_filter_means_no_filter_and_null_means_default() {
        assert_eq!(filter_of("'bpf-filter': ''"), None);
        assert_eq!(filter_of("'bpf-filter': '', local_port: 40123"), None);
        assert_eq!(
            filter_of("'bpf-filter': null").as_deref(),
            Some(DEFAULT_RENDERED)
        );
    }

    #[test]
    fn unknown_or_broken_placeholders_are_refused() {
        assert_eq!(
            issues(&config("'bpf-filter': 'tcp port {port}'", "", "")),
            [
                "io.input.capture.bpf-filter: unknown placeholder {port} (placeholders are \
              {local_ip}, {remote_ip}, {remote_port}, {local_port})"
            ]
        );
        assert_eq!(
            issues(&config("'bpf-filter': 'tcp port {remote_port'", "", "")),
            [
                "io.input.capture.bpf-filter: unclosed { (placeholders are {local_ip}, \
              {remote_ip}, {remote_port}, {local_port})"
            ]
        );
        assert_eq!(
            issues(&config("'bpf-filter': 'tcp port 1}'", "", "")),
            [
                "io.input.capture.bpf-filter: unmatched } (placeholders are {local_ip}, \
              {remote_ip}, {remote_port}, {local_port})"
            ]
        );
        // The template is checked even when the endpoints it needs are themselves wrong.
        let text = "{ io: { input: { capture: { iface: 'eth0', remote_port: 1, \
                    'bpf-filter': 'host {remote}}' } } } }";
        assert_eq!(
            issues(text),
            [
                "io.input.capture.local_ip: missing required key",
                "io.input.capture.remote_ip: missing required key",
                "io.input.capture.bpf-filter: unknown placeholder {remote} (placeholders are \
                 {local_ip}, {remote_ip}, {remote_port}, {local_port})",
            ]
        );
    }

    #[test]
    fn mixed_ip_versions_are_refused() {
        let text = "{ io: { input: { capture: { iface: 'eth0', local_ip: '10.99.1.20', \
                    remote_ip: '2001:db8::9', remote_port: 443 } } } }";
        assert_eq!(
            issues(text),
            [
                "io.input.capture.remote_ip: 2001:db8::9 and local_ip 10.99.1.20 are of different \
              IP versions"
            ]
        );
    }

    #[test]
    fn hash_and_slashes_inside_strings_are_left_alone() {
        let text = "{ io: { input: { capture: { iface: 'eth0', local_ip: '10.99.1.20',\n\
                    remote_ip: '10.99.7.5', remote_port: 5432,\n\
                    # a real comment\n\
                    'bpf-filter': \"tcp # not a comment // nor this, key-x: 1\" },\n\
                    } }, control: { enabled: false }, }";
        assert_eq!(
            ok(text).capture.bpf_filter.as_deref(),
            Some("tcp # not a comment // nor this, key-x: 1")
        );
        let text = config(
            "",
            "output: { pcap: { enabled: true, dir: '/srv/#tap//x' } }",
            "",
        );
        assert_eq!(ok(&text).pcap.unwrap().dir, PathBuf::from("/srv/#tap//x"));
    }

    #[test]
    fn prepass_handles_comments_quotes_and_numbers() {
        let src = "# top\n{\n  // it's a comment: bpf-filter: x\n  /* don't\n# inside */\n  \
                   a-b: 'it''s', c: 1e-5, d: -Infinity, 'e-f': 2,\n}";
        let prepared = prepare(src);
        assert_eq!(
            prepared.text,
            "     \n{\n  // it's a comment: bpf-filter: x\n  /* don't\n# inside */\n  \
             \"a-b\": 'it''s', c: 1e-5, d: -Infinity, 'e-f': 2,\n}"
        );
        assert_eq!(prepared.inserted, [(5, 2), (5, 6)]);
        // A byte order mark is whitespace to JSON5, so a `#` after it still opens a line.
        assert_eq!(prepare("\u{feff}# c\n{}").text, "\u{feff}   \n{}");
    }

    #[test]
    fn syntax_errors_point_into_the_original_text() {
        // Line 3 holds a hyphenated key the pre-pass quoted; the column is still the original.
        let text = "{\n  io: {\n    remote-host: { enabled: true } oops\n  }\n}";
        assert_eq!(syntax(text), (3, 36, "expected comma".to_owned()));
        // An unclosed object is reported at its opening brace.
        assert_eq!(syntax("{ io: {"), (1, 7, "EOF parsing object".to_owned()));
        assert_eq!(syntax("\n  \n"), (3, 1, "EOF parsing value".to_owned()));
    }

    #[test]
    fn duplicate_keys_and_non_finite_numbers_are_syntax_errors() {
        let text = "{\n  io: {},\n  control: { enabled: true, enabled: false },\n}";
        assert_eq!(
            syntax(text),
            (
                3,
                12,
                "key \"enabled\" appears twice in the object that opens here".to_owned()
            )
        );
        let text = config("session_idle_sec: NaN", "", "");
        let (line, _, message) = syntax(&text);
        assert_eq!(line, 1);
        assert_eq!(
            message,
            "NaN and Infinity are not allowed in a configuration"
        );
    }

    #[test]
    fn top_level_must_be_an_object() {
        assert_eq!(
            issues("[1, 2]"),
            ["the configuration must be an object, found an array"]
        );
        assert_eq!(
            issues("{ io: { input: 'pcap' } }"),
            ["io.input: expected an object, found string \"pcap\""]
        );
    }

    #[test]
    fn every_issue_is_reported_one_per_line() {
        let text = config(
            "linktype: 'token-ring'",
            "mapping: { role: 'peer' }",
            "runtime: { drain_timeout_ms: 1.5 }",
        );
        let err = TapConfig::parse(&text, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "io.input.capture.linktype: expected one of \"ethernet\", \"raw\", \"linux_sll\", \
             found string \"token-ring\"\n\
             io.mapping.role: expected one of \"client\", \"server\", found string \"peer\"\n\
             runtime.drain_timeout_ms: expected a non-negative integer, found 1.5"
        );
    }

    #[test]
    fn load_names_the_file_in_every_error() {
        let missing = Path::new("/nonexistent/gophercap/tap.json5");
        let err = TapConfig::load(missing, false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/gophercap/tap.json5: "),
            "{err}"
        );

        let dir = std::env::temp_dir().join(format!("gophercap-tapcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let broken = dir.join("broken.json5");
        std::fs::write(&broken, "{\n  io: { input: {} }\n  control: {}\n}").unwrap();
        let err = TapConfig::load(&broken, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: line 3, column 3: expected comma", broken.display())
        );
        let invalid = dir.join("invalid.json5");
        std::fs::write(&invalid, "{ io: { mapping: { role: 'x' } } }").unwrap();
        let err = TapConfig::load(&invalid, false).unwrap_err();
        let p = invalid.display();
        assert_eq!(
            err.to_string(),
            format!(
                "{p}: io.input.capture: missing required section\n\
                 {p}: io.mapping.role: expected one of \"client\", \"server\", found string \"x\""
            )
        );
        let good = dir.join("good.json5");
        std::fs::write(&good, EXAMPLE_CONFIG).unwrap();
        assert!(TapConfig::load(&good, true).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
