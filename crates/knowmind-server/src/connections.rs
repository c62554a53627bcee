//! Accepting connections: HTTP/1.1 on hyper, with
//!
//! - a **header-read timeout**: a client must send a request's complete headers within it,
//!   counted from the moment the connection is opened or goes idle after a response — so it is
//!   also the **keep-alive idle timeout**. A client dribbling one header byte at a time, or
//!   holding an idle connection open, is cut off (hyper's timer; `axum::serve` does not expose
//!   it);
//! - a **cap on concurrent connections**: when it is reached, the server stops accepting until
//!   one closes, so a flood of connections costs bounded memory and file descriptors;
//! - a **cap per client address**: a connection beyond it is closed at once, so that one host
//!   cannot take every slot (off behind a reverse proxy, where every peer is the proxy);
//! - **graceful shutdown**: on the signal, the listener closes, requests in flight finish (up to
//!   a deadline), idle connections are closed.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionLimits {
    /// Time allowed for a request's headers, from the connection's start or its last response.
    pub(crate) header_read_timeout: Duration,
    /// Connections served at once.
    pub(crate) max_connections: usize,
    /// Connections served at once from one peer address (IPv6: one /64); 0 = no limit.
    pub(crate) max_per_address: usize,
    /// How long shutdown waits for requests in flight.
    pub(crate) shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1_024,
            max_per_address: 64,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains. Each request carries the
/// peer address as [`ConnectInfo<SocketAddr>`].
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before we took it: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = per_address.take(peer.ip(), limits.max_per_address) else {
            tracing::debug!(peer = %peer.ip(), "too many connections from one address; closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let connection = graceful.watch(
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
        );
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
            }
            drop((slot, held));
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running when the shutdown grace ended");
    }
}

/// Connections open per peer address.
#[derive(Default)]
struct PerAddress(std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>);

/// One connection counted against its address; uncounted when dropped.
struct Held(Arc<PerAddress>, IpAddr);

impl PerAddress {
    /// Counts a connection from `ip`, unless `max` (non-zero) are open already.
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Held> {
        let key = match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            other => other,
        };
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_default();
        if max != 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(Held(self.clone(), key))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}
