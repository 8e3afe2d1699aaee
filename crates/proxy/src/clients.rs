//! Client networks on the request path: the PROXY protocol v2 header of trusted senders, the
//! admission of a connection at accept, and each connection's admitted VPC, re-decided when
//! the snapshot changes (so a security-group change applies to connections already open).
//!
//! The decision itself is the snapshot's ([`trellis_snapshot::clients`]); this module applies it.
//! Decisions (docs/decisions.md, "Which client network a connection comes from"):
//! * A connection that no VPC admits is closed at accept, before any byte is read (as a
//!   security group drops the packets of a client it does not admit; Lattice's clients outside
//!   an associated VPC cannot even route to it). A request on a connection that a newer
//!   configuration no longer admits gets 403 (`Access denied: …`).
//! * With `--open-network` (a development mode) nothing is refused: a client in an associated
//!   VPC is still attributed (headers, condition keys, the network it arrives through), any
//!   other reaches every served service, as before client networks existed.
//! * Senders in `--proxy-protocol-from` must start every connection with a PROXY protocol v2
//!   header; it gives the client's address and, in TLV [`SOURCE_VPC_TLV`], optionally its VPC.
//!   A connection from them without a valid header is closed. Other peers' headers are not
//!   read (they are HTTP garbage: 400).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use trellis_snapshot::Snapshot;
use trellis_snapshot::clients::{ClientVpc, Refusal};

/// The PROXY protocol v2 TLV type carrying the client's VPC ID (ASCII, `vpc-…`). From the
/// range the specification leaves to applications (0xE0–0xEF); AWS's own (0xEA) carries VPC
/// *endpoint* IDs, which are not this.
pub const SOURCE_VPC_TLV: u8 = 0xE6;

/// The largest PROXY v2 header accepted (the 16-byte preamble, addresses and TLVs).
const MAX_PROXY_HEADER: usize = 16 + 1024;

/// Where a connection really comes from.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    /// The client's address: the TCP peer, or the one a trusted sender's header gave.
    pub peer: SocketAddr,
    /// The VPC a trusted sender named.
    pub claimed_vpc: Option<String>,
}

/// Why a trusted sender's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("the PROXY header is {0} bytes, more than {MAX_PROXY_HEADER}")]
    TooLarge(usize),
    #[error("not a PROXY protocol v2 header: {0}")]
    Parse(String),
    #[error("the PROXY header carries no IP address")]
    NoAddress,
    #[error("the PROXY header's source VPC TLV is not a VPC ID")]
    BadVpc,
}

/// Whether `peer` is a trusted PROXY protocol sender.
pub(crate) fn trusted(from: &[IpNet], peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    from.iter().any(|net| net.contains(&peer))
}

/// Reads exactly one PROXY protocol v2 header from `stream` (nothing after it).
pub(crate) async fn read_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Result<Origin, HeaderError> {
    let mut buf = vec![0u8; 16];
    stream.read_exact(&mut buf).await?;
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if 16 + len > MAX_PROXY_HEADER {
        return Err(HeaderError::TooLarge(16 + len));
    }
    buf.resize(16 + len, 0);
    stream.read_exact(&mut buf[16..]).await?;
    parse_header(&buf, peer)
}

/// The origin a complete PROXY v2 header gives. `LOCAL` (the sender's own health checks)
/// keeps the TCP peer.
pub(crate) fn parse_header(bytes: &[u8], peer: SocketAddr) -> Result<Origin, HeaderError> {
    use ppp::v2::{Addresses, Command, Header};
    let header = Header::try_from(bytes).map_err(|e| HeaderError::Parse(e.to_string()))?;
    let client = match (header.command, header.addresses) {
        (Command::Local, _) => peer,
        (Command::Proxy, Addresses::IPv4(a)) => {
            SocketAddr::new(IpAddr::V4(a.source_address), a.source_port)
        }
        (Command::Proxy, Addresses::IPv6(a)) => {
            SocketAddr::new(IpAddr::V6(a.source_address), a.source_port)
        }
        (Command::Proxy, _) => return Err(HeaderError::NoAddress),
    };
    let mut claimed_vpc = None;
    for tlv in header.tlvs() {
        let tlv = tlv.map_err(|e| HeaderError::Parse(e.to_string()))?;
        if tlv.kind == SOURCE_VPC_TLV {
            let id = std::str::from_utf8(&tlv.value).map_err(|_| HeaderError::BadVpc)?;
            if !trellis_model::resources::association::is_vpc_id(id) {
                return Err(HeaderError::BadVpc);
            }
            claimed_vpc = Some(id.to_string());
        }
    }
    Ok(Origin {
        peer: client,
        claimed_vpc,
    })
}

/// A connection's admitted VPC, with the header values it gives requests.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub vpc: Arc<ClientVpc>,
    /// `x-amzn-lattice-network`: `SourceVpcArn=<arn>`.
    pub network_header: HeaderValue,
    /// `x-amzn-source-vpc`: the VPC ID.
    pub source_vpc_header: HeaderValue,
}

impl Admitted {
    /// The service network the connection's requests arrive through.
    pub fn network_id(&self) -> &str {
        self.vpc
            .association
            .as_ref()
            .map_or("", |a| a.network_id.as_str())
    }
}

/// The per-connection cache of the admission decision, replaced when a request sees a newer
/// snapshot: one load and one reference count per request while the configuration is unchanged.
#[derive(Default)]
pub(crate) struct ClientCache(ArcSwapOption<Cached>);

struct Cached {
    revision: u64,
    admitted: Option<Arc<Admitted>>,
}

impl ClientCache {
    /// The VPC admitting this connection under `snapshot`; `None` when nothing admits it and
    /// `open` (development mode) lets it through anyway.
    pub fn admitted(
        &self,
        snapshot: &Snapshot,
        local: SocketAddr,
        origin: &Origin,
        open: bool,
    ) -> Result<Option<Arc<Admitted>>, Refusal> {
        if let Some(cached) = &*self.0.load()
            && cached.revision == snapshot.revision
        {
            return Ok(cached.admitted.clone());
        }
        let admitted = match snapshot.clients.admit(
            local.ip(),
            local.port(),
            origin.peer.ip(),
            origin.claimed_vpc.as_deref(),
        ) {
            Ok(vpc) => Some(Arc::new(Admitted {
                network_header: HeaderValue::try_from(format!("SourceVpcArn={}", vpc.arn))
                    .unwrap_or(crate::headers::LATTICE_NETWORK),
                source_vpc_header: HeaderValue::try_from(vpc.id.as_str())
                    .unwrap_or_else(|_| HeaderValue::from_static("")),
                vpc: Arc::clone(vpc),
            })),
            Err(_) if open => None,
            // Not cached: the connection is refused this request, and the next one is decided
            // afresh (a refusal is rare, and the configuration may be changing back).
            Err(refusal) => return Err(refusal),
        };
        self.0.store(Some(Arc::new(Cached {
            revision: snapshot.revision,
            admitted: admitted.clone(),
        })));
        Ok(admitted)
    }
}

#[cfg(test)]
mod tests {
    use ppp::v2::{Builder, Command, IPv4, Protocol, Version};

    use super::*;

    fn header(command: Command, tlv: Option<&[u8]>) -> Vec<u8> {
        let addresses = IPv4::new([10, 1, 2, 3], [127, 0, 0, 1], 40000, 8080);
        let mut b = Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses);
        if let Some(value) = tlv {
            b = b.write_tlv(SOURCE_VPC_TLV, value).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn proxy_headers_table() {
        let peer: SocketAddr = "127.0.0.9:5000".parse().unwrap();
        let ok = parse_header(&header(Command::Proxy, None), peer).unwrap();
        assert_eq!(ok.peer, "10.1.2.3:40000".parse().unwrap());
        assert_eq!(ok.claimed_vpc, None);
        let vpc = parse_header(
            &header(Command::Proxy, Some(b"vpc-0123456789abcdef0")),
            peer,
        )
        .unwrap();
        assert_eq!(vpc.claimed_vpc.as_deref(), Some("vpc-0123456789abcdef0"));
        let local = parse_header(&header(Command::Local, None), peer).unwrap();
        assert_eq!(local.peer, peer);
        assert!(matches!(
            parse_header(&header(Command::Proxy, Some(b"subnet-1")), peer),
            Err(HeaderError::BadVpc)
        ));
        assert!(matches!(
            parse_header(b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n", peer),
            Err(HeaderError::Parse(_))
        ));
    }

    #[test]
    fn trusted_senders() {
        let from: Vec<IpNet> = vec!["127.0.0.64/30".parse().unwrap()];
        assert!(trusted(&from, "127.0.0.65".parse().unwrap()));
        assert!(trusted(&from, "::ffff:127.0.0.66".parse().unwrap()));
        assert!(!trusted(&from, "127.0.0.1".parse().unwrap()));
    }
}
