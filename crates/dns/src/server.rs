//! The UDP + TCP listener pair on one port and the request handler that answers every query from
//! the [`Zone`] current at that moment.
//!
//! Wire framing (UDP datagrams, TCP two-octet length prefixes), FORMERR for undecodable
//! messages, dropping of stray responses and per-connection TCP idle timeouts come from
//! hickory-server's `Server`; this module only decides what each query is answered.

use std::future::Future;
use std::io;
use std::iter;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::zone::{Lookup, Zone};

/// How many times [`DnsServer::bind`] tries a fresh ephemeral port when the TCP side of the one
/// the UDP socket got is already taken by someone else.
const BIND_ATTEMPTS: usize = 16;

/// A TCP connection that sends no query for this long is closed, so idle or abandoned clients
/// cannot pin connections (RFC 7766 §6.2.3 asks servers to bound idle time).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses queued per TCP connection before the connection applies back-pressure.
const TCP_RESPONSE_BUFFER: usize = 32;

/// The EDNS version this server speaks (RFC 6891).
const EDNS_VERSION: u8 = 0;

/// The embedded authoritative DNS server: one UDP socket and one TCP listener on the same
/// address and port, answering from a [`Zone`] that can be swapped at any time.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    local_addr: SocketAddr,
    handler: Handler,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `addr`.
    ///
    /// With port 0 the operating system picks a port for the UDP socket and TCP binds the same
    /// one; if another process already holds that port for TCP, the pair is retried on a new
    /// port (up to 16 times). With a fixed port there is nothing to retry and the error is
    /// returned. Errors are returned, not logged, and name the address and protocol.
    pub async fn bind(addr: SocketAddr, zone: watch::Receiver<Arc<Zone>>) -> io::Result<DnsServer> {
        let mut attempt = 1;
        loop {
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(|error| context(error, "UDP", addr))?;
            let local_addr = udp.local_addr()?;
            match TcpListener::bind(local_addr).await {
                Ok(tcp) => {
                    return Ok(DnsServer {
                        udp,
                        tcp,
                        local_addr,
                        handler: Handler {
                            zone: ZoneReader::new(zone),
                            stats: Arc::default(),
                            upstreams: Arc::from([]),
                        },
                    });
                }
                Err(error)
                    if addr.port() == 0
                        && error.kind() == io::ErrorKind::AddrInUse
                        && attempt < BIND_ATTEMPTS =>
                {
                    // Dropping `udp` releases the port; the next round asks for a new one.
                    attempt += 1;
                }
                Err(error) => return Err(context(error, "TCP", local_addr)),
            }
        }
    }

    /// Forwards queries for names outside Trellis's zones and custom domain names to
    /// `upstreams`, tried in order (the server is then a machine's whole resolver); without
    /// upstreams such queries are REFUSED.
    pub fn with_upstreams(mut self, upstreams: Vec<SocketAddr>) -> DnsServer {
        self.handler.upstreams = Arc::from(upstreams);
        self
    }

    /// The address both sockets are bound to (with the port the OS picked, if `addr` had 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's query counters (shared: they keep counting once the server runs).
    pub fn stats(&self) -> Arc<DnsStats> {
        Arc::clone(&self.handler.stats)
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes open TCP connections and
    /// returns `Ok(())`.
    ///
    /// Returns an error only if a socket fails for good before `shutdown` (the UDP socket or the
    /// TCP listener closed underneath the server).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let mut server = Server::new(self.handler);
        server.register_socket(self.udp);
        server.register_listener(self.tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);

        let result = tokio::select! {
            // Reached only if the socket tasks end on their own, which they do only on failure.
            result = server.block_until_done() => result,
            () = shutdown => server.shutdown_gracefully().await,
        };
        result.map_err(io::Error::other)
    }
}

fn context(error: io::Error, protocol: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("DNS server: cannot bind {protocol} {addr}: {error}"),
    )
}

/// Lock-free access to the latest [`Zone`] published on the watch channel.
///
/// `watch::Receiver::borrow` takes the channel's internal read lock, which the publisher's
/// `send` must wait out. Instead each query loads a cached `(receiver, zone)` pair from an
/// `ArcSwap` and asks the cached receiver whether a newer zone was published, which is a single
/// atomic load of the channel's version. Only the first query after a publish touches the
/// channel's lock, to fetch the new zone and cache it with a receiver that has seen it. A publish
/// is therefore visible to the very next query, with no background task to race against.
struct ZoneReader {
    cache: ArcSwap<CachedZone>,
}

struct CachedZone {
    /// A receiver whose "seen" version is exactly the version `zone` was read at.
    receiver: watch::Receiver<Arc<Zone>>,
    zone: Arc<Zone>,
    /// Every sender was already gone when `zone` was read, so it is the final value.
    final_value: bool,
}

impl CachedZone {
    fn read(mut receiver: watch::Receiver<Arc<Zone>>) -> CachedZone {
        // Checked before reading: if the channel was already closed, no send can follow, and the
        // value read next is the last one ever published.
        let final_value = receiver.is_closed();
        let zone = receiver.borrow_and_update().clone();
        CachedZone {
            receiver,
            zone,
            final_value,
        }
    }
}

impl ZoneReader {
    fn new(receiver: watch::Receiver<Arc<Zone>>) -> ZoneReader {
        ZoneReader {
            cache: ArcSwap::from_pointee(CachedZone::read(receiver)),
        }
    }

    fn current(&self) -> Arc<Zone> {
        let cached = self.cache.load();
        // `has_changed` errs once every sender is gone: the publisher shut down, and the server
        // keeps answering from the last zone it published.
        if cached.final_value || matches!(cached.receiver.has_changed(), Ok(false)) {
            return Arc::clone(&cached.zone);
        }
        let fresh = CachedZone::read(cached.receiver.clone());
        let zone = Arc::clone(&fresh.zone);
        // Concurrent refreshers may store out of order; an older pair stored last still carries
        // its own version, so the next query sees `has_changed` and refreshes again.
        self.cache.store(Arc::new(fresh));
        zone
    }
}

/// Answers queries from the current zone.
struct Handler {
    zone: ZoneReader,
    stats: Arc<DnsStats>,
    /// Where queries for names Trellis does not own go (`--dns-upstream`); none: REFUSED.
    upstreams: Arc<[SocketAddr]>,
}

/// Queries answered, by response code (what `trellis_dns_queries_total` reports).
#[derive(Debug, Default)]
pub struct DnsStats {
    no_error: AtomicU64,
    nx_domain: AtomicU64,
    refused: AtomicU64,
    other: AtomicU64,
}

impl DnsStats {
    /// `(response code, queries)`: `NOERROR`, `NXDOMAIN`, `REFUSED`, and `OTHER` (FORMERR,
    /// NOTIMP, BADVERS).
    pub fn counts(&self) -> [(&'static str, u64); 4] {
        [
            ("NOERROR", self.no_error.load(Ordering::Relaxed)),
            ("NXDOMAIN", self.nx_domain.load(Ordering::Relaxed)),
            ("REFUSED", self.refused.load(Ordering::Relaxed)),
            ("OTHER", self.other.load(Ordering::Relaxed)),
        ]
    }

    fn count(&self, code: ResponseCode) {
        let counter = match code {
            ResponseCode::NoError => &self.no_error,
            ResponseCode::NXDomain => &self.nx_domain,
            ResponseCode::Refused => &self.refused,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a query is answered: response code, AA bit, answer section, SOA for the authority
/// section.
struct Answer<'z> {
    code: ResponseCode,
    authoritative: bool,
    answers: &'z [Record],
    soa: Option<&'z Record>,
    /// A standard query for a name Trellis does not own: an upstream may answer it.
    not_ours: bool,
}

impl<'z> Answer<'z> {
    fn error(code: ResponseCode) -> Answer<'z> {
        Answer {
            code,
            authoritative: false,
            answers: &[],
            soa: None,
            not_ours: false,
        }
    }
}

/// Decides the answer to `request`; everything here is pure so the policy reads top to bottom.
fn answer<'z>(zone: &'z Zone, request: &Request) -> Answer<'z> {
    if request
        .edns
        .as_ref()
        .is_some_and(|edns| edns.version() > EDNS_VERSION)
    {
        return Answer::error(ResponseCode::BADVERS);
    }
    if request.metadata.op_code != OpCode::Query {
        // NOTIFY, UPDATE and the rest are for servers with secondaries or dynamic zones.
        return Answer::error(ResponseCode::NotImp);
    }
    let Ok(info) = request.request_info() else {
        // Anything but exactly one question (RFC 9619).
        return Answer::error(ResponseCode::FormErr);
    };
    let query = info.query;
    if query.query_class() != DNSClass::IN {
        return Answer::error(ResponseCode::Refused);
    }
    if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
        // Zones are generated from configuration on every node; nothing needs to transfer them.
        return Answer::error(ResponseCode::Refused);
    }
    match zone.lookup(query.name(), query.query_type()) {
        Lookup::Found { answers, soa } => Answer {
            code: ResponseCode::NoError,
            authoritative: true,
            answers,
            // Positive answers need no authority section; NODATA carries the SOA so that
            // resolvers can cache the negative answer (RFC 2308 §2.2).
            soa: answers.is_empty().then_some(soa),
            not_ours: false,
        },
        Lookup::NxDomain { soa } => Answer {
            code: ResponseCode::NXDomain,
            authoritative: true,
            answers: &[],
            soa: Some(soa),
            not_ours: false,
        },
        Lookup::Refused => Answer {
            not_ours: true,
            ..Answer::error(ResponseCode::Refused)
        },
    }
}

/// The response's metadata and EDNS for `request` answered with `answer`; the server and
/// [`answer_bytes`] both build their responses from it, so the two cannot drift apart.
fn response_header(request: &Request, answer: &Answer<'_>) -> (Metadata, Option<Edns>) {
    // A query with EDNS must get EDNS back (RFC 6891 §6.1.1); it also carries the upper
    // bits of extended response codes such as BADVERS. The payload size is the client's,
    // never below the 512 octets every client accepts.
    let edns = request.edns.as_ref().map(|requested| {
        let mut edns = Edns::new();
        edns.set_version(EDNS_VERSION);
        edns.set_max_payload(requested.max_payload().max(512));
        edns.set_rcode_high(answer.code.high());
        edns
    });
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = answer.authoritative;
    metadata.response_code = answer.code;
    (metadata, edns)
}

/// Answers one DNS message given as raw bytes with the response the server sends for it over
/// TCP (never truncated), as bytes: a pure entry point from the wire to the answer, for fuzzing
/// and tests.
///
/// `None` where this module's handler is never reached: a message hickory-server cannot decode
/// (it answers FORMERR itself when the header is readable, nothing when it is not), a response
/// message (dropped against reflection), or a response that cannot be encoded.
pub fn answer_bytes(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let src = SocketAddr::from(([0, 0, 0, 0], 0));
    let request = Request::from_bytes(query.to_vec(), src, Protocol::Tcp).ok()?;
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let answer = answer(zone, &request);
    let (metadata, edns) = response_header(&request, &answer);
    let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
        metadata,
        answer.answers.iter(),
        iter::empty(),
        answer.soa,
        iter::empty(),
    );
    let mut bytes = Vec::with_capacity(512);
    response
        .destructive_emit(&mut BinEncoder::new(&mut bytes))
        .ok()?;
    Some(bytes)
}

impl Handler {
    /// Answers `request` with an upstream's reply (SERVFAIL when none answers in time).
    async fn forwarded<R: ResponseHandler>(
        &self,
        request: &Request,
        answer: &Answer<'_>,
        mut response_handle: R,
    ) -> ResponseInfo {
        let reply = crate::forward::forward(request.as_slice(), &self.upstreams).await;
        let (mut metadata, edns) = response_header(request, answer);
        metadata.authoritative = false;
        metadata.recursion_available = true;
        let empty = Vec::new();
        let (answers, authorities, additionals) = match &reply {
            Some(reply) => {
                metadata.response_code = reply.metadata.response_code;
                (&reply.answers, &reply.authorities, &reply.additionals)
            }
            None => {
                metadata.response_code = ResponseCode::ServFail;
                (&empty, &empty, &empty)
            }
        };
        self.stats.count(metadata.response_code);
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answers.iter(),
            authorities.iter(),
            iter::empty(),
            additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "DNS: failed to send a forwarded response");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // One zone for the whole query, even if a new one is published meanwhile.
        let zone = self.zone.current();
        // The client's view: a client network sees its own service network's names.
        let answer = answer(zone.for_client(request.src().ip()), request);
        if answer.not_ours && !self.upstreams.is_empty() {
            return self.forwarded(request, &answer, response_handle).await;
        }

        let (metadata, edns) = response_header(request, &answer);
        self.stats.count(metadata.response_code);
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answer.answers.iter(),
            iter::empty(),
            answer.soa,
            iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                // The client went away or the socket failed; hickory-server's reporter has
                // already logged the failure, and there is no one left to answer.
                tracing::debug!(%error, "DNS: failed to send a response");
                let mut metadata = metadata;
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

#[cfg(test)]
mod stats_tests {
    use super::*;

    #[test]
    fn queries_count_by_response_code() {
        let stats = DnsStats::default();
        for code in [
            ResponseCode::NoError,
            ResponseCode::NoError,
            ResponseCode::NXDomain,
            ResponseCode::Refused,
            ResponseCode::FormErr,
            ResponseCode::NotImp,
        ] {
            stats.count(code);
        }
        assert_eq!(
            stats.counts(),
            [
                ("NOERROR", 2),
                ("NXDOMAIN", 1),
                ("REFUSED", 1),
                ("OTHER", 2)
            ]
        );
    }
}
