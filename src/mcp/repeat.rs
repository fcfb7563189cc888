//! List answers seen again. Every session asks `tools/list`, and the upstream answers each with
//! the same bytes but for the id, so a worker thread keeps the last few list answers it decoded
//! and recognises a repeat by comparing bytes, which costs a fraction of parsing 14 KB of schemas.

use std::cell::RefCell;
use std::ops::Range;

use super::jsonrpc::{self, DecodeError, Message};

/// Answers smaller than this are parsed: the comparison would save little.
const MIN_REMEMBERED: usize = 2 << 10;
/// Answers larger than this are parsed every time, so the memory kept stays small: at most
/// `SLOTS × MAX_REMEMBERED` per proxy worker thread.
const MAX_REMEMBERED: usize = 256 << 10;
const SLOTS: usize = 4;

/// One decoded answer: its bytes, where its id's value sits in them, and the message without it.
struct Remembered {
    bytes: Vec<u8>,
    id: Range<usize>,
    message: Message,
}

impl Remembered {
    /// The same answer with another id: everything before and after the id is byte-identical, and
    /// what sits between is exactly one JSON value. Replacing one complete value by another keeps
    /// the document valid and every other field the same, so only the id needs reading.
    fn recall(&self, body: &[u8]) -> Option<Message> {
        let (head, tail) = (&self.bytes[..self.id.start], &self.bytes[self.id.end..]);
        if body.len() <= head.len() + tail.len() || !body.starts_with(head) || !body.ends_with(tail) {
            return None;
        }
        let id = jsonrpc::decode_id(&body[head.len()..body.len() - tail.len()])?;
        Some(Message { id, ..self.message.clone() })
    }
}

#[derive(Default)]
struct Memo {
    slots: [Option<Remembered>; SLOTS],
    /// The slot the next new answer replaces.
    next: usize,
}

thread_local! {
    // Per thread, so no lock: a proxy worker decodes its exchanges one at a time.
    static MEMO: RefCell<Memo> = RefCell::default();
}

/// Decodes a list answer, from memory when this thread has decoded the same answer before.
pub(super) fn decode_list_answer(body: &[u8], max_batch: usize) -> Result<Vec<Message>, DecodeError> {
    if !(MIN_REMEMBERED..=MAX_REMEMBERED).contains(&body.len()) {
        return jsonrpc::decode(body, max_batch);
    }
    MEMO.with_borrow_mut(|memo| {
        if let Some(message) = memo.slots.iter().flatten().find_map(|r| r.recall(body)) {
            return Ok(vec![message]);
        }
        let (message, id) = match jsonrpc::decode_single(body) {
            Some(Ok(decoded)) => decoded,
            Some(Err(e)) => return Err(e),
            None => return jsonrpc::decode(body, max_batch),
        };
        if let Some(id) = id {
            let kept = Message { id: None, ..message.clone() };
            memo.slots[memo.next] = Some(Remembered { bytes: body.to_vec(), id, message: kept });
            memo.next = (memo.next + 1) % SLOTS;
        }
        Ok(vec![message])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tools_list(id: &str, tools: usize) -> String {
        let tools: Vec<String> = (0..tools)
            .map(|i| {
                format!(
                    r#"{{"name":"tool-{i}","description":"{}","inputSchema":{{"type":"object"}}}}"#,
                    "d".repeat(100)
                )
            })
            .collect();
        format!(r#"{{"result":{{"tools":[{}]}},"jsonrpc":"2.0","id":{id}}}"#, tools.join(","))
    }

    fn same_as_parsed(body: &str) {
        let remembered = decode_list_answer(body.as_bytes(), 8);
        assert_eq!(remembered, jsonrpc::decode(body.as_bytes(), 8), "{body}");
    }

    #[test]
    fn a_repeat_is_recalled_not_parsed() {
        let first = tools_list("1", 40);
        let (message, id) = jsonrpc::decode_single(first.as_bytes()).unwrap().unwrap();
        let memo = Remembered { bytes: first.into_bytes(), id: id.unwrap(), message: Message { id: None, ..message } };
        let again = memo.recall(tools_list("\"x\"", 40).as_bytes()).expect("a repeat is recognised");
        assert_eq!(again.id, Some(jsonrpc::Id::Str("x".into())));
        assert!(matches!(&again.kind, jsonrpc::Kind::Result(r) if r.tools.as_ref().map(Vec::len) == Some(40)));
        assert!(memo.recall(tools_list("1", 41).as_bytes()).is_none(), "another answer");
        assert!(memo.recall(tools_list("1,\"id\":2", 40).as_bytes()).is_none(), "not one value");
    }

    #[test]
    fn a_repeated_answer_is_decoded_with_its_own_id() {
        let first = tools_list("1", 40);
        same_as_parsed(&first);
        for id in ["2", "\"abc\"", "12345678901234567890", "1.5e3", " 7 ", "null", "{\"x\":[1]}", "\"a\\\"b\""] {
            same_as_parsed(&tools_list(id, 40));
        }
    }

    #[test]
    fn what_is_not_one_value_in_the_id_slot_is_parsed_as_it_is() {
        same_as_parsed(&tools_list("1", 40));
        // Bytes that would change the document around the id: the full parse decides.
        for id in ["1,\"id\":2", "1}", "", "1 2", "[1", "\"open"] {
            same_as_parsed(&tools_list(id, 40));
        }
    }

    #[test]
    fn another_answer_is_parsed_and_remembered_beside_the_first() {
        same_as_parsed(&tools_list("1", 40));
        same_as_parsed(&tools_list("2", 41));
        same_as_parsed(&tools_list("3", 40));
        same_as_parsed(&tools_list("4", 41));
        let garbage = format!("{}x", tools_list("5", 40));
        assert_eq!(decode_list_answer(garbage.as_bytes(), 8), Err(DecodeError::Malformed));
    }

    proptest! {
        #[test]
        fn any_id_text_decodes_as_a_full_parse_would(id in "[ -~]{0,12}", tools in 20usize..30) {
            let _ = decode_list_answer(tools_list("1", tools).as_bytes(), 8);
            let body = tools_list(&id, tools);
            prop_assert_eq!(decode_list_answer(body.as_bytes(), 8), jsonrpc::decode(body.as_bytes(), 8));
        }
    }
}
