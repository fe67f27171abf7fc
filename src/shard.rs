//! Capture sets mapped in pieces: `map --shard K/N` maps the inputs whose path falls in shard
//! K, and `map --merge` joins the shard documents back into the document of one whole run.
//!
//! An input (a file, or a whole tarball: its members are read in one pass) belongs to the shard
//! [`shard_of`] its path gives: FNV-1a 64 of the path's bytes, as the document writes the path,
//! into Lamping and Veach's jump consistent hash. Both are fixed arithmetic (no per-process keys,
//! nothing from the standard library's hashers), so every machine and every build agrees, and
//! going from N to N + 1 shards moves only a 1/(N + 1) share of the inputs, so a shard's
//! `--update` still finds most of its entries.
//!
//! A shard document is the map document of the shard's inputs plus a `shard` section: which
//! shard it is, how many inputs the whole run expanded to, and each input's place among them
//! with the number of captures it gave. The merge puts the inputs back in that order and
//! recomputes what depends on the whole set (its first and last time, each capture's delay),
//! which makes the merged document the one an unsharded run writes, byte for byte.

use crate::catalog::{CaptureSummary, Catalog, InputStamp};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The format of the `shard` section; `map --merge` refuses documents of another.
pub const SHARD_FORMAT_VERSION: u32 = 1;

/// `K/N`: shard K (from 0, as Kubernetes' `JOB_COMPLETION_INDEX`) of N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not K/N (shard K from 0 of N, as 0/3)"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a shard count"))?;
        let index: u32 = k
            .trim()
            .parse()
            .map_err(|_| format!("{k:?} is not a shard index"))?;
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index} of {count} does not exist: shards are numbered from 0 to {} \
                 (as JOB_COMPLETION_INDEX)",
                count - 1
            ));
        }
        Ok(ShardSpec { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl ShardSpec {
    /// True when the input named `path` (as the document writes it) is this shard's.
    pub fn holds(&self, path: &str) -> bool {
        shard_of(path, self.count) == self.index
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Lamping and Veach's jump consistent hash: `key` into one of `buckets` (at least 1).
/// Floating point as in the paper: IEEE arithmetic, the same on every machine.
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// The shard (from 0) of `count` that the input named `path` belongs to.
pub fn shard_of(path: &str, count: u32) -> u32 {
    jump_consistent_hash(fnv1a64(path.as_bytes()), count.max(1))
}

/// A shard document and the name it goes by in messages (its file).
pub struct ShardDocument {
    pub name: String,
    pub catalog: Catalog,
}

/// Why shard documents could not be merged: the message names the files.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

/// One input of a shard document with what it gave.
struct Unit {
    position: u64,
    path: String,
    document: usize,
    captures: Vec<CaptureSummary>,
    stamp: Option<InputStamp>,
}

/// Split a shard document into its inputs, checking that its parts agree.
fn units_of(index: usize, document: ShardDocument) -> Result<Vec<Unit>, MergeError> {
    let name = document.name;
    let catalog = document.catalog;
    let shard = catalog
        .shard
        .ok_or_else(|| MergeError(format!("{name}: not a shard document")))?;
    let mut captures = catalog.captures.into_iter().peekable();
    let mut stamps = catalog.inputs.into_iter().peekable();
    let mut units = Vec::with_capacity(shard.inputs.len());
    for input in shard.inputs {
        let member_prefix = format!("{}!", input.path);
        let mut own = Vec::new();
        for _ in 0..input.captures {
            match captures.next() {
                Some(c) if c.path == input.path || c.path.starts_with(&member_prefix) => {
                    own.push(c)
                }
                Some(c) => {
                    return Err(MergeError(format!(
                        "{name}: capture {} is not from input {}: the shard section does not \
                         match the captures",
                        c.path, input.path
                    )));
                }
                None => {
                    return Err(MergeError(format!(
                        "{name}: fewer captures than the shard section counts"
                    )));
                }
            }
        }
        let stamp = stamps.next_if(|s| s.path == input.path);
        units.push(Unit {
            position: input.position,
            path: input.path,
            document: index,
            captures: own,
            stamp,
        });
    }
    if let Some(c) = captures.next() {
        return Err(MergeError(format!(
            "{name}: capture {} is in no input of the shard section",
            c.path
        )));
    }
    if let Some(s) = stamps.next() {
        return Err(MergeError(format!(
            "{name}: input {} is not in the shard section",
            s.path
        )));
    }
    Ok(units)
}

/// Join the documents of every shard of one run into the document of the whole run: what
/// `map --dump-json` writes without `--shard` over the same inputs.
pub fn merge(documents: Vec<ShardDocument>) -> Result<Catalog, MergeError> {
    let names: Vec<String> = documents.iter().map(|d| d.name.clone()).collect();
    let Some(first) = documents.first() else {
        return Err(MergeError("no shard documents to merge".into()));
    };
    let mut reference: Option<(u32, u64)> = None;
    let mut holder: HashMap<u32, usize> = HashMap::new();
    for (i, d) in documents.iter().enumerate() {
        let shard = d.catalog.shard.as_ref().ok_or_else(|| {
            MergeError(format!(
                "{}: not a shard document (map --shard K/N --dump-json writes them)",
                d.name
            ))
        })?;
        if shard.version != SHARD_FORMAT_VERSION {
            return Err(MergeError(format!(
                "{}: shard document format version {}; this gophercap reads version {}",
                d.name, shard.version, SHARD_FORMAT_VERSION
            )));
        }
        if shard.count == 0 || shard.index >= shard.count {
            return Err(MergeError(format!(
                "{}: shard {}/{} does not exist",
                d.name, shard.index, shard.count
            )));
        }
        match reference {
            None => reference = Some((shard.count, shard.inputs_total)),
            Some((count, total)) if (count, total) != (shard.count, shard.inputs_total) => {
                return Err(MergeError(format!(
                    "{}: shard {}/{} of a run of {} inputs, but {} is a shard of {} of a run of \
                     {} inputs: not the same run",
                    d.name, shard.index, shard.count, shard.inputs_total, first.name, count, total
                )));
            }
            Some(_) => {}
        }
        if let Some(&other) = holder.get(&shard.index) {
            return Err(MergeError(format!(
                "{} and {} are both shard {}/{}",
                names[other], d.name, shard.index, shard.count
            )));
        }
        holder.insert(shard.index, i);
    }
    let (count, total) = reference.unwrap_or_default();
    let missing: Vec<String> = (0..count)
        .filter(|k| !holder.contains_key(k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(MergeError(format!(
            "shard{} {} missing: a merge needs every shard of the run",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        )));
    }

    let shards: Vec<u32> = documents
        .iter()
        .map(|d| d.catalog.shard.as_ref().map_or(0, |s| s.index))
        .collect();
    let mut units = Vec::new();
    for (i, d) in documents.into_iter().enumerate() {
        units.extend(units_of(i, d)?);
    }
    // The same input in two shards: documents of two runs over different inputs, or edited.
    // (The same input twice in one shard is a run that named it twice.)
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for u in &units {
        match seen.get(u.path.as_str()) {
            Some(&other) if other != u.document => {
                return Err(MergeError(format!(
                    "{} is in both {} and {}",
                    u.path, names[other], names[u.document]
                )));
            }
            Some(_) => {}
            None => {
                seen.insert(&u.path, u.document);
            }
        }
    }
    if let Some(u) = units
        .iter()
        .find(|u| shard_of(&u.path, count) != shards[u.document])
    {
        return Err(MergeError(format!(
            "{}: {} does not belong to shard {}/{count} (sharded another way?)",
            names[u.document], u.path, shards[u.document]
        )));
    }
    units.sort_by_key(|u| u.position);
    for pair in units.windows(2) {
        if pair[0].position == pair[1].position {
            return Err(MergeError(format!(
                "{} and {} both hold input {} of the run",
                names[pair[0].document], names[pair[1].document], pair[0].position
            )));
        }
    }
    if let Some(u) = units.iter().find(|u| u.position >= total) {
        return Err(MergeError(format!(
            "{}: input {} is past the run's {total} inputs",
            names[u.document], u.position
        )));
    }
    if units.len() as u64 != total {
        return Err(MergeError(format!(
            "the shards hold {} of the run's {total} inputs",
            units.len()
        )));
    }
    let mut captures = Vec::new();
    let mut stamps = Vec::new();
    for u in units {
        captures.extend(u.captures);
        stamps.extend(u.stamp);
    }
    Ok(Catalog::new(captures, stamps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn jump_hash_matches_the_paper() {
        // Values of the paper's C++ function (as other implementations test it): the
        // sharding must never change under a different build.
        assert_eq!(jump_consistent_hash(1, 1), 0);
        assert_eq!(jump_consistent_hash(42, 57), 43);
        assert_eq!(jump_consistent_hash(256, 1024), 520);
        assert_eq!(jump_consistent_hash(3_735_883_980, 1), 0);
        assert_eq!(jump_consistent_hash(3_735_883_980, 666), 361);
        assert_eq!(jump_consistent_hash(16_045_690_984_833_335_023, 255), 237);
        for key in 0..1000u64 {
            assert_eq!(jump_consistent_hash(key, 1), 0);
        }
    }

    #[test]
    fn the_shard_of_a_path_is_fixed() {
        // Changing these moves every shard document's inputs: never do it silently.
        let shards = |path: &str| [2, 3, 4, 16].map(|n| shard_of(path, n));
        assert_eq!(shards("testdata/real/curl-get.pcap"), [0, 0, 3, 3]);
        assert_eq!(shards("testdata/synthetic/captures.tar.gz"), [1, 2, 2, 11]);
        assert_eq!(shards("/pcaps/2024/01/01/capture-0001.pcap"), [1, 1, 1, 4]);
    }

    #[test]
    fn shards_are_even_and_move_little_when_one_is_added() {
        let paths: Vec<String> = (0..30_000)
            .map(|i| format!("/pcaps/sensor-{}/capture-{i:06}.pcap", i % 7))
            .collect();
        for count in [2u32, 3, 4, 8] {
            let mut sizes = vec![0usize; count as usize];
            for p in &paths {
                sizes[shard_of(p, count) as usize] += 1;
            }
            let even = paths.len() / count as usize;
            for s in sizes {
                assert!(
                    s.abs_diff(even) < even / 20,
                    "{count} shards: {s} vs {even}"
                );
            }
        }
        let moved = paths
            .iter()
            .filter(|p| shard_of(p, 3) != shard_of(p, 4))
            .count();
        assert!(moved < paths.len() * 3 / 10, "{moved} moved from 3 to 4");
    }

    #[test]
    fn shard_specs_are_counted_from_zero() {
        assert_eq!(
            "0/3".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 0, count: 3 })
        );
        assert_eq!(
            "2/3".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 2, count: 3 })
        );
        assert!("3/3".parse::<ShardSpec>().is_err());
        assert!("0/0".parse::<ShardSpec>().is_err());
        assert!("1".parse::<ShardSpec>().is_err());
        assert!("-1/3".parse::<ShardSpec>().is_err());
        assert!("$(JOB_COMPLETION_INDEX)/3".parse::<ShardSpec>().is_err());
    }
}
