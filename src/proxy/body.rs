//! Body types. `UpstreamBody` is what goes upstream (a decoded MCP request, or a stream);
//! `ClientBody::Tapped` returns every upstream frame to the client unchanged, as it arrives,
//! and shows a view of it to the exchange's decoder on the way.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::exchange::{End, Exchange};

/// A request body on its way upstream.
pub enum UpstreamBody {
    /// Read whole (an MCP request under the decode cap) so it could be decoded first.
    Full {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// Read up to the cap, then found larger: the prefix, then the rest as it comes.
    Prefixed {
        prefix: Option<Bytes>,
        rest: Incoming,
    },
    Stream(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Full { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            UpstreamBody::Prefixed { prefix, rest } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                Pin::new(rest).poll_frame(cx)
            }
            UpstreamBody::Stream(inner) => Pin::new(inner).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Full { data, trailers } => data.is_none() && trailers.is_none(),
            UpstreamBody::Prefixed { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
            UpstreamBody::Stream(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Full { data, .. } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            UpstreamBody::Prefixed { prefix, rest } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(u) = inner.upper() {
                    hint.set_upper(u + extra);
                }
                hint
            }
            UpstreamBody::Stream(inner) => inner.size_hint(),
        }
    }
}

/// A request body as the tap read it.
pub enum ReadBody {
    Whole(Bytes, Option<HeaderMap>),
    TooLarge(Bytes, Incoming),
}

/// Reads a request body up to `cap` bytes. A larger body is returned as what was read plus the
/// rest, still streaming. Errors when the client goes away mid-body.
pub async fn read_capped(mut body: Incoming, cap: usize) -> Result<ReadBody, hyper::Error> {
    let mut buf = BytesMut::new();
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                // The common case, one frame for the whole body, keeps its buffer without a copy.
                let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
                if held + data.len() > cap {
                    let mut all = BytesMut::with_capacity(held + data.len());
                    if let Some(f) = first.take() {
                        all.extend_from_slice(&f);
                    }
                    all.extend_from_slice(&buf);
                    all.extend_from_slice(&data);
                    return Ok(ReadBody::TooLarge(all.freeze(), body));
                }
                if first.is_none() && buf.is_empty() {
                    first = Some(data);
                } else {
                    if let Some(f) = first.take() {
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
pub enum ClientBody {
    Tapped {
        inner: Incoming,
        exchange: Option<Box<Exchange>>,
    },
    /// A response the tap wrote itself (upstream failures).
    Own(Option<Bytes>),
}

impl ClientBody {
    pub fn own(bytes: Bytes) -> Self {
        ClientBody::Own(Some(bytes))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ClientBody::Own(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
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
            ClientBody::Tapped { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Own(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ClientBody::Tapped { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away (or hyper skipped a body it knew was empty).
        if let ClientBody::Tapped { inner, exchange } = self {
            if let Some(ex) = exchange.take() {
                ex.finish(if inner.is_end_stream() { End::Complete } else { End::Cancelled });
            }
        }
    }
}
