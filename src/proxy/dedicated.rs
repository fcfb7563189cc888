//! One upstream connection per client connection, as nginx's keep-alive upstreams work in
//! practice: an HTTP/1.1 client sends its requests one after another, so the connection that
//! carried the last one is idle when the next arrives. Reusing it skips the pool (a shared map,
//! a checkout racing a connect, a task hop per exchange). Used only where that holds: an
//! `http://` upstream and an HTTP/1.x client; h2c clients (concurrent streams) and TLS upstreams
//! use the worker's pool.

use std::sync::{Arc, Mutex};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tower_service::Service;

use crate::http_client::{UpstreamBody, UpstreamClients};

/// The client connection's upstream connection, and the upstream settings it was made with (a
/// reload that changes them retires it).
#[derive(Default)]
pub(super) struct Dedicated(Mutex<Option<(Arc<UpstreamClients>, SendRequest<UpstreamBody>)>>);

/// Why an exchange on the dedicated connection failed.
pub(crate) enum Failure {
    /// The upstream could not be reached.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed while the request was on it.
    Exchange(hyper::Error),
}

impl Dedicated {
    /// Sends `req` (absolute URI) on this client connection's upstream connection, opening one
    /// if there is none or the last one was closed. A request the old connection never took
    /// goes on a new one.
    pub(super) async fn send(
        &self,
        clients: &Arc<UpstreamClients>,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Failure> {
        if let Some(pq) = req.uri().path_and_query().cloned() {
            *req.uri_mut() = Uri::from(pq);
        }
        let held = self.take(clients);
        if let Some(mut sender) = held {
            let sending = sender.try_send_request(req);
            self.put(clients, sender);
            match sending.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    Some(back) => req = back,
                    None => return Err(Failure::Exchange(e.into_error())),
                },
            }
        }
        let mut sender = connect(clients).await?;
        let sending = sender.send_request(req);
        self.put(clients, sender);
        sending.await.map_err(Failure::Exchange)
    }

    /// The held connection if it is idle and made with the current settings.
    fn take(&self, clients: &Arc<UpstreamClients>) -> Option<SendRequest<UpstreamBody>> {
        let held = self.0.lock().ok()?.take()?;
        (Arc::ptr_eq(&held.0, clients) && held.1.is_ready()).then_some(held.1)
    }

    fn put(&self, clients: &Arc<UpstreamClients>, sender: SendRequest<UpstreamBody>) {
        if let Ok(mut held) = self.0.lock() {
            *held = Some((clients.clone(), sender));
        }
    }
}

async fn connect(clients: &UpstreamClients) -> Result<SendRequest<UpstreamBody>, Failure> {
    let io = clients.tcp.clone().call(clients.url.clone()).await.map_err(|e| Failure::Connect(e.into()))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(Failure::Exchange)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
