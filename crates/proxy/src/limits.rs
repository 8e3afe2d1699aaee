//! Connection limits: the deadlines a client connection must meet before it carries a request
//! (the handshake deadline, the header-read timeout) and the caps on concurrent client
//! connections (the data plane's total, per listener port, per client address), enforced at
//! accept so that a flood of slow or idle connections cannot take every file descriptor from the
//! API, DNS, health checks, upstream connections and the store.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// From accept, how long a client has to send its first byte and, on TLS, finish the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request head may take (see [`ConnLimits::header_read_timeout`]).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent connections from one client address on one port. Generous: clients behind one
/// NAT share it, and a service host with a large connection pool stays well within it.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 1024;
/// The descriptors [`connection_budget`] always leaves to the rest of the process, unless the
/// limit is so low that half of it is less.
pub const DESCRIPTOR_RESERVE: u64 = 256;
/// The open-file limit assumed when the process has none (`RLIM_INFINITY`).
const UNLIMITED_FILES: u64 = 1 << 20;

/// Bounds on every client connection of the data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// From accept, the time a client has to send its first byte and, on TLS, to complete the
    /// handshake. A connection that has not is closed.
    pub handshake_timeout: Duration,
    /// A request head must be complete within this of its first byte, or the connection is
    /// closed. The first request's clock starts when the handshake is done, so a connection
    /// that never sends a request is closed after it too. On HTTP/2 it bounds the connection
    /// preface and the client's first SETTINGS frame; after that, the idle timeout applies.
    pub header_read_timeout: Duration,
    /// Concurrent client connections across every listener port. Connections beyond it are
    /// accepted and closed at once.
    pub max_connections: usize,
    /// Concurrent client connections on one listener port.
    pub max_connections_per_port: usize,
    /// Concurrent client connections from one client address on one listener port. IPv6
    /// clients are counted by their /64 prefix, which one host usually holds whole.
    pub max_connections_per_source: usize,
}

impl Default for ConnLimits {
    /// The defaults, with the total sized from this process's open-file limit as it is now.
    fn default() -> ConnLimits {
        let total = connection_budget(open_file_limit());
        ConnLimits {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: total,
            max_connections_per_port: total,
            max_connections_per_source: MAX_CONNECTIONS_PER_SOURCE,
        }
    }
}

/// The process's current (soft) limit on open files.
pub fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(UNLIMITED_FILES)
}

/// The default cap on the data plane's client connections for an open-file limit of `files`.
///
/// A reserve of [`DESCRIPTOR_RESERVE`] descriptors or a tenth of the limit, whichever is larger
/// (but at most half of a very low limit), is kept for the API, DNS, health checks, the store
/// and the process's own files. Half of the rest is for client connections, because each
/// proxied request may hold an upstream connection besides its client connection.
pub fn connection_budget(files: u64) -> usize {
    let reserve = (files / 10).max(DESCRIPTOR_RESERVE.min(files / 2));
    let budget = files.saturating_sub(reserve) / 2;
    usize::try_from(budget).unwrap_or(usize::MAX).max(1)
}

/// Which cap refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total,
    Port,
    Source,
}

/// The connection counts of one listener port, and the data plane's total it shares with the
/// other ports. Only the port's accept loop admits; connections leave from their own tasks.
pub(crate) struct PortGate {
    total: Arc<AtomicUsize>,
    refused: Arc<AtomicU64>,
    open: AtomicUsize,
    sources: Mutex<HashMap<IpAddr, usize>>,
    max_total: usize,
    max_port: usize,
    max_source: usize,
}

impl PortGate {
    pub(crate) fn new(
        limits: &ConnLimits,
        total: Arc<AtomicUsize>,
        refused: Arc<AtomicU64>,
    ) -> Arc<PortGate> {
        Arc::new(PortGate {
            total,
            refused,
            open: AtomicUsize::new(0),
            sources: Mutex::new(HashMap::new()),
            max_total: limits.max_connections,
            max_port: limits.max_connections_per_port,
            max_source: limits.max_connections_per_source,
        })
    }

    /// Counts a new connection from `peer` against every cap, or says which one it would break
    /// (nothing is counted then).
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let refused = |refusal| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Err(refusal)
        };
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return refused(Refusal::Total);
        }
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_port {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return refused(Refusal::Port);
        }
        let source = source_key(peer);
        {
            let mut sources = self.lock_sources();
            let count = sources.entry(source).or_insert(0);
            if *count >= self.max_source {
                drop(sources);
                self.open.fetch_sub(1, Ordering::AcqRel);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return refused(Refusal::Source);
            }
            *count += 1;
        }
        Ok(Slot {
            gate: Arc::clone(self),
            source,
        })
    }

    fn lock_sources(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Every critical section leaves the map consistent; a poisoned lock is still usable.
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One admitted connection; dropping it (when the connection's task ends) frees its place.
pub(crate) struct Slot {
    gate: Arc<PortGate>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut sources = self.gate.lock_sources();
            if let Some(count) = sources.get_mut(&self.source) {
                *count -= 1;
                if *count == 0 {
                    // Only addresses with open connections are kept: the map stays as small as
                    // the connection count.
                    sources.remove(&self.source);
                }
            }
        }
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
        self.gate.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The address a source is counted by: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64.
fn source_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_a_reserve_and_halves_the_rest() {
        // (open-file limit, client connection budget)
        let cases: &[(u64, usize)] = &[
            (0, 1),
            (16, 4),
            (256, 64),
            (512, 128),
            (1024, 384),
            (4096, 1843),
            (65_536, 29_491),
            (1_048_576, 471_859),
        ];
        for &(files, budget) in cases {
            assert_eq!(connection_budget(files), budget, "limit {files}");
            // The reserve never shrinks below a tenth of the limit.
            assert!(budget as u64 * 2 <= files.saturating_sub(files / 10).max(2));
        }
    }

    #[test]
    fn caps_refuse_and_slots_free_their_place() {
        let limits = ConnLimits {
            max_connections: 5,
            max_connections_per_port: 4,
            max_connections_per_source: 2,
            ..ConnLimits::default()
        };
        let total = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let a = PortGate::new(&limits, Arc::clone(&total), Arc::clone(&refused));
        let b = PortGate::new(&limits, Arc::clone(&total), Arc::clone(&refused));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();

        let first = a.admit(ip("10.0.0.1")).unwrap();
        let _second = a.admit(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.1")).err(), Some(Refusal::Source));
        // One /64 is one source; another /64 is not.
        let _v6 = a.admit(ip("2001:db8::1")).unwrap();
        let _v6b = a.admit(ip("2001:db8::2")).unwrap();
        assert_eq!(a.admit(ip("2001:db8::3")).err(), Some(Refusal::Port));
        // The port is full, the total is not: another port still admits, until the total.
        let _other = b.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(b.admit(ip("10.0.0.9")).err(), Some(Refusal::Total));
        assert_eq!(refused.load(Ordering::Relaxed), 3);
        assert_eq!(total.load(Ordering::Relaxed), 5);

        drop(first);
        assert_eq!(total.load(Ordering::Relaxed), 4);
        let _again = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.lock_sources().get(&ip("10.0.0.1")), Some(&2));
    }
}
