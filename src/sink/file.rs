//! Files named on the command line as outputs, where `-` is stdout, as tcpdump's `-w -` is.

use std::io::{self, Write};
use std::path::Path;

/// True when `path` names stdout.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Create (truncate) `path` for writing, or stdout for `-`. Unbuffered: the encoders of
/// `output` gather whole blocks before they write.
pub fn create(path: &Path) -> io::Result<Box<dyn Write + Send>> {
    if is_stdout(path) {
        Ok(Box::new(io::stdout()))
    } else {
        Ok(Box::new(std::fs::File::create(path)?))
    }
}
