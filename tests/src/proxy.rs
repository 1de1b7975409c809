//! A TCP forwarder a test can cut.

/// A TCP forwarder to `target` that a test can cut, to make a dependency unreachable.
pub struct TcpProxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards `127.0.0.1:{port}` to `target` until cut.
    pub async fn start(target: std::net::SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        TcpProxy { port, task }
    }

    /// Closes the listener and every forwarded connection.
    pub fn cut(self) {
        self.task.abort();
    }
}
