//! The metrics HTTP endpoint: `/metrics`, `/healthz` and `/readyz` over
//! HTTP/1.1, served by `hyper` on `tokio`.
//!
//! - `/metrics` returns every metric in the Prometheus text format.
//! - `/healthz` returns 200 while the process is alive.
//! - `/readyz` returns 200 while the `cfscrub_ready` gauge is 1, else 503.
//!
//! Only `GET` and `HEAD` are allowed. Code already inside a tokio runtime
//! calls [`serve`] or [`serve_with_shutdown`]; the synchronous stream
//! filter starts a [`MetricsServer`], which runs its own runtime on a
//! background thread.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Metrics;

/// Address of the endpoint when `--metrics-listen` names only a port:
/// loopback, so that metrics are never exposed beyond the host by accident.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9898";

/// Content type of the Prometheus text exposition format 0.0.4.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// How long a shutdown waits for responses already being sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause after an accept error that is not about one connection, such as
/// running out of file descriptors, which clears when connections close.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves the endpoint on `listener` until an error makes the listener
/// unusable.
///
/// For code already inside a tokio runtime. Each connection runs in a task
/// spawned on the current runtime. Dropping the future stops accepting and
/// drops the connections; [`serve_with_shutdown`] lets the responses
/// being sent finish first.
///
/// # Errors
///
/// Returns the accept error when the socket no longer listens (`EINVAL`).
/// Errors of one connection, and a lack of file descriptors, are logged
/// and serving goes on.
pub async fn serve(listener: TcpListener, metrics: Metrics) -> io::Result<()> {
    serve_with_shutdown(listener, metrics, std::future::pending()).await
}

/// Serves the endpoint on `listener` until `shutdown` completes, then
/// waits up to 2 seconds for the responses being sent to finish.
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_with_shutdown(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let state = Arc::new(State { metrics, scrapes: AtomicU64::new(0) });
    serve_state(listener, state, shutdown).await
}

/// Data shared by every connection of one endpoint.
struct State {
    metrics: Metrics,
    /// `/metrics` responses built so far.
    scrapes: AtomicU64,
}

async fn serve_state(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);

    let result = loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break Ok(()),
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => {
                let connection =
                    serve_connection(stream, state.clone(), stop_rx.clone());
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "metrics connection failed");
                    }
                });
            }
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(%error, "metrics connection failed on accept");
            }
            Err(error) if error.kind() == io::ErrorKind::InvalidInput => {
                break Err(error);
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection failed, retrying");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    };

    drop(listener);
    // `wait_for` checks the current value first, so a connection that
    // starts waiting after this send still stops. A send error means that
    // every connection has already ended.
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            open = connections.len(),
            "metrics connections still open at shutdown, closing them"
        );
    }
    result
}

/// Serves one connection until the client closes it, or until `stop`
/// turns true and the response in progress has been sent.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) -> hyper::Result<()> {
    let service = service_fn(move |request| {
        let response = respond(&state, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection =
        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return result,
        _ = stop.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

fn respond(
    state: &State,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut response =
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => {
            let body = state.metrics.encode();
            state.scrapes.fetch_add(1, Ordering::Release);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(METRICS_CONTENT_TYPE),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.metrics.ready.get() == 1 => {
            text(StatusCode::OK, "ready\n")
        }
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: the paths are /metrics, /healthz and /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response =
        Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Returns whether `error` concerns only the connection being accepted.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The endpoint served from a background thread, for synchronous code.
///
/// The thread runs a current-thread tokio runtime of its own. Dropping the
/// server stops it: it stops accepting, lets the responses being sent
/// finish (up to 2 seconds), and joins the thread.
pub struct MetricsServer {
    local_addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and starts serving `metrics` on a background thread.
    ///
    /// Binding happens before this returns, so a port already in use is
    /// reported here, and a scrape may start as soon as it returns.
    ///
    /// # Errors
    ///
    /// Fails when the address cannot be bound, with a message that names
    /// it, such as `cannot listen on 127.0.0.1:9898: address already in
    /// use`, or when the thread or runtime cannot be created.
    pub fn start(
        addr: SocketAddr,
        metrics: Metrics,
    ) -> anyhow::Result<MetricsServer> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|error| listen_error(addr, &error))?;
        listener
            .set_nonblocking(true)
            .map_err(|error| listen_error(addr, &error))?;
        let local_addr = listener
            .local_addr()
            .map_err(|error| listen_error(addr, &error))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|error| {
                anyhow::anyhow!(
                    "cannot start the metrics endpoint runtime: {error}"
                )
            })?;
        let state = Arc::new(State { metrics, scrapes: AtomicU64::new(0) });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("metrics-http".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::error!(
                                %local_addr, %error,
                                "metrics endpoint failed to start"
                            );
                            return;
                        }
                    };
                    let shutdown = async {
                        // An error means the server was dropped: stop too.
                        let _ = stopped.await;
                    };
                    if let Err(error) =
                        serve_state(listener, thread_state, shutdown).await
                    {
                        tracing::error!(
                            %local_addr, %error,
                            "metrics endpoint stopped"
                        );
                    }
                });
            })
            .map_err(|error| {
                anyhow::anyhow!(
                    "cannot start the metrics endpoint thread: {error}"
                )
            })?;
        tracing::info!(addr = %local_addr, "metrics endpoint listening");
        Ok(MetricsServer {
            local_addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Returns the address the server listens on, with the port the
    /// system chose when `addr` had port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the number of `/metrics` responses built so far.
    pub fn scrapes(&self) -> u64 {
        self.state.scrapes.load(Ordering::Acquire)
    }

    /// Waits until a `/metrics` response is built after this call, or
    /// until `timeout` has passed. Returns whether a scrape came.
    ///
    /// Metrics published before the call are in that response. It may
    /// still be on its way when this returns, but dropping the server lets
    /// it finish.
    pub fn wait_for_scrape(&self, timeout: Duration) -> bool {
        self.wait_for_scrape_unless(timeout, || false)
    }

    /// Like [`MetricsServer::wait_for_scrape`], but also gives up, and
    /// returns false, as soon as `stopped` returns true.
    pub fn wait_for_scrape_unless(
        &self,
        timeout: Duration,
        stopped: impl Fn() -> bool,
    ) -> bool {
        const POLL: Duration = Duration::from_millis(20);
        let before = self.scrapes();
        let deadline = Instant::now() + timeout;
        loop {
            if self.scrapes() > before {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || stopped() {
                return false;
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread.join().is_err() {
            tracing::error!(
                addr = %self.local_addr,
                "metrics endpoint thread panicked"
            );
        }
    }
}

/// Describes a failed bind of `addr` in the `context: detail` shape, with
/// the way out for the common causes.
pub(crate) fn listen_error(
    addr: SocketAddr,
    error: &io::Error,
) -> anyhow::Error {
    let detail = match error.kind() {
        io::ErrorKind::AddrInUse => "address already in use; stop the \
            process that listens there or choose another port"
            .to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available: it \
            is not an address of this host"
            .to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied; ports \
            below 1024 need privileges, so choose a higher port"
            .to_owned(),
        _ => super::os_message(error),
    };
    anyhow::anyhow!("cannot listen on {addr}: {detail}")
}
