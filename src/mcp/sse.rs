//! Incremental `text/event-stream` decoder, per the WHATWG rules: any chunking decodes the same,
//! CR, LF and CRLF all end lines, and one event's copy is capped so a garbage stream costs bounded memory.

/// What the decoder hands out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SseItem<'a> {
    /// A complete event whose type is `message` (the default) with its joined `data` lines.
    Message(&'a [u8]),
    /// A complete event of another type; MCP only uses `message`, so these are not decoded.
    OtherEvent,
    /// An event larger than the cap; its data was dropped.
    TooLarge,
}

/// Room for a field name and its colon beyond the cap in a line kept whole (`data: ` is 6 bytes).
const LINE_SLACK: usize = 16;

#[derive(Debug)]
pub(crate) struct SseDecoder {
    cap: usize,
    /// The unfinished line at the end of the last chunk.
    line: Vec<u8>,
    /// `data` of the event being assembled, each line followed by LF.
    data: Vec<u8>,
    has_data: bool,
    other_type: bool,
    overflow: bool,
    /// The unfinished line was longer than any line of an event within the cap, and was cut.
    line_cut: bool,
    /// The last chunk ended in CR: a LF at the start of the next one belongs to it.
    after_cr: bool,
    at_start: bool,
}

impl SseDecoder {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            other_type: false,
            overflow: false,
            line_cut: false,
            after_cr: false,
            at_start: true,
        }
    }

    /// Feeds a chunk; `emit` is called once per complete event.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(SseItem<'_>)) {
        if chunk.is_empty() {
            return;
        }
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        if self.at_start && !chunk.is_empty() {
            // A UTF-8 BOM may open the stream; it may itself be split across chunks.
            let bom = b"\xEF\xBB\xBF";
            let have = self.line.len();
            let n = (bom.len() - have).min(chunk.len());
            if self.line.is_empty() || bom.starts_with(&self.line) {
                if bom[have..have + n] == chunk[..n] {
                    if have + n == bom.len() {
                        self.line.clear();
                        self.at_start = false;
                        chunk = &chunk[n..];
                    } else {
                        self.line.extend_from_slice(&chunk[..n]);
                        return;
                    }
                } else {
                    self.at_start = false;
                }
            } else {
                self.at_start = false;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            let (head, rest) = chunk.split_at(pos);
            let cr = rest[0] == b'\r';
            chunk = &rest[1..];
            if self.line.is_empty() {
                self.process_line(head, emit);
            } else {
                let mut line = std::mem::take(&mut self.line);
                self.push_line_bytes(&mut line, head);
                self.process_line(&line, emit);
                line.clear();
                self.line = line;
            }
            if cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        let mut line = std::mem::take(&mut self.line);
        self.push_line_bytes(&mut line, chunk);
        self.line = line;
    }

    /// Whether the stream ended in the middle of an event (an event is only complete at a blank line).
    pub(crate) fn has_partial_event(&self) -> bool {
        self.has_data || !self.line.is_empty()
    }

    /// Appends to the unfinished line. A line is kept whole up to the cap plus room for its field
    /// name, so every `data` line whose value fits the cap is kept whole however it is chunked;
    /// a longer line keeps only its start (its field name), and is cut.
    fn push_line_bytes(&mut self, line: &mut Vec<u8>, bytes: &[u8]) {
        if line.len() + bytes.len() > self.cap + LINE_SLACK {
            self.line_cut = true;
            // Keep the field name so a long `data:` line is still known to be data.
            let room = 16usize.saturating_sub(line.len()).min(bytes.len());
            line.extend_from_slice(&bytes[..room]);
        } else {
            line.extend_from_slice(bytes);
        }
    }

    fn process_line(&mut self, line: &[u8], emit: &mut impl FnMut(SseItem<'_>)) {
        let cut = std::mem::take(&mut self.line_cut);
        if line.is_empty() {
            self.dispatch(emit);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.has_data = true;
                if cut || self.overflow || self.data.len() + value.len() + 1 > self.cap {
                    self.overflow = true;
                    self.data.clear();
                } else {
                    // Sized once: growing a 14 KB `tools/list` line by doubling would copy it again.
                    self.data.reserve(value.len() + 1);
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                }
            }
            b"event" => self.other_type = value != b"message",
            _ => {}
        }
    }

    fn dispatch(&mut self, emit: &mut impl FnMut(SseItem<'_>)) {
        if self.has_data {
            if self.overflow {
                emit(SseItem::TooLarge);
            } else if self.other_type {
                emit(SseItem::OtherEvent);
            } else {
                let end = self.data.len().saturating_sub(1);
                emit(SseItem::Message(&self.data[..end]));
            }
        }
        self.data.clear();
        // A large buffer from one big event is not kept for the life of a long stream.
        if self.data.capacity() > 64 * 1024 {
            self.data = Vec::new();
        }
        self.has_data = false;
        self.other_type = false;
        self.overflow = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, Clone)]
    enum Out {
        Msg(String),
        Other,
        Big,
    }

    fn decode_chunks(chunks: &[&[u8]], cap: usize) -> Vec<Out> {
        let mut d = SseDecoder::new(cap);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut |item| {
                out.push(match item {
                    SseItem::Message(m) => Out::Msg(String::from_utf8_lossy(m).into_owned()),
                    SseItem::OtherEvent => Out::Other,
                    SseItem::TooLarge => Out::Big,
                });
            });
        }
        out
    }

    const BACKSTAGE: &[u8] = b"event: message\ndata: {\"result\":{},\"jsonrpc\":\"2.0\",\"id\":1}\n\n";

    #[test]
    fn backstage_answer_decodes() {
        assert_eq!(decode_chunks(&[BACKSTAGE], 1024), vec![Out::Msg(r#"{"result":{},"jsonrpc":"2.0","id":1}"#.into())]);
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        let stream: &[u8] = b"\xEF\xBB\xBF: keepalive\r\nid: 7\r\ndata: a\r\ndata:b\r\n\r\nevent: ping\ndata: x\n\n: c\rdata: {\"id\":2}\r\r";
        let whole = decode_chunks(&[stream], 1024);
        assert_eq!(whole, vec![Out::Msg("a\nb".into()), Out::Other, Out::Msg("{\"id\":2}".into())]);
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let parts = [&stream[..i], &stream[i..j], &stream[j..]];
                assert_eq!(decode_chunks(&parts, 1024), whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn priming_event_with_empty_data_is_a_message() {
        // 2025-11-25 servers send `id` + empty `data` first so clients can resume.
        assert_eq!(decode_chunks(&[b"id: 1\ndata:\n\n"], 64), vec![Out::Msg(String::new())]);
    }

    #[test]
    fn oversized_event_is_reported_and_the_next_one_decodes() {
        let mut s = b"data: ".to_vec();
        s.extend(std::iter::repeat_n(b'x', 100));
        s.extend_from_slice(b"\n\ndata: ok\n\n");
        assert_eq!(decode_chunks(&[&s], 32), vec![Out::Big, Out::Msg("ok".into())]);
        for i in 0..s.len() {
            assert_eq!(decode_chunks(&[&s[..i], &s[i..]], 32), vec![Out::Big, Out::Msg("ok".into())]);
        }
    }

    /// Found by the `sse_stream` fuzz target: a long line of a field MCP ignores, chunked, made
    /// its event too large, and whole it did not.
    #[test]
    fn a_long_line_of_another_field_decodes_the_same_in_any_chunking() {
        let long = format!("event: message\ndata: {{}}\nx-field: {}\ndata: {{}}\n\n", "z".repeat(100));
        let whole = decode_chunks(&[long.as_bytes()], 32);
        let bytes: Vec<&[u8]> = long.as_bytes().chunks(1).collect();
        assert_eq!(whole, vec![Out::Msg("{}\n{}".into())]);
        assert_eq!(decode_chunks(&bytes, 32), whole);
        // A data line just within the cap is kept whole however it arrives.
        let fits = format!("data: {}\n\n", "y".repeat(31));
        let bytes: Vec<&[u8]> = fits.as_bytes().chunks(3).collect();
        assert_eq!(decode_chunks(&bytes, 32), vec![Out::Msg("y".repeat(31))]);
        assert_eq!(decode_chunks(&[fits.as_bytes()], 32), vec![Out::Msg("y".repeat(31))]);
    }

    #[test]
    fn unterminated_event_is_partial() {
        let mut d = SseDecoder::new(64);
        d.feed(b"data: x\n", &mut |_| panic!("not complete"));
        assert!(d.has_partial_event());
    }

    proptest! {
        #[test]
        fn any_chunking_decodes_the_same(events in proptest::collection::vec("[a-z{}\":, ]{0,40}", 0..8),
                                         eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
                                         cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10)) {
            let mut stream = Vec::new();
            for e in &events {
                stream.extend_from_slice(format!(": keepalive{eol}event: message{eol}data: {e}{eol}{eol}").as_bytes());
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&stream[last..p]); last = p; }
            chunks.push(&stream[last..]);
            let expected: Vec<Out> = events.iter().map(|e| Out::Msg(e.clone())).collect();
            prop_assert_eq!(decode_chunks(&chunks, 1 << 16), expected);
        }

        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let _ = decode_chunks(&refs, 48);
        }
    }
}
