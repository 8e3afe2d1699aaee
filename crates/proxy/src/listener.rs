//! Listening sockets: binding a port on an ingress address, the accept loop (which admits each
//! connection under the connection caps and, unless its peer is a trusted PROXY protocol
//! sender, by its client network — or closes it at once), and the phase signal through which a
//! port (and every connection it accepted) is drained or closed.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Shared;
use crate::conn;
use crate::limits::{PortGate, Refusal};

/// The accept backlog of every listener.
const BACKLOG: u32 = 1024;

/// What a port's accept loop and connections are told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accept and serve.
    Serving,
    /// Stop accepting; connections finish their in-flight requests and close.
    Draining,
    /// Close every connection now (the shutdown grace ran out).
    Closing,
}

/// A bound port: its phase signal (every connection holds a receiver, so the sender also tells
/// when the last connection is gone) and its accept loop.
pub(crate) struct PortHandle {
    pub phase: watch::Sender<Phase>,
    pub accept: JoinHandle<()>,
}

/// Binds `addr` with `SO_REUSEADDR`, so a port can be bound again at once after a previous
/// listener on it was closed (its old connections in TIME_WAIT do not block it).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr.ip() {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Starts accepting on `listener` (bound on `local`); each connection is served on its own task.
pub(crate) fn spawn(shared: Arc<Shared>, listener: TcpListener, local: SocketAddr) -> PortHandle {
    let (phase, receiver) = watch::channel(Phase::Serving);
    let accept = tokio::spawn(accept_loop(shared, listener, local, receiver));
    PortHandle { phase, accept }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    local: SocketAddr,
    mut phase: watch::Receiver<Phase>,
) {
    let port = local.port();
    let forwarded_port = HeaderValue::from(port);
    let gate = PortGate::new(
        &shared.config.limits,
        Arc::clone(&shared.connections),
        Arc::clone(&shared.refused),
    );
    loop {
        tokio::select! {
            biased;
            // Any change (or the proxy going away) ends accepting.
            _ = phase.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match gate.admit(peer.ip()) {
                    Ok(slot) => {
                        let proxied = crate::clients::trusted(&shared.config.proxy_protocol_from, peer.ip());
                        if proxied || admitted(&shared, local, peer) {
                            tokio::spawn(conn::serve(
                                Arc::clone(&shared),
                                stream,
                                peer,
                                proxied,
                                local,
                                forwarded_port.clone(),
                                phase.clone(),
                                slot,
                            ));
                        }
                        // Else closed at once, like a connection over a cap.
                    }
                    Err(refusal) => {
                        // Closed at once: a connection over a cap never holds a descriptor.
                        // (Leaving it in the backlog instead would also stall the clients
                        // behind it that are within their caps.)
                        drop(stream);
                        refused(&shared, port, peer, refusal);
                    }
                },
                Err(error) => {
                    // Out of file descriptors or memory: accepting again at once would spin.
                    // Pending connections wait in the backlog meanwhile.
                    tracing::warn!(port, %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    // Dropping the listener closes the socket: new connections are refused from here on.
    drop(listener);
    tracing::debug!(port, "stopped accepting");
}

/// Whether the current snapshot's client networks admit a connection from `peer` to `local`
/// (always, in development mode). A refusal is counted and logged like the caps' refusals.
fn admitted(shared: &Shared, local: SocketAddr, peer: SocketAddr) -> bool {
    if shared.config.open_network {
        return true;
    }
    let snapshot = shared.snapshots.load();
    match snapshot
        .clients
        .admit(local.ip(), local.port(), peer.ip(), None)
    {
        Ok(_) => true,
        Err(refusal) => {
            refused_by_network(shared, local, peer, &refusal);
            false
        }
    }
}

/// Logs a connection no client network admits: each at debug level, and a warning at the
/// first, second, fourth, eighth… (so a first-time user sees why curl's connection closed).
pub(crate) fn refused_by_network(
    shared: &Shared,
    local: SocketAddr,
    peer: SocketAddr,
    refusal: &dyn std::fmt::Display,
) {
    let count = shared
        .refused_by_network
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    tracing::debug!(%local, %peer, %refusal, "connection closed: no client network admits it");
    if count.is_power_of_two() {
        tracing::warn!(
            %local,
            %peer,
            %refusal,
            refused_so_far = count,
            "client connections no client network admits are being closed (associate the client's VPC with a service network, or start with --open-network for development)"
        );
    }
}

/// Logs a refused connection: each at debug level, and a warning at the first, second, fourth,
/// eighth… refusal, so that a flood is visible without writing a line per connection.
fn refused(shared: &Shared, port: u16, peer: SocketAddr, refusal: Refusal) {
    let limits = &shared.config.limits;
    let (cap, limit) = match refusal {
        Refusal::Total => ("--max-connections", limits.max_connections),
        Refusal::Port => (
            "--max-connections-per-port",
            limits.max_connections_per_port,
        ),
        Refusal::Source => (
            "--max-connections-per-source",
            limits.max_connections_per_source,
        ),
    };
    tracing::debug!(port, %peer, cap, limit, "connection over a cap closed");
    let count = shared.refused.load(std::sync::atomic::Ordering::Relaxed);
    if count.is_power_of_two() {
        tracing::warn!(
            port,
            %peer,
            cap,
            limit,
            refused_so_far = count,
            "client connections over a cap are being closed"
        );
    }
}
