//! The optional BPF filter every subcommand offers, the same way: checked before any work (a
//! typo is a usage error), then applied per packet; without libpcap it is refused up front.

use super::UsageError;
use crate::source::{Packet, Source};

#[cfg(feature = "live")]
pub fn check_filter(expression: &str) -> Result<(), UsageError> {
    crate::source::filter::BpfFilter::new(expression)
        .map(|_| ())
        .map_err(UsageError)
}

#[cfg(not(feature = "live"))]
pub fn check_filter(_expression: &str) -> Result<(), UsageError> {
    Err(UsageError(
        "BPF filters need libpcap: this gophercap was built without the `live` feature".into(),
    ))
}

/// A per-packet predicate: the BPF filter if one was given, else everything passes.
#[cfg(feature = "live")]
pub fn packet_filter(
    expression: Option<&str>,
) -> impl FnMut(&Packet<'_>) -> Result<bool, String> + use<> {
    let mut filter =
        expression.map(|e| crate::source::filter::BpfFilter::new(e).expect("checked at start"));
    move |packet| match &mut filter {
        Some(f) => f.matches(packet),
        None => Ok(true),
    }
}

#[cfg(not(feature = "live"))]
pub fn packet_filter(
    _expression: Option<&str>,
) -> impl FnMut(&Packet<'_>) -> Result<bool, String> + use<> {
    |_| Ok(true)
}

/// `source` with the BPF filter in front of it, if one was given (checked at start).
#[cfg(feature = "live")]
pub fn filtered_source(source: Box<dyn Source>, expression: Option<&str>) -> Box<dyn Source> {
    use crate::source::filter::{BpfFilter, FilteredSource};
    match expression {
        Some(e) => Box::new(FilteredSource::new(
            source,
            BpfFilter::new(e).expect("checked at start"),
        )),
        None => source,
    }
}

#[cfg(not(feature = "live"))]
pub fn filtered_source(source: Box<dyn Source>, _expression: Option<&str>) -> Box<dyn Source> {
    source
}
