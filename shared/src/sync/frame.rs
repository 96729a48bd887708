//! Wire format of the sync protocol: messages and the frames that carry them.
//!
//! A frame is `version (u8) ‖ payload length (u32 BE) ‖ postcard(Msg)`. The length is checked against
//! [`MAX_FRAME`] as soon as the header is in, before any payload is buffered, and an unknown version or a
//! payload that does not decode ends the session with a [`FrameError`] — never a panic.

use serde::{Deserialize, Serialize};

use super::summary::{Digest, Fp, Prefix};

/// 2: `Hello` and `HelloReply` carry the sender's clock. 3: `HelloReply` carries the county's record
/// of a township's villages ([`NodeCert`]).
pub const PROTOCOL_VERSION: u8 = 4;
/// Largest payload accepted. Doc batches are cut well below it (see `session::BATCH_BYTES`).
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
pub const HEADER_LEN: usize = 5;

/// Root fingerprint of one scope as the client holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRoot {
    pub scope: String,
    pub fp: Fp,
}

/// One trie node the client wants compared: its own fingerprint there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeQuery {
    pub scope: String,
    pub prefix: Prefix,
    pub fp: Fp,
}

/// The server's view of a node that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeView {
    /// Fingerprints of the 16 children.
    Children(Vec<Fp>),
    /// Every (case number, heads digest) below the node (small nodes and the deepest level).
    Items(Vec<(String, Digest)>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAnswer {
    pub scope: String,
    pub prefix: Prefix,
    pub view: NodeView,
}

/// One document in a batch: an automerge sync message (`None` when that side has nothing to say), or
/// the whole saved document when the other side has none of it (cheaper than a sync conversation), or
/// a request for the whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocMsg {
    pub case_no: String,
    pub msg: Option<Vec<u8>>,
    pub full: Option<Vec<u8>>,
    pub want_full: bool,
}

impl DocMsg {
    pub fn sync(case_no: String, msg: Option<Vec<u8>>) -> DocMsg {
        DocMsg {
            case_no,
            msg,
            full: None,
            want_full: false,
        }
    }
}

/// What a relaying node (a township) knows of one of its downstream links, passed up so the county
/// sees every link of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkReport {
    pub code: String,
    /// RFC 3339 time of the last session on that link.
    pub last_seen: String,
    pub sessions: u32,
    pub failed_sessions: u32,
    pub refusals: u32,
    pub pending: u32,
}

/// The county's record of one node below the peer (a township's village): the serial of the
/// certificate it issued and whether it has revoked the node. A township refuses a village the
/// county revoked, or one that presents another certificate than the county issued last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCert {
    pub code: String,
    pub serial: String,
    pub revoked: bool,
    /// Automerge actors (hex) the county bound to the node besides the one its certificate implies:
    /// those a standalone node declared at enrolment, and those of its earlier certificates.
    pub actors: Vec<String>,
}

/// Why a server would not take a scope or a case, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// A scope code or a case number.
    pub subject: String,
    pub reason: String,
}

/// Every message of the protocol. The client (the downstream node) sends requests; the server answers
/// each with exactly one response, so round trips are easy to count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Request: the client's root per scope it holds, the catalogue version it has, and how many local
    /// writes it has not yet seen go up (shown to county operators).
    Hello {
        scopes: Vec<ScopeRoot>,
        catalog_version: u32,
        calendar_version: u32,
        pending: u32,
        /// A township's view of its villages' links.
        links: Vec<LinkReport>,
        /// The client's clock (ms since the Unix epoch; 0: not told), for the county to see its skew.
        clock_ms: i64,
    },
    /// Response: the nodes that differ, scopes refused, and the catalogue JSON when the client's is
    /// older (an answer with nothing in it means "in sync").
    HelloReply {
        differ: Vec<NodeAnswer>,
        refused: Vec<Refusal>,
        catalog: Option<String>,
        /// (version, tables JSON) when the client's working-day calendar is older.
        calendar: Option<(u32, String)>,
        /// The server's clock (ms since the Unix epoch; 0: not told).
        clock_ms: i64,
        /// From the county to a township: every village it enrolled under it (the township's
        /// whole list, replacing what it kept); `None` from any other server.
        downstream: Option<Vec<NodeCert>>,
    },
    /// Request: compare these nodes.
    Compare {
        nodes: Vec<NodeQuery>,
    },
    CompareReply {
        differ: Vec<NodeAnswer>,
    },
    /// Request: one round of automerge sync for a batch of documents.
    Sync {
        docs: Vec<DocMsg>,
    },
    /// Response: the server's messages; a document appears in `refused` instead when it may not be written.
    SyncReply {
        docs: Vec<DocMsg>,
        refused: Vec<Refusal>,
    },
    /// Response to anything the server cannot process; the session ends.
    Error {
        reason: String,
    },
}

impl Msg {
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Hello { .. } => "Hello",
            Msg::HelloReply { .. } => "HelloReply",
            Msg::Compare { .. } => "Compare",
            Msg::CompareReply { .. } => "CompareReply",
            Msg::Sync { .. } => "Sync",
            Msg::SyncReply { .. } => "SyncReply",
            Msg::Error { .. } => "Error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("peer speaks sync protocol version {0}, this node speaks {PROTOCOL_VERSION}")]
    UnknownVersion(u8),
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encodes one message as a frame.
pub fn encode(msg: &Msg) -> Result<Vec<u8>, FrameError> {
    let payload = postcard::to_stdvec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if payload.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Incremental decoder: push bytes as they arrive, take whole messages out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed (a partial frame).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_msg(&mut self) -> Result<Option<Msg>, FrameError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        if self.buf[0] != PROTOCOL_VERSION {
            return Err(FrameError::UnknownVersion(self.buf[0]));
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let result = postcard::from_bytes::<Msg>(&self.buf[HEADER_LEN..HEADER_LEN + len])
            .map_err(|e| FrameError::Malformed(e.to_string()));
        self.buf.drain(..HEADER_LEN + len);
        result.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Msg {
        Msg::Hello {
            scopes: vec![ScopeRoot {
                scope: "420222100201".into(),
                fp: Fp {
                    xor: [9; 16],
                    count: 3,
                },
            }],
            catalog_version: 1,
            calendar_version: 0,
            pending: 0,
            links: Vec::new(),
            clock_ms: 1_795_000_000_000,
        }
    }

    #[test]
    fn frames_roundtrip_across_arbitrary_splits() {
        let msgs = vec![
            sample(),
            Msg::Sync {
                docs: vec![DocMsg::sync("x".into(), Some(vec![1, 2, 3]))],
            },
            Msg::Error {
                reason: "测试".into(),
            },
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| encode(m).unwrap()).collect();
        for split in [1, 2, 5, 7, 64] {
            let mut d = FrameDecoder::default();
            let mut out = Vec::new();
            for chunk in bytes.chunks(split) {
                d.push(chunk);
                while let Some(m) = d.next_msg().unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out, msgs);
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn unknown_version_and_oversized_frames_are_refused_before_buffering() {
        let mut d = FrameDecoder::default();
        let next = PROTOCOL_VERSION + 1;
        d.push(&[next, 0, 0, 0, 1, 0]);
        assert_eq!(d.next_msg(), Err(FrameError::UnknownVersion(next)));
        let mut d = FrameDecoder::default();
        d.push(&[PROTOCOL_VERSION, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(d.next_msg(), Err(FrameError::TooLarge(_))));
    }

    /// Property: random bytes never panic the decoder; every outcome is a message, "need more" or an
    /// error. Seeded (xorshift) so a failure is reproducible from the printed seed.
    #[test]
    fn random_bytes_never_panic_the_decoder() {
        let valid = encode(&sample()).unwrap();
        for seed in 1..=2000u64 {
            let mut x = seed;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let len = (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if seed % 3 == 0 {
                // Valid header, random body: exercises the postcard decoder itself.
                bytes = valid.clone();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] = next() as u8;
                }
                bytes[0] = PROTOCOL_VERSION;
            }
            let mut d = FrameDecoder::default();
            d.push(&bytes);
            for _ in 0..8 {
                match d.next_msg() {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
