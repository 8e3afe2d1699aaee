//! Trellis's embedded authoritative DNS server: answers the generated service names
//! (`<name>-<id>.<partition>.vpc-lattice-svcs.<region>.on.aws`) and custom domain names with the
//! ingress address(es), over UDP and TCP on one port.
//!
//! The data plane compiles a [`Zone`] from each configuration snapshot and publishes it on a
//! `tokio::sync::watch` channel; [`DnsServer`] answers every query from the zone current when the
//! query arrives, without locking it. A zone may carry client views
//! ([`Zone::with_client_views`]): a client whose address is in a view's blocks (its VPC's CIDR
//! blocks) is answered from that view's zone — its service network's names, with its ingress
//! address — and any other client from the zone itself.
//!
//! Answer policy, in one place:
//!
//! | query | answer |
//! |---|---|
//! | A / AAAA for a known name | NOERROR, AA, the addresses of that family, TTL [`TTL`] |
//! | known name, no address of that family, or any other type (ANY included) | NOERROR, AA, no answer, the zone's SOA in authority (NODATA) |
//! | SOA at a zone apex or custom domain name | NOERROR, AA, the SOA |
//! | ancestor of a known name inside a zone (empty non-terminal) | NODATA, as above |
//! | other name inside a zone | NXDOMAIN, AA, the zone's SOA in authority |
//! | name outside every zone that is not a custom domain name | forwarded to the upstreams ([`DnsServer::with_upstreams`]; SERVFAIL if none answers), else REFUSED |
//! | AXFR/IXFR; class other than IN | REFUSED |
//! | not exactly one question | FORMERR |
//! | opcode other than QUERY | NOTIMP |
//! | EDNS version above 0 | BADVERS |
//! | shorter than a DNS header, or a response | dropped |
//!
//! The SOA of each zone has the apex as MNAME, `hostmaster.<apex>` as RNAME, a serial that is a
//! hash of the zone's content (see [`Zone`]), and [`TTL`] as both its TTL and its negative-caching
//! `minimum`.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use trellis_dns::{DnsServer, Zone};
//!
//! let zone = Zone::new(
//!     ["vpc-lattice-svcs.us-west-2.on.aws".to_string()],
//!     [(
//!         "billing-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws".to_string(),
//!         vec!["127.0.0.1".parse().unwrap()],
//!     )],
//! );
//! let (publish, zones) = tokio::sync::watch::channel(Arc::new(zone));
//! let server = DnsServer::bind("127.0.0.1:9453".parse().unwrap(), zones).await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn(server.run(async {
//!     let _ = stopped.await;
//! }));
//! // On every configuration change: publish.send_replace(Arc::new(Zone::new(..)));
//! # drop(publish);
//! let _ = stop.send(());
//! task.await.unwrap()?;
//! # Ok(())
//! # }
//! ```

mod forward;
mod server;
mod zone;

pub use forward::UPSTREAM_TIMEOUT;
pub use server::{DnsServer, DnsStats, answer_bytes};
pub use zone::{TTL, Zone};
