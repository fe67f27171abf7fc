//! `--config FILE`: option defaults from TOML. Top-level keys set global options and a table per
//! subcommand sets that subcommand's options, named as the long flags are (`file_workers` or
//! `file-workers`). The file's values are placed before the command line's, and every option
//! lets a later occurrence win, so the command line always overrides the file.

use anyhow::{Context, bail};
use std::ffi::OsString;
use std::path::PathBuf;

/// Find `--config FILE` / `--config=FILE` in raw arguments.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            return None;
        }
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
        })
        .map_or(0, |i| i + 1)
}

/// Turn one table into `--flag value` arguments, checking each key against `command`.
fn table_to_args(
    table: &toml::Table,
    command: &clap::Command,
    section: &str,
    path: &std::path::Path,
    text: &str,
) -> anyhow::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for (key, value) in table {
        if value.is_table() {
            continue;
        }
        let long = key.replace('_', "-");
        let known = command
            .get_arguments()
            .any(|a| a.get_long() == Some(long.as_str()) && long != "config");
        if !known {
            bail!(
                "{}:{}: unknown key {:?}{}",
                path.display(),
                line_of(text, key),
                key,
                if section.is_empty() {
                    String::new()
                } else {
                    format!(" in [{section}]")
                }
            );
        }
        let flag = format!("--{long}");
        let scalar = |v: &toml::Value| -> anyhow::Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => bail!(
                    "{}:{}: key {key:?} has an unsupported value {other}",
                    path.display(),
                    line_of(text, key)
                ),
            })
        };
        match value {
            toml::Value::Boolean(true) => out.push(flag.into()),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for item in items {
                    out.push(format!("{flag}={}", scalar(item)?).into());
                }
            }
            other => out.push(format!("{flag}={}", scalar(other)?).into()),
        }
    }
    Ok(out)
}

/// NetScope's configuration sections, read for `flows` so existing NetScope files work.
const NETSCOPE_SECTIONS: [&str; 6] = ["capture", "run", "output", "flow", "stats", "analysis"];

/// How one NetScope key becomes `flows` arguments.
enum Maps {
    /// `--flag VALUE` (an empty string, or 0 where `zero_off`, means unset).
    Value(&'static str),
    ValueZeroOff(&'static str),
    /// `--flag` when true, `--no-flag` when false.
    Switch(&'static str),
    /// Only `--flag` when true (no `--no-` form).
    FlagIfTrue(&'static str),
    /// Only `--flag` when false.
    FlagIfFalse(&'static str),
    /// A positional input.
    Input,
    /// Accepted for compatibility; every analysis always runs.
    AlwaysOn,
}

/// The NetScope key table: (dotted section, key, mapping).
const NETSCOPE_KEYS: &[(&str, &str, Maps)] = &[
    ("capture", "interface", Maps::Value("--interface")),
    ("capture", "read_pcap", Maps::Input),
    ("capture", "promiscuous", Maps::Switch("promiscuous")),
    ("capture", "snaplen", Maps::Value("--snaplen")),
    ("capture", "timeout_ms", Maps::Value("--timeout-ms")),
    (
        "capture",
        "buffer_size_mb",
        Maps::ValueZeroOff("--buffer-size-mb"),
    ),
    ("capture", "immediate_mode", Maps::Switch("immediate-mode")),
    ("capture", "filter", Maps::Value("--filter")),
    ("run", "count", Maps::ValueZeroOff("--count")),
    ("output", "write_pcap", Maps::Value("--write-pcap")),
    ("output", "export_json", Maps::Value("--export-json")),
    ("output", "export_csv", Maps::Value("--export-csv")),
    (
        "output",
        "expired_flows_jsonl",
        Maps::Value("--expired-flows-jsonl"),
    ),
    ("output", "hex_dump", Maps::Switch("hex-dump")),
    ("output", "quiet", Maps::FlagIfTrue("--quiet")),
    ("flow", "timeout_secs", Maps::Value("--flow-timeout-s")),
    ("flow", "max_flows", Maps::ValueZeroOff("--max-flows")),
    ("stats", "enabled", Maps::Switch("stats")),
    ("stats", "interval_ms", Maps::Value("--stats-interval-ms")),
    ("stats", "top_flows", Maps::Value("--top-flows")),
    ("analysis", "rtt", Maps::AlwaysOn),
    ("analysis", "retrans", Maps::AlwaysOn),
    ("analysis", "out_of_order", Maps::AlwaysOn),
    ("analysis", "alerts_jsonl", Maps::Value("--alerts-jsonl")),
    ("analysis.anomalies", "enabled", Maps::Switch("anomalies")),
    (
        "analysis.anomalies.syn_flood",
        "enabled",
        Maps::FlagIfFalse("--no-syn-flood"),
    ),
    (
        "analysis.anomalies.syn_flood",
        "window_secs",
        Maps::Value("--syn-flood-window-secs"),
    ),
    (
        "analysis.anomalies.syn_flood",
        "syn_threshold",
        Maps::Value("--syn-threshold"),
    ),
    (
        "analysis.anomalies.syn_flood",
        "unique_src_threshold",
        Maps::Value("--unique-src-threshold"),
    ),
    (
        "analysis.anomalies.syn_flood",
        "cooldown_secs",
        Maps::Value("--syn-flood-cooldown-secs"),
    ),
    (
        "analysis.anomalies.port_scan",
        "enabled",
        Maps::FlagIfFalse("--no-port-scan"),
    ),
    (
        "analysis.anomalies.port_scan",
        "window_secs",
        Maps::Value("--port-scan-window-secs"),
    ),
    (
        "analysis.anomalies.port_scan",
        "unique_ports_threshold",
        Maps::Value("--unique-ports-threshold"),
    ),
    (
        "analysis.anomalies.port_scan",
        "unique_hosts_threshold",
        Maps::Value("--unique-hosts-threshold"),
    ),
    (
        "analysis.anomalies.port_scan",
        "cooldown_secs",
        Maps::Value("--port-scan-cooldown-secs"),
    ),
];

/// The line of `key` within `[section]` of the file, for error messages.
fn line_in_section(text: &str, section: &str, key: &str) -> usize {
    let header = format!("[{section}]");
    let mut inside = section.is_empty();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == header;
            continue;
        }
        if inside && t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            return i + 1;
        }
    }
    0
}

/// Translate NetScope's sections into `flows` arguments; unknown keys name their line.
fn netscope_to_args(
    table: &toml::Table,
    path: &std::path::Path,
    text: &str,
) -> anyhow::Result<Vec<OsString>> {
    fn walk<'t>(
        prefix: &str,
        table: &'t toml::Table,
        out: &mut Vec<(String, String, &'t toml::Value)>,
    ) {
        for (key, value) in table {
            match value {
                toml::Value::Table(inner) => {
                    let section = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&section, inner, out);
                }
                other => out.push((prefix.to_string(), key.clone(), other)),
            }
        }
    }
    let mut entries = Vec::new();
    for section in NETSCOPE_SECTIONS {
        if let Some(toml::Value::Table(t)) = table.get(section) {
            walk(section, t, &mut entries);
        }
    }
    let mut args: Vec<OsString> = Vec::new();
    let mut inputs: Vec<OsString> = Vec::new();
    for (section, key, value) in entries {
        let line = line_in_section(text, &section, &key);
        let fail = |why: &str| anyhow::anyhow!("{}:{line}: {section}.{key}: {why}", path.display());
        let Some((_, _, maps)) = NETSCOPE_KEYS
            .iter()
            .find(|(s, k, _)| *s == section && *k == key)
        else {
            return Err(fail("unknown key"));
        };
        let text_value = match value {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            _ => None,
        };
        let boolean = value.as_bool();
        match maps {
            Maps::Value(flag) | Maps::ValueZeroOff(flag) => {
                let v = text_value.ok_or_else(|| fail("expects a string or a number"))?;
                let off = v.is_empty() || (matches!(maps, Maps::ValueZeroOff(_)) && v == "0");
                if !off {
                    args.push(format!("{flag}={v}").into());
                }
            }
            Maps::Switch(name) => match boolean.ok_or_else(|| fail("expects true or false"))? {
                true => args.push(format!("--{name}").into()),
                false => args.push(format!("--no-{name}").into()),
            },
            Maps::FlagIfTrue(flag) => {
                if boolean.ok_or_else(|| fail("expects true or false"))? {
                    args.push((*flag).into());
                }
            }
            Maps::FlagIfFalse(flag) => {
                if !boolean.ok_or_else(|| fail("expects true or false"))? {
                    args.push((*flag).into());
                }
            }
            Maps::Input => {
                let v = text_value.ok_or_else(|| fail("expects a path"))?;
                if !v.is_empty() {
                    inputs.push(v.into());
                }
            }
            Maps::AlwaysOn => {
                if !boolean.ok_or_else(|| fail("expects true or false"))? {
                    return Err(fail(
                        "cannot be turned off: gophercap always runs this analysis",
                    ));
                }
            }
        }
    }
    args.extend(inputs);
    Ok(args)
}

/// Return the arguments with the config file's options inserted, or unchanged without one.
pub fn apply_config_file(
    args: Vec<OsString>,
    command: &clap::Command,
) -> anyhow::Result<Vec<OsString>> {
    let Some(path) = config_path(&args) else {
        return Ok(args);
    };
    // `tap --config` is Stethoscope's JSON5 configuration, which tap reads itself.
    let subcommand = args
        .iter()
        .skip(1)
        .find_map(|a| command.find_subcommand(a.to_string_lossy().as_ref()));
    if subcommand.is_some_and(|s| s.get_name() == "tap") {
        return Ok(args);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("config file {}", path.display()))?;
    for (key, value) in &table {
        if value.is_table()
            && command.find_subcommand(key).is_none()
            && !NETSCOPE_SECTIONS.contains(&key.as_str())
        {
            bail!("{}: unknown section [{key}]", path.display());
        }
    }
    let global = table_to_args(&table, command, "", &path, &text)?;
    let sub_at = args
        .iter()
        .skip(1)
        .position(|a| {
            command
                .find_subcommand(a.to_string_lossy().as_ref())
                .is_some()
        })
        .map(|i| i + 1);
    let mut out: Vec<OsString> = args[..1].to_vec();
    out.extend(global);
    match sub_at {
        Some(i) => {
            out.extend_from_slice(&args[1..=i]);
            let name = args[i].to_string_lossy().into_owned();
            let sub = command.find_subcommand(&name).expect("found above");
            let section = sub.get_name().to_string();
            if section == "flows" {
                out.extend(netscope_to_args(&table, &path, &text)?);
            } else if let Some(key) = NETSCOPE_SECTIONS.iter().find(|s| table.contains_key(**s)) {
                bail!(
                    "{}: [{key}] is NetScope's configuration, for `flows`",
                    path.display()
                );
            }
            if let Some(toml::Value::Table(t)) = table.get(&section) {
                out.extend(table_to_args(t, sub, &section, &path, &text)?);
            }
            out.extend_from_slice(&args[i + 1..]);
        }
        None => out.extend_from_slice(&args[1..]),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, args: &[&str]) -> anyhow::Result<Vec<String>> {
        let dir = std::env::temp_dir().join(format!("gophercap-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.toml", args.len()));
        std::fs::write(&file, config).unwrap();
        let mut argv: Vec<OsString> =
            vec!["gophercap".into(), "--config".into(), file.clone().into()];
        argv.extend(args.iter().map(OsString::from));
        let out = apply_config_file(argv, &super::super::command())?;
        Ok(out
            .into_iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect())
    }

    #[test]
    fn subcommand_table_goes_after_the_subcommand_and_before_user_args() {
        let args = run(
            "verbose = true\n[map]\nfile_workers = 3\nformat = \"csv\"\n",
            &["map", "--format", "json", "x"],
        )
        .unwrap();
        assert_eq!(args[0], "--verbose");
        assert_eq!(
            &args[1..4],
            ["--config".to_string(), args[2].clone(), "map".to_string()]
        );
        assert!(args.contains(&"--file-workers=3".to_string()));
        let config_pos = args.iter().position(|a| a == "--format=csv").unwrap();
        let user_pos = args.iter().position(|a| a == "--format").unwrap();
        assert!(
            config_pos < user_pos,
            "the command line must come last to win: {args:?}"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = run("[map]\nfile_workers = 2\nbogus = 1\n", &["map"]).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains(":3: unknown key \"bogus\" in [map]"),
            "{text}"
        );
        let err = run("[nosuch]\n", &["map"]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown section [nosuch]"));
    }
}
