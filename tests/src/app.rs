//! The in-process test server: the `stowage-api` application built from the environment a process
//! would get, served by a multi-thread runtime of its own on a thread of its own, so that it never
//! depends on the test's (current-thread, sometimes blocked) runtime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use stowage_api::Application;
use stowage_api::config::Config;
use tokio::sync::oneshot;

/// How long [`InProcess::stop`] waits for the server's thread before leaving it behind: a drain
/// can wait on a client of the test's own runtime, which is blocked while the test waits here.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running in-process server; dropping it stops the server without a drain, as a killed
/// process stops.
pub(crate) struct InProcess {
    /// Stops the server, which may drain requests in flight for the given time.
    stop: Option<oneshot::Sender<Duration>>,
    /// Says the server's thread is done (its runtime shut down); in a mutex so that a test can
    /// share its server between tasks.
    done: Mutex<mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Builds the application from `env` (as `Config::from_map`, never the test's environment)
    /// and serves it; returns once it is bound.
    ///
    /// # Panics
    /// When the configuration is invalid or the application cannot start (what a process would
    /// exit non-zero for), with the reason.
    pub(crate) async fn start(env: &HashMap<String, String>) -> (InProcess, SocketAddr) {
        let config = Config::from_map(env)
            .unwrap_or_else(|e| panic!("stowage-api: configuration error: {e}"));
        let (ready_tx, ready_rx) = oneshot::channel::<Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<Duration>();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("stowage-test-server".into())
            .spawn(move || {
                serve(config, ready_tx, stop_rx);
                let _ = done_tx.send(());
            })
            .expect("spawn the server thread");
        let server = InProcess {
            stop: Some(stop_tx),
            done: Mutex::new(done),
            thread: Some(thread),
        };
        // Awaited, not blocked on: building may need the test's runtime (a proxy it runs, say).
        match ready_rx.await {
            Ok(Ok(address)) => (server, address),
            Ok(Err(e)) => panic!("stowage-api did not start: {e}"),
            Err(_) => panic!("the in-process server's thread died while it started"),
        }
    }

    /// Stops accepting, lets requests in flight finish for up to `drain`, and waits (up to
    /// [`STOP_TIMEOUT`]) for the server's runtime to shut down, so that its port is free again.
    pub(crate) fn stop(mut self, drain: Duration) {
        self.stop_with(drain);
    }

    fn stop_with(&mut self, drain: Duration) {
        let Some(stop) = self.stop.take() else {
            return;
        };
        let _ = stop.send(drain);
        let done = self.done.get_mut().unwrap_or_else(PoisonError::into_inner);
        if done.recv_timeout(STOP_TIMEOUT + drain).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop_with(Duration::ZERO);
    }
}

/// The server thread: builds the application on a runtime of its own, says where it listens,
/// serves until told to stop, then drains for at most the time it was given.
fn serve(
    config: Config,
    ready: oneshot::Sender<Result<SocketAddr, String>>,
    stop: oneshot::Receiver<Duration>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("stowage-test-server")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(format!("runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        if ready.send(Ok(app.local_addr())).is_err() {
            return;
        }
        let (drain_tx, drain_rx) = oneshot::channel();
        let serving = app.run_until(async move {
            // A dropped sender (the test panicked) stops the server too, without a drain.
            let drain = stop.await.unwrap_or_default();
            let _ = drain_tx.send(drain);
        });
        let drain_limit = async move {
            match drain_rx.await {
                Ok(drain) => tokio::time::sleep(drain).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = serving => {}
            () = drain_limit => {}
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}
