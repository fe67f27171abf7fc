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

/// Return the arguments with the config file's options inserted, or unchanged without one.
pub fn apply_config_file(
    args: Vec<OsString>,
    command: &clap::Command,
) -> anyhow::Result<Vec<OsString>> {
    let Some(path) = config_path(&args) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("config file {}", path.display()))?;
    for (key, value) in &table {
        if value.is_table() && command.find_subcommand(key).is_none() {
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
