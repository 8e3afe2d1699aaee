//! Listening sockets: binding a port on the ingress address, the accept loop, and the phase
//! signal through which a port (and every connection it accepted) is drained or closed.

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

/// Binds `port` on `ingress` with `SO_REUSEADDR`, so a port can be bound again at once after a
/// previous listener on it was closed (its old connections in TIME_WAIT do not block it).
pub(crate) fn bind(ingress: IpAddr, port: u16) -> io::Result<TcpListener> {
    let socket = match ingress {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(ingress, port))?;
    socket.listen(BACKLOG)
}

/// Starts accepting on `listener`; each connection is served on its own task.
pub(crate) fn spawn(shared: Arc<Shared>, listener: TcpListener, port: u16) -> PortHandle {
    let (phase, receiver) = watch::channel(Phase::Serving);
    let accept = tokio::spawn(accept_loop(shared, listener, port, receiver));
    PortHandle { phase, accept }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    port: u16,
    mut phase: watch::Receiver<Phase>,
) {
    let forwarded_port = HeaderValue::from(port);
    loop {
        tokio::select! {
            biased;
            // Any change (or the proxy going away) ends accepting.
            _ = phase.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(conn::serve(
                        Arc::clone(&shared),
                        stream,
                        peer,
                        port,
                        forwarded_port.clone(),
                        phase.clone(),
                    ));
                }
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
