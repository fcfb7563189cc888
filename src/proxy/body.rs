//! Client-side bodies: `read_capped` reads an MCP request for decoding; `ClientBody::Tapped`
//! returns every upstream frame to the client unchanged, as it arrives, and shows a view of it to
//! the exchange's decoder on the way.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::exchange::{End, Exchange};

/// Something that reads an answer on its way to the client (an OAuth step, an actions API call).
pub(crate) trait BodyWatch: Send {
    fn on_data(&mut self, data: &Bytes);
    /// The answer ended (`complete`: all of it reached the client).
    fn finish(self: Box<Self>, complete: bool);
}

/// What reads a non-MCP answer on the side: an OAuth step, or an actions API call.
pub(crate) enum Watcher {
    OAuth(super::oauth::Start),
    Actions(super::actions_api::Start),
}

impl Watcher {
    pub(crate) fn answered(
        self,
        shared: &std::sync::Arc<super::Shared>,
        status: http::StatusCode,
        headers: &HeaderMap,
    ) -> Box<dyn BodyWatch> {
        match self {
            Watcher::OAuth(start) => start.answered(shared, status, headers),
            Watcher::Actions(start) => start.answered(shared, status.as_u16()),
        }
    }
}

/// A request body as the tap read it.
pub(crate) enum ReadBody {
    Whole(Bytes, Option<HeaderMap>),
    /// Over the cap: what was read is dropped (the request is refused).
    TooLarge,
}

/// Reads a request body up to `cap` bytes; stops reading at the first byte over it. Errors when
/// the client goes away mid-body. `expected` (the declared
/// length, else the cap) sizes the buffer once when a body comes in several frames, so what is
/// held matches what was reserved for it instead of growing by doubling.
pub(crate) async fn read_capped(mut body: Incoming, cap: usize, expected: usize) -> Result<ReadBody, hyper::Error> {
    let mut buf = BytesMut::new();
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                // The common case, one frame for the whole body, keeps its buffer without a copy.
                let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
                if held + data.len() > cap {
                    return Ok(ReadBody::TooLarge);
                }
                if first.is_none() && buf.is_empty() {
                    first = Some(data);
                } else {
                    if let Some(f) = first.take() {
                        buf.reserve(expected.clamp(held + data.len(), cap));
                        buf.extend_from_slice(&f);
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Err(frame) => {
                let trailers = frame.into_trailers().ok();
                return Ok(ReadBody::Whole(first.unwrap_or_else(|| buf.freeze()), trailers));
            }
        }
    }
    Ok(ReadBody::Whole(first.unwrap_or_else(|| buf.freeze()), None))
}

/// A response body on its way to the client.
pub(crate) enum ClientBody {
    Tapped {
        inner: Incoming,
        exchange: Option<Box<Exchange>>,
    },
    /// A response the tap wrote itself (upstream failures).
    Own(Option<Bytes>),
    /// An answer the tap reads on the side (the OAuth journey, the actions API): unchanged.
    Watched {
        inner: Incoming,
        watch: Option<Box<dyn BodyWatch>>,
    },
}

impl ClientBody {
    pub(crate) fn own(bytes: Bytes) -> Self {
        ClientBody::Own(Some(bytes))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ClientBody::Own(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ClientBody::Watched { inner, watch } => {
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(data), Some(w)) = (frame.data_ref(), watch.as_mut()) {
                            w.on_data(data);
                        }
                    }
                    Poll::Ready(end) => {
                        if let Some(w) = watch.take() {
                            w.finish(end.is_none());
                        }
                    }
                    Poll::Pending => {}
                }
                polled
            }
            ClientBody::Tapped { inner, exchange } => {
                let polled = Pin::new(inner).poll_frame(cx);
                if let Poll::Ready(ref result) = polled {
                    match result {
                        Some(Ok(frame)) => {
                            if let (Some(data), Some(ex)) = (frame.data_ref(), exchange.as_mut()) {
                                ex.on_data(data);
                            }
                        }
                        Some(Err(_)) => {
                            if let Some(ex) = exchange.take() {
                                ex.finish(End::Aborted);
                            }
                        }
                        None => {
                            if let Some(ex) = exchange.take() {
                                ex.finish(End::Complete);
                            }
                        }
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Own(b) => b.is_none(),
            ClientBody::Tapped { inner, .. } | ClientBody::Watched { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Own(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ClientBody::Tapped { inner, .. } | ClientBody::Watched { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away (or hyper skipped a body it knew was empty).
        match self {
            ClientBody::Tapped { inner, exchange } => {
                if let Some(ex) = exchange.take() {
                    ex.finish(if inner.is_end_stream() { End::Complete } else { End::Cancelled });
                }
            }
            ClientBody::Watched { inner, watch } => {
                if let Some(w) = watch.take() {
                    w.finish(inner.is_end_stream());
                }
            }
            ClientBody::Own(_) => {}
        }
    }
}
