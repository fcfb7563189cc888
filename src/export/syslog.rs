//! Audit events to a syslog receiver (rsyslog, syslog-ng, a SIEM's collector): one RFC 5424
//! message per event, over UDP, TCP with octet counting (RFC 6587) or TLS (RFC 5425). The writer
//! thread formats each event and queues it without waiting; a task of its own sends. A receiver that
//! is down or slow fills the bounded queue, and what does not fit is dropped and counted; the
//! task reconnects with backoff and sends what waited.
//!
//! A message: `<PRI>1 TIMESTAMP HOSTNAME mcp-tap PROCID EVENT [mcp-tap@32473 field="value" …]
//! JSON-LINE`. Facility `authpriv` (10); severity warning for findings, error for the tap's own
//! failures, info for the rest. 32473 is the example enterprise number of RFC 5612.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::audit::event::Severity;
use crate::audit::sink::Forward;
use crate::config::{SyslogTarget, SyslogTransport};
use crate::metrics::{ForwardLoss, ForwardOutput, Metrics};

/// The syslog output of the audit trail: formats each event (on the audit writer thread) and
/// queues the message for the sending task.
pub(crate) struct Syslog {
    tx: mpsc::Sender<String>,
    metrics: Arc<Metrics>,
    host: String,
    pid: u32,
}

impl Forward for Syslog {
    fn forward(&mut self, line: &str, fields: &Map<String, Value>) {
        if self.tx.try_send(format(fields, line, &self.host, self.pid)).is_err() {
            self.metrics.record_forward_dropped(ForwardOutput::Syslog, ForwardLoss::QueueFull, 1);
        }
    }
}

const FACILITY_AUTHPRIV: u8 = 10;
/// Structured-data ID: the tap's fields under the RFC 5612 example enterprise number.
const SD_ID: &str = "mcp-tap@32473";
/// A write that takes longer means the receiver stalled: the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One RFC 5424 message for a JSON audit line and its fields (`host` and `pid` fill HOSTNAME
/// and PROCID).
pub(crate) fn format(fields: &Map<String, Value>, line: &str, host: &str, pid: u32) -> String {
    let text = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("-");
    let event = text("event");
    let severity = match Severity::of(event, fields.contains_key("finding")) {
        Severity::Warning => 4,
        Severity::Error => 3,
        Severity::Info => 6,
    };
    let pri = FACILITY_AUTHPRIV * 8 + severity;
    let msgid: String = event.chars().filter(char::is_ascii_graphic).take(32).collect();
    let msgid = if msgid.is_empty() { "-".to_string() } else { msgid };
    format!("<{pri}>1 {} {host} mcp-tap {pid} {msgid} {} {line}", text("ts"), structured_data(fields))
}

/// `[mcp-tap@32473 name="value" …]`: every field but `ts` and `event` (in the header already);
/// nested values as their JSON text; `"`, `\` and `]` escaped as RFC 5424 asks.
fn structured_data(fields: &Map<String, Value>) -> String {
    let mut sd = format!("[{SD_ID}");
    for (k, v) in fields {
        if k == "ts" || k == "event" {
            continue;
        }
        let name: String = k.chars().filter(|c| c.is_ascii_graphic() && !"=]\"".contains(*c)).take(32).collect();
        let value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        sd.push(' ');
        sd.push_str(&name);
        sd.push_str("=\"");
        for c in value.chars() {
            if matches!(c, '"' | '\\' | ']') {
                sd.push('\\');
            }
            sd.push(c);
        }
        sd.push('"');
    }
    sd.push(']');
    sd
}

/// Starts the sending task; it ends when the output is dropped and its queue is sent (or given up).
pub(crate) fn start(
    target: SyslogTarget,
    ca_file: Option<&std::path::Path>,
    queue: usize,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(Syslog, Sending)> {
    let tls = match target.transport {
        SyslogTransport::Tls => {
            let config = crate::http_client::client_tls(ca_file, "audit.syslog_ca_file")?;
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| anyhow::anyhow!("audit.syslog: `{}` is no TLS server name: {e}", target.host))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        }
        _ => None,
    };
    let (tx, rx) = mpsc::channel(queue.max(1));
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sender = Sender { target, tls, metrics: metrics.clone(), waiting: waiting.clone() };
    let task = tokio::spawn(sender.run(rx));
    let sending = Sending { task, waiting, metrics: metrics.clone() };
    Ok((Syslog { tx, metrics, host: hostname(), pid: std::process::id() }, sending))
}

/// The sending task, for the stop.
pub(crate) struct Sending {
    task: tokio::task::JoinHandle<()>,
    /// Messages taken from the queue or still in it, not yet sent.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Sending {
    /// Waits up to `deadline` for what is queued to reach the receiver (the output was dropped);
    /// what could not be sent by then is counted as lost and logged with its number.
    pub(crate) async fn finish(self, deadline: Duration) {
        if tokio::time::timeout(deadline, self.task).await.is_err() {
            let n = self.waiting.load(std::sync::atomic::Ordering::Relaxed);
            self.metrics.record_forward_dropped(ForwardOutput::Syslog, ForwardLoss::ExportFailed, n as u64);
            tracing::error!(
                lost = n,
                ?deadline,
                "audit events not delivered to syslog at the stop: the receiver did not take them in time"
            );
        }
    }
}

/// The HOSTNAME field: the machine's name (the pod's, in Kubernetes), or `-`.
fn hostname() -> String {
    let name = std::env::var("HOSTNAME").ok().or_else(|| std::fs::read_to_string("/etc/hostname").ok());
    let name: String = name.unwrap_or_default().trim().chars().filter(char::is_ascii_graphic).take(255).collect();
    if name.is_empty() {
        "-".into()
    } else {
        name
    }
}

type Tls = (tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>);

trait Stream: tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

enum Connection {
    Udp(tokio::net::UdpSocket),
    Stream(Box<dyn Stream>),
}

struct Sender {
    target: SyslogTarget,
    tls: Option<Tls>,
    metrics: Arc<Metrics>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<String>) {
        let mut connection: Option<Connection> = None;
        let mut backoff = Duration::from_millis(250);
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 256).await > 0 {
            let messages: Vec<String> = std::mem::take(&mut batch);
            self.waiting.store(messages.len() + rx.len(), std::sync::atomic::Ordering::Relaxed);
            loop {
                if connection.is_none() {
                    match self.connect().await {
                        Ok(c) => {
                            connection = Some(c);
                            backoff = Duration::from_millis(250);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, receiver = %self.target.host, "cannot reach the syslog receiver; audit events wait in its queue");
                            if rx.is_closed() {
                                // Stopping: nothing more will come, and the receiver is down.
                                let n = messages.len() + rx.len();
                                self.lost(n);
                                tracing::error!(
                                    lost = n,
                                    "audit events not delivered to syslog at the stop: the receiver is down"
                                );
                                return;
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue;
                        }
                    }
                }
                let c = connection.as_mut().expect("connected above");
                if let Err(e) = send(c, &messages).await {
                    tracing::warn!(error = %e, "sending to the syslog receiver failed; reconnecting");
                    self.lost(messages.len());
                    connection = None;
                }
                self.waiting.store(rx.len(), std::sync::atomic::Ordering::Relaxed);
                break;
            }
        }
        if let Some(Connection::Stream(mut s)) = connection {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, s.shutdown()).await;
        }
    }

    fn lost(&self, n: usize) {
        self.metrics.record_forward_dropped(ForwardOutput::Syslog, ForwardLoss::ExportFailed, n as u64);
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        let addr = (self.target.host.as_str(), self.target.port);
        let connect = async {
            match self.target.transport {
                SyslogTransport::Udp => {
                    let peer = tokio::net::lookup_host(addr).await?.next().ok_or(std::io::ErrorKind::NotFound)?;
                    let local = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                    let socket = tokio::net::UdpSocket::bind(local).await?;
                    socket.connect(peer).await?;
                    Ok(Connection::Udp(socket))
                }
                SyslogTransport::Tcp => {
                    Ok(Connection::Stream(Box::new(tokio::net::TcpStream::connect(addr).await?) as Box<dyn Stream>))
                }
                SyslogTransport::Tls => {
                    let tcp = tokio::net::TcpStream::connect(addr).await?;
                    let (connector, name) = self.tls.as_ref().expect("tls:// has a connector");
                    let tls = connector.connect(name.clone(), tcp).await?;
                    Ok(Connection::Stream(Box::new(tls) as Box<dyn Stream>))
                }
            }
        };
        tokio::time::timeout(WRITE_TIMEOUT, connect).await.map_err(|_| std::io::ErrorKind::TimedOut)?
    }
}

/// One datagram per message over UDP; octet-counted frames, written together, over a stream.
async fn send(c: &mut Connection, messages: &[String]) -> std::io::Result<()> {
    let write = async {
        match c {
            Connection::Udp(socket) => {
                for m in messages {
                    socket.send(m.as_bytes()).await?;
                }
                Ok(())
            }
            Connection::Stream(s) => {
                let mut frames = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
                for m in messages {
                    frames.extend_from_slice(format!("{} ", m.len()).as_bytes());
                    frames.extend_from_slice(m.as_bytes());
                }
                s.write_all(&frames).await?;
                s.flush().await
            }
        }
    };
    tokio::time::timeout(WRITE_TIMEOUT, write).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_becomes_an_rfc5424_message_with_escaped_structured_data() {
        let line = r#"{"ts":"2026-12-04T10:00:00.123Z","schema":"mcp-tap.audit.v1","event":"auth_failure","status":401,"reason":"unknown_token","tool":"a\"b]c\\d","clients":["x","y"]}"#;
        let fields = |l: &str| serde_json::from_str::<Map<String, Value>>(l).unwrap();
        let m = format(&fields(line), line, "tap-0", 42);
        assert!(m.starts_with("<86>1 2026-12-04T10:00:00.123Z tap-0 mcp-tap 42 auth_failure [mcp-tap@32473 "), "{m}");
        assert!(m.contains(r#" status="401""#) && m.contains(r#" reason="unknown_token""#), "{m}");
        assert!(m.contains(r#" tool="a\"b\]c\\d""#), "{m}");
        assert!(m.contains(r#" clients="[\"x\",\"y\"\]""#), "{m}");
        assert!(m.ends_with(&format!("] {line}")), "the JSON line is the message: {m}");
        let finding = r#"{"ts":"2026-12-04T10:00:00.123Z","event":"burst_start","finding":"burst"}"#;
        assert!(format(&fields(finding), finding, "h", 1).starts_with("<84>1 "), "a finding is a warning");
    }

    /// A receiver that is down at the stop: what waited for it is counted, not silently gone.
    #[tokio::test]
    async fn what_a_stop_cannot_deliver_is_counted_as_lost() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let metrics = Arc::new(Metrics::new(vec![1.0]));
        let target = SyslogTarget::parse(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let (mut output, sending) = start(target, None, 100, metrics.clone()).unwrap();
        let line = r#"{"ts":"2026-12-04T10:00:00.123Z","event":"auth_failure"}"#;
        let fields: Map<String, Value> = serde_json::from_str(line).unwrap();
        for _ in 0..5 {
            output.forward(line, &fields);
        }
        drop(output);
        sending.finish(Duration::from_secs(10)).await;
        let text = metrics.render();
        assert!(
            text.contains(r#"mcp_tap_audit_forward_dropped_total{cause="export_failed",output="syslog"} 5"#),
            "{}",
            text.lines().filter(|l| l.contains("forward_dropped")).collect::<Vec<_>>().join("\n")
        );
    }
}
