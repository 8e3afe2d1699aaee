//! `trellis serve`'s flags for the data plane's client connection limits: the handshake and
//! header-read deadlines and the connection caps, checked before anything is bound and turned
//! into the proxy's [`ConnLimits`]. The total cap defaults to a share of the open-file limit
//! as it is when the data plane starts (after the server raised its soft limit).

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use trellis_proxy::{ConnLimits, DESCRIPTOR_RESERVE, connection_budget, open_file_limit};

#[derive(Args, Debug, Clone)]
pub struct ConnLimitArgs {
    /// Seconds a new data-plane connection has, from accept, to send its first byte and finish
    /// its TLS handshake.
    #[arg(long, value_name = "SECONDS", default_value_t = trellis_proxy::HANDSHAKE_TIMEOUT.as_secs())]
    handshake_timeout: u64,
    /// Seconds a request head may take from its first byte (HTTP/1.x), and the HTTP/2 preface
    /// and first SETTINGS frame from the handshake; the connection is closed when it runs out.
    #[arg(long, value_name = "SECONDS", default_value_t = trellis_proxy::HEADER_READ_TIMEOUT.as_secs())]
    header_read_timeout: u64,
    /// Concurrent data-plane client connections, all ports together; more are closed at accept.
    /// Default: half the open-file limit left after a reserve of 256 descriptors or 10%,
    /// whichever is larger, kept for the API, DNS, health checks, upstream connections and the
    /// store.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Concurrent client connections on one listener port (default: --max-connections).
    #[arg(long, value_name = "N")]
    max_connections_per_port: Option<usize>,
    /// Concurrent client connections from one client IP address (IPv6: one /64) on one listener
    /// port. Clients behind one NAT share it.
    #[arg(long, value_name = "N", default_value_t = trellis_proxy::MAX_CONNECTIONS_PER_SOURCE)]
    max_connections_per_source: usize,
}

/// The longest handshake or header-read timeout accepted (Lattice's longest idle timeout).
pub const MAX_DEADLINE_SECS: u64 = 600;

impl ConnLimitArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, secs) in [
            ("--handshake-timeout", self.handshake_timeout),
            ("--header-read-timeout", self.header_read_timeout),
        ] {
            if !(1..=MAX_DEADLINE_SECS).contains(&secs) {
                bail!("{flag} {secs} must be between 1 and {MAX_DEADLINE_SECS} seconds");
            }
        }
        for (flag, n) in [
            ("--max-connections", self.max_connections),
            ("--max-connections-per-port", self.max_connections_per_port),
            (
                "--max-connections-per-source",
                Some(self.max_connections_per_source),
            ),
        ] {
            if n == Some(0) {
                bail!("{flag} must be at least 1");
            }
        }
        Ok(())
    }

    /// The limits, with the defaults that depend on the open-file limit read now. Logs them, and
    /// warns when an explicit `--max-connections` leaves less than the reserve.
    pub fn limits(&self) -> ConnLimits {
        self.limits_for(open_file_limit())
    }

    /// The limits for an open-file limit of `files`.
    fn limits_for(&self, files: u64) -> ConnLimits {
        let max_connections = self
            .max_connections
            .unwrap_or_else(|| connection_budget(files));
        let limits = ConnLimits {
            handshake_timeout: Duration::from_secs(self.handshake_timeout),
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            max_connections,
            max_connections_per_port: self.max_connections_per_port.unwrap_or(max_connections),
            max_connections_per_source: self.max_connections_per_source,
        };
        tracing::info!(
            open_file_limit = files,
            max_connections = limits.max_connections,
            max_connections_per_port = limits.max_connections_per_port,
            max_connections_per_source = limits.max_connections_per_source,
            handshake_timeout_s = self.handshake_timeout,
            header_read_timeout_s = self.header_read_timeout,
            "data-plane connection limits"
        );
        if self.max_connections.is_some()
            && (max_connections as u64).saturating_mul(2) + DESCRIPTOR_RESERVE > files
        {
            tracing::warn!(
                max_connections,
                open_file_limit = files,
                "--max-connections leaves fewer descriptors than the API, DNS and upstream \
                 connections may need when the data plane is saturated"
            );
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ConnLimitArgs,
    }

    fn parse(flags: &[&str]) -> Result<ConnLimitArgs, String> {
        use clap::Parser as _;
        let parsed = Wrapper::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        parsed.args.check().map_err(|e| e.to_string())?;
        Ok(parsed.args)
    }

    #[test]
    fn flag_table() {
        // (flags, the flag named in the error, or None when they are accepted)
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (
                &["--handshake-timeout", "1", "--header-read-timeout", "600"],
                None,
            ),
            (&["--handshake-timeout", "0"], Some("--handshake-timeout")),
            (
                &["--header-read-timeout", "601"],
                Some("--header-read-timeout"),
            ),
            (
                &["--header-read-timeout", "x"],
                Some("--header-read-timeout"),
            ),
            (&["--max-connections", "0"], Some("--max-connections")),
            (&["--max-connections=-1"], Some("--max-connections")),
            (
                &["--max-connections-per-port", "0"],
                Some("--max-connections-per-port"),
            ),
            (
                &["--max-connections-per-source", "0"],
                Some("--max-connections-per-source"),
            ),
            (
                &[
                    "--max-connections",
                    "100",
                    "--max-connections-per-port",
                    "50",
                    "--max-connections-per-source",
                    "5",
                ],
                None,
            ),
        ];
        for (flags, error) in cases {
            match (parse(flags), error) {
                (Ok(_), None) => {}
                (Err(e), Some(flag)) => assert!(e.contains(flag), "{flags:?}: {e}"),
                (got, want) => panic!("{flags:?}: got {got:?}, want an error naming {want:?}"),
            }
        }
    }

    #[test]
    fn defaults_follow_the_file_limit_and_the_total() {
        let limits = parse(&[]).unwrap().limits_for(4096);
        assert_eq!(limits.max_connections, 1843);
        assert_eq!(limits.max_connections_per_port, limits.max_connections);
        assert_eq!(limits.handshake_timeout, Duration::from_secs(10));
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_connections_per_source, 1024);

        let limits = parse(&["--max-connections", "7", "--header-read-timeout", "3"])
            .unwrap()
            .limits_for(4096);
        assert_eq!(limits.max_connections, 7);
        assert_eq!(limits.max_connections_per_port, 7);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(3));
    }
}
