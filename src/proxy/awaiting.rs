//! An MCP exchange waiting for the upstream's answer. A client that goes away meanwhile
//! (closing its stream is how an MCP client cancels) makes hyper drop the request's future, and
//! with it the request to the upstream: the upstream connection closes, which is how the server
//! learns. The guard's drop then records the exchange's operations as `cancelled`, with the
//! status nginx logs for it, 499, since no answer was sent.

use std::sync::Arc;

use super::exchange::Exchange;
use super::record::Recorder;
use super::request::RequestInfo;
use super::route::RouteState;
use super::Shared;
use crate::mcp::response::ResponseDecoder;
use crate::metrics::ErrorType;

/// The status recorded for an exchange whose client left before the answer (nginx's).
pub(super) const CLIENT_CLOSED: u16 = 499;

pub(super) struct Awaiting {
    shared: Arc<Shared>,
    route: Option<Arc<RouteState>>,
    method: http::Method,
    info: Option<RequestInfo>,
}

impl Awaiting {
    pub(super) fn new(
        shared: &Arc<Shared>,
        route: Option<Arc<RouteState>>,
        method: &http::Method,
        info: RequestInfo,
    ) -> Self {
        Self { shared: shared.clone(), route, method: method.clone(), info: Some(info) }
    }

    /// The answer came (or the upstream failed): the exchange goes on without the guard.
    pub(super) fn answered(mut self) -> RequestInfo {
        self.info.take().expect("taken once")
    }
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        let (Some(info), Some(state)) = (self.info.take(), self.route.take()) else { return };
        self.shared.metrics.record_http_exchange(&state.label, &self.method, CLIENT_CLOSED);
        let recorder = Recorder::new(&self.shared, state, info.call, CLIENT_CLOSED);
        let (sessions, headers) = (self.shared.sessions.clone(), http::HeaderMap::new());
        let exchange = Exchange::new(recorder, sessions, info.open, CLIENT_CLOSED, &headers, ResponseDecoder::None);
        exchange.fail(ErrorType::Cancelled);
    }
}
