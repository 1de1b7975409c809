//! A TCP forwarder a test can cut, or take down and bring back on the same port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Local addresses of the forwarded connections' outbound sides, by connection.
type Links = Arc<Mutex<HashMap<u64, SocketAddr>>>;

/// A TCP forwarder to `target` that a test can cut, to make a dependency unreachable: for good
/// ([`TcpProxy::cut`]) or until [`TcpProxy::up`] listens again on the same port
/// ([`TcpProxy::down`]).
pub struct TcpProxy {
    pub port: u16,
    target: SocketAddr,
    /// The accept loop, which owns every forwarded connection; `None` while down.
    task: Option<JoinHandle<()>>,
    links: Links,
    next_link: Arc<AtomicU64>,
}

impl TcpProxy {
    /// Forwards `127.0.0.1:{port}` to `target` until cut.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut proxy = TcpProxy {
            port: listener.local_addr().unwrap().port(),
            target,
            task: None,
            links: Links::default(),
            next_link: Arc::new(AtomicU64::new(0)),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let (target, links, next_link) = (self.target, self.links.clone(), self.next_link.clone());
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task: aborting it closes every forwarded connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let links = links.clone();
                let link = next_link.fetch_add(1, Ordering::Relaxed);
                connections.spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    if let Ok(local) = outbound.local_addr() {
                        links.lock().unwrap().insert(link, local);
                    }
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    links.lock().unwrap().remove(&link);
                });
                // Finished connections are reaped as new ones come, so a long test holds no
                // handle per past connection.
                while connections.try_join_next().is_some() {}
            }
        }));
    }

    /// Closes the listener and every forwarded connection.
    pub fn cut(self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }

    /// Takes the dependency down: closes the listener and every forwarded connection, and
    /// returns once they are closed. New connections are refused until [`TcpProxy::up`].
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.links.lock().unwrap().clear();
    }

    /// Brings the dependency back: listens again on the same port.
    pub async fn up(&mut self) {
        assert!(self.task.is_none(), "the proxy is up already");
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "port {} could not be listened on again: {e}",
                    self.port
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.serve(listener);
    }

    /// The local addresses of the connections forwarded now, as the target sees their peers
    /// (what a server lists as its clients' addresses).
    pub fn outbound_addresses(&self) -> Vec<SocketAddr> {
        self.links.lock().unwrap().values().copied().collect()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
