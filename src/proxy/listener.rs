//! How the proxy's listener stops without resetting a request. A listening socket's kernel
//! completes handshakes on its own, so closing it resets every connection that completed after
//! the last accept, and their clients may already have sent a request (a proxy never retries a
//! POST it sent). So, at the stop, the listener first refuses new handshakes (on Linux, a socket
//! filter drops incoming SYNs: a client retries its SYN about a second later, finds the port
//! closed, and a proxy moves on to another replica with nothing sent); the handshakes already
//! under way complete for a moment; every connection the kernel completed is taken and served;
//! only then is the listener closed.

use std::time::Duration;

use tokio::net::TcpListener;

/// How long handshakes already under way at the stop may complete (a SYN-ACK is out; its ACK
/// takes one round trip).
pub(crate) const HANDSHAKES_UNDER_WAY: Duration = Duration::from_millis(200);

/// The filter: a TCP segment whose flags are SYN without ACK is dropped, anything else kept.
/// Classic BPF on a TCP socket sees the segment from its TCP header (the flags are byte 13).
#[cfg(target_os = "linux")]
fn syn_filter() -> [socket2::SockFilter; 5] {
    use socket2::SockFilter;
    const LD_B_ABS: u16 = 0x30;
    const ALU_AND_K: u16 = 0x54;
    const JMP_JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const SYN: u32 = 0x02;
    const SYN_ACK: u32 = 0x12;
    [
        SockFilter::new(LD_B_ABS, 0, 0, 13),
        SockFilter::new(ALU_AND_K, 0, 0, SYN_ACK),
        SockFilter::new(JMP_JEQ_K, 0, 1, SYN),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
    ]
}

/// New handshakes are no longer completed; established connections are untouched.
pub(crate) fn refuse_new_handshakes(listener: &TcpListener) {
    #[cfg(target_os = "linux")]
    if let Err(e) = socket2::SockRef::from(listener).attach_filter(&syn_filter()) {
        tracing::warn!(error = %e, "cannot make the listener refuse new handshakes; closing it may reset a few");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = listener;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_refusing_listener_completes_no_new_handshake_and_keeps_the_completed_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut before = tokio::net::TcpStream::connect(addr).await.unwrap();
        refuse_new_handshakes(&listener);
        let after = tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(addr)).await;
        assert!(after.is_err(), "a connect after the filter gets no SYN-ACK: {after:?}");
        // The connection completed before it is still taken and carries data both ways.
        let (mut served, _) = listener.accept().await.unwrap();
        before.write_all(b"request").await.unwrap();
        let mut buf = [0u8; 7];
        served.read_exact(&mut buf).await.unwrap();
        served.write_all(b"answer!").await.unwrap();
        before.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"answer!");
        drop(listener);
        // Once the listener is closed, a connect is refused at once: a proxy moves on.
        let refused = tokio::net::TcpStream::connect(addr).await;
        assert!(refused.is_err(), "{refused:?}");
    }
}
