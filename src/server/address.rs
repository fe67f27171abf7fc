//! Listen addresses as exporters and sidecars write them: `HOST:PORT`, `[IPv6]:PORT`, or
//! `:PORT` for every IPv4 address (Prometheus exporters' and Go's form).

use super::ServerError;
use std::net::{SocketAddr, ToSocketAddrs};

pub fn parse_listen_address(text: &str) -> Result<SocketAddr, ServerError> {
    let error = |reason: String| ServerError::Address {
        address: text.to_owned(),
        reason,
    };
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    if let Ok(address) = full.parse::<SocketAddr>() {
        return Ok(address);
    }
    // A host name (`localhost:9100`): its first address.
    full.to_socket_addrs()
        .map_err(|e| error(e.to_string()))?
        .next()
        .ok_or_else(|| error("the name has no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_forms_parse() {
        let parse = |t: &str| parse_listen_address(t).unwrap().to_string();
        assert_eq!(parse(":9100"), "0.0.0.0:9100");
        assert_eq!(parse("0.0.0.0:9100"), "0.0.0.0:9100");
        assert_eq!(parse("127.0.0.1:0"), "127.0.0.1:0");
        assert_eq!(parse("[::1]:9100"), "[::1]:9100");
        assert!(parse("localhost:9100").ends_with(":9100"));
    }

    #[test]
    fn a_bad_address_says_which_and_what_forms_are_taken() {
        for bad in ["9100", "host", ":http", "1.2.3.4:99999"] {
            let err = parse_listen_address(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("HOST:PORT"), "{err}");
        }
    }
}
