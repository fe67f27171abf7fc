//! `gophercap list-interfaces`: what live capture can open, with addresses and flags.

use super::Outcome;
use crate::output::table::write_table;
use crate::output::{Flush, JsonLines};
use crate::source::live::list_interfaces;
use anyhow::Context;
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
pub struct ListInterfacesArgs {
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ListInterfacesArgs) -> anyhow::Result<Outcome> {
    let interfaces = list_interfaces()
        .map_err(anyhow::Error::msg)
        .context("cannot list interfaces")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut lines = JsonLines::new(&mut out, Flush::Blocks);
        for i in &interfaces {
            lines.write(i)?;
        }
        lines.finish()?;
    } else {
        let rows: Vec<Vec<String>> = interfaces
            .iter()
            .map(|i| {
                let mut flags = Vec::new();
                if i.up {
                    flags.push("up");
                }
                if i.running {
                    flags.push("running");
                }
                if i.loopback {
                    flags.push("loopback");
                }
                vec![
                    i.name.clone(),
                    flags.join(","),
                    i.addresses.join(" "),
                    i.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        write_table(
            &mut out,
            &["name", "flags", "addresses", "description"],
            &[],
            &rows,
        )?;
    }
    out.flush()?;
    Ok(Outcome::default())
}
