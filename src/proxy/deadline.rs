//! Deadlines that move with every exchange without touching the timer wheel. On a keep-alive
//! connection each exchange's deadline is later than the last, so one timer is armed and, when it
//! fires before the deadline in force, re-armed to it: a timer-wheel update per timeout period,
//! not a registration and a removal per exchange. Those were 3.5k of a 55k-instruction exchange.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

#[derive(Default)]
pub(super) struct LazyDeadline {
    /// Armed at or before `deadline`; made at the first deadline.
    timer: Option<Pin<Box<Sleep>>>,
    /// The deadline in force; `None` while nothing is timed.
    deadline: Option<Instant>,
    /// The task the armed timer wakes: polled again from it, the timer need not be.
    wakes: Option<Waker>,
}

impl LazyDeadline {
    /// Times from now on to `deadline`. Costs a store unless `deadline` is earlier than the timer.
    pub(super) fn set(&mut self, deadline: Instant) {
        match &mut self.timer {
            Some(timer) if timer.deadline() <= deadline => {}
            Some(timer) => {
                timer.as_mut().reset(deadline);
                self.wakes = None;
            }
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.deadline = Some(deadline);
    }

    /// Ready once the deadline in force has passed; never while none is.
    pub(super) fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (Some(deadline), Some(timer)) = (self.deadline, self.timer.as_mut()) else {
            return Poll::Pending;
        };
        if !timer.is_elapsed() && self.wakes.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        self.wakes = Some(cx.waker().clone());
        while timer.as_mut().poll(cx).is_ready() {
            if timer.deadline() >= deadline {
                return Poll::Ready(());
            }
            timer.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

/// `fut`'s output, or `None` once `at` passes first. `slot` is reused by one caller at a time.
pub(super) async fn within<F: Future>(slot: &Mutex<LazyDeadline>, at: Instant, fut: F) -> Option<F::Output> {
    let lock = || slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    lock().set(at);
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        lock().poll_passed(cx).map(|()| None)
    })
    .await
}

/// What a client connection's requests tell its IO: how many are open, and since when none is.
pub(super) struct Activity {
    base: Instant,
    open: AtomicUsize,
    /// Nanoseconds from `base` to the end of the last request (or to the connection's start).
    idle_since: AtomicU64,
    /// An HTTP/2 connection: its streams come and go without a header deadline after the first.
    untimed: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            untimed: AtomicBool::new(false),
        })
    }

    /// A request arrived; it is open until the returned guard (held by its response body) drops.
    pub(super) fn begin(self: &Arc<Self>, version: http::Version) -> Open {
        if version >= http::Version::HTTP_2 {
            self.untimed.store(true, Ordering::Relaxed);
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        Open(self.clone())
    }

    /// When the connection's next request head is due, if it waits for one.
    fn head_due(&self, timeout: Duration) -> Option<Instant> {
        if self.open.load(Ordering::Acquire) > 0 || self.untimed.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.base + Duration::from_nanos(self.idle_since.load(Ordering::Acquire)) + timeout)
    }
}

/// A request being served; dropped with its response body.
pub(super) struct Open(Arc<Activity>);

impl Drop for Open {
    fn drop(&mut self) {
        let since = u64::try_from(self.0.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.idle_since.store(since, Ordering::Release);
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request open until it is done.
pub(super) struct OpenBody<B> {
    pub body: B,
    /// Held, not read: the request ends when the body is dropped.
    pub _open: Open,
}

impl<B: Body + Unpin> Body for OpenBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client connection's IO with `limits.header_read_timeout` for every request head: while no
/// request is open, reads fail with `TimedOut` once the timeout passes since the last one ended
/// (or since the connection opened). That covers a silent client, a slow one (slowloris) and
/// the protocol sniffing before HTTP/1.1 or HTTP/2 starts; idle keep-alive connections close.
pub(super) struct HeaderDeadline<T> {
    io: T,
    timeout: Duration,
    deadline: LazyDeadline,
    pub activity: Arc<Activity>,
    /// Set when the deadline cut the connection.
    pub expired: Arc<AtomicBool>,
}

impl<T> HeaderDeadline<T> {
    pub(super) fn new(io: T, timeout: Duration) -> Self {
        let (activity, expired) = (Activity::new(), Arc::default());
        Self { io, timeout, deadline: LazyDeadline::default(), activity, expired }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeaderDeadline<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(due) = this.activity.head_due(this.timeout) {
            this.deadline.set(due);
            if this.deadline.poll_passed(cx).is_ready() {
                this.expired.store(true, Ordering::Release);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request within the header deadline",
                )));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeaderDeadline<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_deadline_holds_though_the_timer_was_armed_for_an_earlier_one() {
        let slot = Mutex::new(LazyDeadline::default());
        let start = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(within(&slot, start + 10 * s, async { 7 }).await, Some(7), "done before the deadline");
        // Armed for start + 10 s; the next exchange starts at 5 s with its deadline at 15 s.
        tokio::time::advance(5 * s).await;
        let late = within(&slot, Instant::now() + 10 * s, std::future::pending::<()>()).await;
        assert_eq!((late, Instant::now() - start), (None, 15 * s), "not cut at 10 s, cut at 15 s");
        // A deadline earlier than the armed timer moves the timer back.
        let fresh = Mutex::new(LazyDeadline::default());
        assert_eq!(within(&fresh, Instant::now() + 100 * s, async {}).await, Some(()));
        let near = within(&fresh, Instant::now() + 2 * s, std::future::pending::<()>()).await;
        assert_eq!((near, Instant::now() - start), (None, 17 * s));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_passes_before_a_deadline_is_set() {
        let mut d = LazyDeadline::default();
        let polled = std::future::poll_fn(|cx| Poll::Ready(d.poll_passed(cx))).await;
        assert!(polled.is_pending(), "never set");
        d.set(Instant::now() - Duration::from_millis(1));
        let polled = std::future::poll_fn(|cx| Poll::Ready(d.poll_passed(cx))).await;
        assert!(polled.is_ready(), "a deadline in the past has passed");
    }
}
