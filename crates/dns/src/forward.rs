//! Forwarding the queries Trellis does not own to upstream resolvers (`--dns-upstream`), so that
//! Trellis's DNS can be a machine's only resolver: its own names answered from the zone,
//! everything else relayed.
//!
//! The client's query is sent as received (its bytes, its ID) from a fresh socket connected to
//! the upstream — a random source port, and the kernel drops datagrams from anyone else — and a
//! reply is accepted only if it is a response with the query's ID and question. A truncated
//! UDP reply is asked again over TCP. Upstreams are tried in order, each for
//! [`UPSTREAM_TIMEOUT`]; when none answers, the client gets SERVFAIL.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream has to answer one query.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest reply read over UDP (EDNS payloads beyond it are asked again over TCP).
const MAX_UDP_REPLY: usize = 4096;

/// The upstreams' answer to `query` (raw bytes of one DNS query message), or `None` when no
/// upstream gave a valid one in time.
pub(crate) async fn forward(query: &[u8], upstreams: &[SocketAddr]) -> Option<Message> {
    let sent = Message::from_vec(query).ok()?;
    for upstream in upstreams {
        match tokio::time::timeout(UPSTREAM_TIMEOUT, ask(query, &sent, *upstream)).await {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(error)) => {
                tracing::debug!(%upstream, %error, "DNS upstream failed");
            }
            Err(_) => tracing::debug!(%upstream, "DNS upstream did not answer in time"),
        }
    }
    None
}

async fn ask(query: &[u8], sent: &Message, upstream: SocketAddr) -> io::Result<Message> {
    let local = match upstream.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_UDP_REPLY];
    let reply = loop {
        let n = socket.recv(&mut buf).await?;
        // Anything that is not the reply to this query (a late reply to an earlier one on a
        // reused port, garbage) is ignored; the timeout bounds the wait.
        if let Some(reply) = Message::from_vec(&buf[..n])
            .ok()
            .filter(|r| answers(r, sent))
        {
            break reply;
        }
    };
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    let mut tcp = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(|_| io::Error::other("query too long"))?;
    tcp.write_all(&len.to_be_bytes()).await?;
    tcp.write_all(query).await?;
    let len = usize::from(tcp.read_u16().await?);
    let mut buf = vec![0u8; len];
    tcp.read_exact(&mut buf).await?;
    Message::from_vec(&buf)
        .ok()
        .filter(|r| answers(r, sent))
        .ok_or_else(|| io::Error::other("the TCP reply does not answer the query"))
}

/// Whether `reply` is the response to `sent`: same ID, a response, the same question.
fn answers(reply: &Message, sent: &Message) -> bool {
    reply.metadata.message_type == MessageType::Response
        && reply.metadata.id == sent.metadata.id
        && reply.queries == sent.queries
}
