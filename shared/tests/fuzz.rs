//! Seeded property ("fuzz") tests: hostile input never panics a decoder or a sync state machine, and
//! garbage never changes what a replica holds.
//!
//! - Frames: random messages of every variant round-trip through [`FrameDecoder`] fed in random chunk
//!   sizes; frames mutated with knowledge of their layout (versions, length headers, payload varints,
//!   truncations, splices, concatenations) give a message, "need more" or an error.
//! - Sessions: a [`ServerSession`] over a hub [`MemReplica`] holding real case documents, and a
//!   [`ClientSession`] over a village replica, replay a recorded real conversation up to a random point
//!   and are then fed hostile messages: random ones, mutated real ones, out-of-order ones, automerge
//!   payloads mutated byte-wise or with their chunk checksums recomputed (so the mutation reaches
//!   automerge's column decoders), crafted sync messages with odd heads and bloom filters, out-of-scope
//!   and malformed case numbers, oversized batches. Two more server tests aim only at whole documents
//!   and at change chunks. The hub must keep every case it held unchanged unless a decodable document
//!   for that in-scope case arrived, store nothing outside the peer's scope, never store a change by an
//!   actor bound to another node, and still load every case it stored.
//! - Intake: `IntakeRequest` JSON mutated structurally and textually, then `validate_intake`; the field
//!   validators on random and near-valid strings.
//!
//! Every iteration draws from its own SplitMix64 seed (no dependency, so a seed means the same input on
//! every machine) and runs under `catch_unwind`. A test fails listing each distinct panic site with the
//! first seed that hit it, and also when its iterations stop reaching the code they are meant to reach
//! (a [`Tally`] of outcomes, so a generator cannot silently degrade into testing nothing).
//!
//! - `TONGBAN_FUZZ_ITERS=N`: iterations of every test (the defaults keep the file near 12 s in debug on
//!   two cores).
//! - `TONGBAN_FUZZ_SEED=S`: replay one seed (decimal or 0x-hex) with the panic printed in full and each
//!   session input described; pick the test by name. Add `TONGBAN_FUZZ_DUMP=dir` to write the inputs
//!   there as frames.
//! - `TONGBAN_FUZZ_SKIP_KNOWN=1`: drop the sync messages that hit the two known sync-message panics
//!   ([`ZERO_BIT_BLOOM_MSG`], heads out of order), to look for other problems behind them.
//!
//! Sync messages whose bloom filters ask for a huge number of probes reach the sessions too: automerge
//! would abort the process on them (see [`HUGE_PROBES_BLOOM_MSG`]); the sync core refuses them first
//! (`session::decode_sync_message`), so a regression there fails this file by aborting it.
//!
//! The named `*_survives_*` / `*_never_*` tests are the smallest reproducers of what these fuzzers found
//! in automerge 0.12, reachable through `ServerSession::handle` by any enrolled peer. The sync core
//! guards against each (`session::guarded`, `session::decode_sync_message`, the load-back check before
//! storing a merged case); these tests keep it so.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Once, OnceLock};
use std::time::Instant;

use automerge::sync::{BloomFilter, Message, MessageVersion, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ChangeHash};
use chrono::{DateTime, NaiveDate};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use tongban_shared::case::{
    self, Agent, ApplicantInput, IntakeContext, IntakeRequest, ValidIntake, DELIVERY_METHODS,
};
use tongban_shared::catalog::{Catalog, BUILTIN_CATALOG_JSON};
use tongban_shared::sync::frame::{
    encode, DocMsg, FrameDecoder, FrameError, LinkReport, Msg, NodeAnswer, NodeCert, NodeQuery,
    NodeView, Refusal, ScopeRoot, HEADER_LEN, MAX_FRAME, PROTOCOL_VERSION,
};
use tongban_shared::sync::memory::MemReplica;
use tongban_shared::sync::summary::{bucket, Digest, Fp, Prefix, DEPTH, FANOUT};
use tongban_shared::sync::{scope, ClientSession, Replica, ServerSession};
use tongban_shared::validate;

// ------------------------------------------------------------------------------------------ harness

/// SplitMix64: tiny, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0..n (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// 0..=n.
    fn upto(&mut self, n: usize) -> usize {
        self.below(n + 1)
    }

    /// lo..=hi.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.upto(hi - lo)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n as usize) == 0
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for b in &mut a {
            *b = self.byte();
        }
        a
    }

    /// A length: usually up to `small`, one time in sixteen up to `large`.
    fn count(&mut self, small: usize, large: usize) -> usize {
        if self.one_in(16) {
            self.upto(large)
        } else {
            self.upto(small)
        }
    }

    /// A u32 biased to the values that break arithmetic.
    fn u32(&mut self) -> u32 {
        match self.below(8) {
            0 => 0,
            1 => 1,
            2 => u32::MAX,
            3 => *self.pick(&[2, 7, 16, 17, 255, 256, 1 << 16, 1 << 31, u32::MAX - 1]),
            4 => self.below(100) as u32,
            _ => self.next() as u32,
        }
    }
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records each panic's message and place for the report; stays silent while a fuzz loop runs (the
/// report names the seed to replay loudly).
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            let at = info
                .location()
                .map(|l| {
                    let file = l.file();
                    let file = file
                        .find("/registry/src/")
                        .and_then(|i| file[i..].splitn(5, '/').nth(4))
                        .unwrap_or(file);
                    format!("{file}:{}", l.line())
                })
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{at}: {msg}")));
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn skip_known() -> bool {
    std::env::var("TONGBAN_FUZZ_SKIP_KNOWN").is_ok_and(|v| v == "1")
}

/// When replaying one seed: says what is about to be handled, and with `TONGBAN_FUZZ_DUMP=dir` writes
/// it there as a frame (`FrameDecoder` gives the message back), to turn a failing seed into a fixture.
fn trace_input(msg: &Msg) {
    thread_local! {
        static STEP: Cell<usize> = const { Cell::new(0) };
    }
    if std::env::var("TONGBAN_FUZZ_SEED").is_err() {
        return;
    }
    let step = STEP.with(|s| s.replace(s.get() + 1));
    let docs = match msg {
        Msg::Sync { docs } | Msg::SyncReply { docs, .. } => docs
            .iter()
            .map(|d| {
                format!(
                    " [{:?} msg {:?} full {:?} want_full {}]",
                    d.case_no,
                    d.msg.as_ref().map(Vec::len),
                    d.full.as_ref().map(Vec::len),
                    d.want_full
                )
            })
            .collect(),
        _ => String::new(),
    };
    eprintln!("input {step}: {}{docs}", msg.kind());
    if let (Ok(dir), Ok(frame)) = (std::env::var("TONGBAN_FUZZ_DUMP"), encode(msg)) {
        std::fs::write(format!("{dir}/input-{step}.frame"), frame).unwrap();
    }
}

/// What the iterations reached, so that a generator which silently stops reaching deep code fails its
/// test instead of passing it.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    fn hit(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }
}

/// Runs `body` once per seed, catching panics. Fails listing every distinct panic (by site) with the
/// first seed that hit it, and when fewer iterations than `wants` says reached a point of the code
/// (coverage is not checked when replaying one seed).
fn fuzz(
    name: &str,
    default_iters: u64,
    wants: &[(&str, f64)],
    mut body: impl FnMut(&mut Rng, &mut Tally),
) {
    install_panic_hook();
    let base = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let replay = env_u64("TONGBAN_FUZZ_SEED");
    let seeds: Vec<u64> = match replay {
        Some(seed) => vec![seed],
        None => {
            let n = env_u64("TONGBAN_FUZZ_ITERS").unwrap_or(default_iters);
            (0..n).map(|i| base.wrapping_add(i)).collect()
        }
    };
    let start = Instant::now();
    let mut tally = Tally::default();
    // Panic site → (iterations, first seed, first message).
    let mut failures: BTreeMap<String, (u64, u64, String)> = BTreeMap::new();
    for &seed in &seeds {
        QUIET.with(|q| q.set(replay.is_none()));
        let outcome =
            panic::catch_unwind(AssertUnwindSafe(|| body(&mut Rng::new(seed), &mut tally)));
        QUIET.with(|q| q.set(false));
        if outcome.is_err() {
            let what = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "unknown panic".into());
            let what: String = what.chars().take(400).collect();
            let site = what.split(": ").next().unwrap_or_default().to_string();
            failures.entry(site).or_insert((0, seed, what)).0 += 1;
        }
    }
    let n = seeds.len() as u64;
    eprintln!(
        "{name}: {n} iterations in {:.2?}, reached {:?}",
        start.elapsed(),
        tally.0
    );
    let mut report: String = failures
        .values()
        .take(12)
        .map(|(count, seed, what)| {
            format!("\n  {count} iteration(s), first seed {seed} (replay: TONGBAN_FUZZ_SEED={seed}): {what}")
        })
        .collect();
    if n >= 500 {
        for &(what, share) in wants {
            let reached = tally.0.get(what).copied().unwrap_or(0);
            if (reached as f64) < share * n as f64 {
                report.push_str(&format!(
                    "\n  only {reached} iteration(s) reached \"{what}\" (want {share} of them): the generator \
                     no longer gets that far"
                ));
            }
        }
    }
    assert!(
        report.is_empty(),
        "{name}: {} distinct panic(s) in {n} iterations:{report}",
        failures.len()
    );
}

// ------------------------------------------------------------------------------------ text and bytes

/// Characters that break naive code: controls, odd whitespace, wide and combining forms, bidi
/// overrides, the top of the code space, JSON and path metacharacters.
const ODD_CHARS: &[char] = &[
    '0',
    '1',
    '9',
    'X',
    'x',
    '-',
    ' ',
    '\t',
    '\n',
    '\r',
    '\0',
    '\u{7}',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{200b}',
    '\u{202e}',
    '\u{3000}',
    '\u{feff}',
    '\u{fffd}',
    '\u{10ffff}',
    'é',
    'e',
    '\u{301}',
    '中',
    '王',
    '１',
    '〇',
    'İ',
    'ß',
    '🦀',
    '"',
    '\\',
    '/',
    '%',
    '<',
    '&',
    '.',
    ':',
];

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

fn text(rng: &mut Rng) -> String {
    match rng.below(9) {
        0 => String::new(),
        1 => {
            let n = rng.upto(24);
            digits(rng, n)
        }
        2 => {
            let n = rng.upto(32);
            (0..n)
                .map(|_| char::from(0x20 + rng.below(95) as u8))
                .collect()
        }
        3 => {
            let n = rng.upto(24);
            (0..n).map(|_| *rng.pick(ODD_CHARS)).collect()
        }
        4 => {
            let n = rng.upto(24);
            (0..n)
                .map(|_| {
                    if rng.one_in(3) {
                        *rng.pick(ODD_CHARS)
                    } else {
                        char::from(b'0' + rng.below(10) as u8)
                    }
                })
                .collect()
        }
        5 => {
            let unit = *rng.pick(&["中", "a", "1", "\u{301}", "🦀", " ", "\0", "王秀英"]);
            let n = rng.between(51, 3000);
            unit.repeat(n)
        }
        6 => {
            let n = rng.upto(16);
            (0..n)
                .filter_map(|_| char::from_u32(rng.next() as u32 % 0x11_0000))
                .collect()
        }
        _ => {
            let s = *rng.pick(&[
                "420222100201-20261127-0001",
                "11010519491231002X",
                "91350100M000100Y43",
                "13800271234",
                "王秀英",
                "代办员送达",
            ]);
            mutate_text(rng, s)
        }
    }
}

/// A few character-level edits of `s`.
fn mutate_text(rng: &mut Rng, s: &str) -> String {
    let mut cs: Vec<char> = s.chars().collect();
    for _ in 0..rng.between(1, 3) {
        let pos = rng.upto(cs.len());
        match rng.below(8) {
            0 => cs.insert(pos, *rng.pick(ODD_CHARS)),
            1 if !cs.is_empty() => {
                cs.remove(pos.min(cs.len() - 1));
            }
            2 if pos < cs.len() => cs[pos] = char::from(b'0' + rng.below(10) as u8),
            3 => cs.truncate(pos),
            4 => {
                let again = cs.clone();
                cs.extend(again);
            }
            5 => cs.insert(pos, *rng.pick(&[' ', '\u{3000}', '\t', '\u{a0}'])),
            6 if pos < cs.len() => {
                cs[pos] = if cs[pos].is_ascii_uppercase() {
                    cs[pos].to_ascii_lowercase()
                } else {
                    cs[pos].to_ascii_uppercase()
                }
            }
            _ => cs.insert(pos, *rng.pick(&['-', '0', 'X', '中'])),
        }
    }
    cs.into_iter().collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn leb128(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        n |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Varints that decoders trip on: huge, overlong, unterminated.
const BIG_VARINTS: &[&[u8]] = &[
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0x7f],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
    &[0x80, 0x80, 0x80],
    &[0xff],
];

/// One to four byte-level edits; `donors` supplies material to splice in.
fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>, donors: &[Vec<u8>]) {
    for _ in 0..rng.between(1, 4) {
        let pos = rng.upto(b.len());
        match rng.below(11) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.byte();
            }
            2 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = *rng.pick(&[0, 1, 0x7f, 0x80, 0xff]);
            }
            3 => {
                let n = rng.between(1, 8);
                let extra = rng.bytes(n);
                b.splice(pos..pos, extra);
            }
            4 => {
                let end = (pos + rng.between(1, 16)).min(b.len());
                b.drain(pos..end);
            }
            5 => b.truncate(pos),
            6 => {
                let end = (pos + rng.between(1, 32)).min(b.len());
                let again = b[pos..end].to_vec();
                b.splice(pos..pos, again);
            }
            7 => {
                let end = (pos + 1).min(b.len());
                let v = rng.pick(BIG_VARINTS).to_vec();
                b.splice(pos..end, v);
            }
            8 if !donors.is_empty() => {
                let donor = rng.pick(donors);
                let from = rng.below(donor.len().max(1));
                let to = (from + rng.between(1, 64)).min(donor.len());
                let end = (pos + rng.upto(64)).min(b.len());
                b.splice(pos..end, donor[from..to].iter().copied());
            }
            9 if b.len() >= 2 => {
                let (i, j) = (rng.below(b.len()), rng.below(b.len()));
                b.swap(i, j);
            }
            _ if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = if rng.one_in(2) {
                    b[i].wrapping_add(1)
                } else {
                    b[i].wrapping_sub(1)
                };
            }
            _ => b.push(rng.byte()),
        }
    }
}

// ------------------------------------------------------------------------------ automerge payloads

/// First bytes of every automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Splits a buffer starting with a chunk into (chunk type, chunk data, what follows).
fn split_chunk(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    if b.len() < 10 || b[..4] != MAGIC {
        return None;
    }
    let mut pos = 9;
    let len = usize::try_from(read_leb128(b, &mut pos)?).ok()?;
    let end = pos.checked_add(len)?;
    (end <= b.len()).then(|| (b[8], &b[pos..end], &b[end..]))
}

/// A chunk with a correct header and checksum around `data`: what automerge checks before it decodes.
fn seal(chunk_type: u8, data: &[u8]) -> Vec<u8> {
    let mut head = vec![chunk_type];
    leb128(data.len() as u64, &mut head);
    let hash = Sha256::new()
        .chain_update(&head)
        .chain_update(data)
        .finalize();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&hash[..4]);
    out.extend_from_slice(&head);
    out.extend_from_slice(data);
    out
}

/// Mutates the inside of a chunk and recomputes its checksum, so the mutation gets past the checksum
/// and into the column decoders. Anything that is not a chunk is mutated as bytes.
fn mutate_sealed(rng: &mut Rng, chunk: &[u8], donors: &[Vec<u8>]) -> Vec<u8> {
    match split_chunk(chunk) {
        Some((chunk_type, data, rest)) => {
            let mut data = data.to_vec();
            mutate_bytes(rng, &mut data, donors);
            let mut out = seal(chunk_type, &data);
            out.extend_from_slice(rest);
            out
        }
        None => {
            let mut b = chunk.to_vec();
            mutate_bytes(rng, &mut b, donors);
            b
        }
    }
}

/// Change hashes for a message about a case whose changes are `known`: often exactly those (in any
/// order, which automerge's encoder would never produce), sometimes another document's, sometimes
/// random.
fn change_hashes(
    rng: &mut Rng,
    fx: &Fixture,
    known: &[ChangeHash],
    small: usize,
    large: usize,
) -> Vec<ChangeHash> {
    let mut hashes: Vec<ChangeHash> = match rng.below(8) {
        0 | 1 if !known.is_empty() => known.to_vec(),
        2 => rng.pick(&fx.hash_groups).clone(),
        _ => {
            let n = rng.count(small, large);
            (0..n)
                .map(|_| {
                    if rng.one_in(2) {
                        *rng.pick(&fx.hashes)
                    } else {
                        ChangeHash(rng.array())
                    }
                })
                .collect()
        }
    };
    match rng.below(4) {
        0 => hashes.sort(),
        1 => hashes.reverse(),
        2 if !hashes.is_empty() => hashes.truncate(rng.below(hashes.len())),
        _ => {}
    }
    hashes
}

/// An automerge sync message as bytes, written by hand: automerge's own encoder insists (in debug
/// builds) on sorted hashes and well-formed bloom filters, and a hostile peer does not.
struct RawMessage {
    version: u8,
    heads: Vec<ChangeHash>,
    need: Vec<ChangeHash>,
    /// (last_sync, bloom filter bytes).
    have: Vec<(Vec<ChangeHash>, Vec<u8>)>,
    changes: Vec<Vec<u8>>,
    flags: Option<Vec<u8>>,
}

impl RawMessage {
    fn from_message(m: &Message) -> RawMessage {
        RawMessage {
            version: match m.version {
                MessageVersion::V1 => 0x42,
                MessageVersion::V2 => 0x43,
            },
            heads: m.heads.clone(),
            need: m.need.clone(),
            have: m
                .have
                .iter()
                .map(|h| (h.last_sync.clone(), h.bloom.to_bytes()))
                .collect(),
            changes: m.changes.iter().map(<[u8]>::to_vec).collect(),
            flags: m.flags.map(|_| vec![2, 0x80 | 4]),
        }
    }

    fn encode(&self) -> Vec<u8> {
        fn hashes(out: &mut Vec<u8>, hs: &[ChangeHash]) {
            leb128(hs.len() as u64, out);
            for h in hs {
                out.extend_from_slice(&h.0);
            }
        }
        let mut out = vec![self.version];
        hashes(&mut out, &self.heads);
        hashes(&mut out, &self.need);
        leb128(self.have.len() as u64, &mut out);
        for (last_sync, bloom) in &self.have {
            hashes(&mut out, last_sync);
            leb128(bloom.len() as u64, &mut out);
            out.extend_from_slice(bloom);
        }
        leb128(self.changes.len() as u64, &mut out);
        for c in &self.changes {
            leb128(c.len() as u64, &mut out);
            out.extend_from_slice(c);
        }
        if let Some(flags) = &self.flags {
            leb128(flags.len() as u64, &mut out);
            out.extend_from_slice(flags);
        }
        out
    }
}

/// Bloom filter bytes from the plausible to the degenerate. Probe counts stay small: a huge one aborts
/// the process inside automerge (see [`HUGE_PROBES_BLOOM_MSG`]).
fn bloom(rng: &mut Rng, fx: &Fixture) -> Vec<u8> {
    match rng.below(6) {
        0 => Vec::new(),
        1 => {
            let hashes = change_hashes(rng, fx, &[], 4, 64);
            BloomFilter::from_hashes(hashes.iter()).to_bytes()
        }
        2 => {
            let n = rng.upto(12);
            rng.bytes(n)
        }
        _ => {
            let entries = *rng.pick(&[1u32, 2, 3, 17, 1000, 100_000, u32::MAX]);
            let per_entry = *rng.pick(&[0u32, 1, 7, 10, 64, 255]);
            let probes = *rng.pick(&[0u32, 1, 7, 10, 64]);
            let mut b = Vec::new();
            leb128(entries.into(), &mut b);
            leb128(per_entry.into(), &mut b);
            leb128(probes.into(), &mut b);
            let capacity = (f64::from(entries) * f64::from(per_entry) / 8.0).ceil() as usize;
            let n = if rng.one_in(4) {
                rng.upto(capacity.min(20_000) + 4)
            } else {
                capacity.min(20_000)
            };
            b.extend(rng.bytes(n));
            b
        }
    }
}

/// A change chunk: real, mutated (sealed or not), a document where a change belongs, or noise.
fn change_chunk(rng: &mut Rng, fx: &Fixture) -> Vec<u8> {
    match rng.below(6) {
        0 | 1 => rng.pick(&fx.changes).clone(),
        2 => {
            let c = rng.pick(&fx.changes);
            mutate_sealed(rng, c, &fx.changes)
        }
        3 => {
            let mut c = rng.pick(&fx.changes).clone();
            mutate_bytes(rng, &mut c, &fx.changes);
            c
        }
        4 => rng.pick(&fx.docs).clone(),
        _ => {
            let n = rng.upto(64);
            rng.bytes(n)
        }
    }
}

fn flags(rng: &mut Rng) -> Option<Vec<u8>> {
    match rng.below(4) {
        0 => None,
        1 => Some(vec![2, 0x80 | (rng.byte() & 0x7f)]),
        2 => Some(vec![1, 2]),
        _ => {
            let n = rng.upto(4);
            Some(rng.bytes(n))
        }
    }
}

/// An automerge sync message built field by field, about a case whose changes are `known`.
fn crafted_message(rng: &mut Rng, fx: &Fixture, known: &[ChangeHash]) -> Vec<u8> {
    let haves = rng.count(2, 8);
    let changes = if rng.one_in(2) { 0 } else { rng.count(2, 12) };
    RawMessage {
        version: if rng.one_in(20) {
            rng.byte()
        } else {
            *rng.pick(&[0x42, 0x43])
        },
        heads: change_hashes(rng, fx, known, 3, 40),
        need: change_hashes(rng, fx, known, 3, 40),
        have: (0..haves)
            .map(|_| (change_hashes(rng, fx, known, 2, 8), bloom(rng, fx)))
            .collect(),
        changes: (0..changes).map(|_| change_chunk(rng, fx)).collect(),
        flags: flags(rng),
    }
    .encode()
}

/// A real sync message with one field replaced.
fn remixed_message(rng: &mut Rng, fx: &Fixture, known: &[ChangeHash], bytes: &[u8]) -> Vec<u8> {
    let Ok(m) = Message::decode(bytes) else {
        let mut b = bytes.to_vec();
        mutate_bytes(rng, &mut b, &fx.sync_msgs);
        return b;
    };
    let mut m = RawMessage::from_message(&m);
    match rng.below(7) {
        0 => m.heads = change_hashes(rng, fx, known, 3, 40),
        1 => m.need = change_hashes(rng, fx, known, 3, 40),
        2 => m
            .have
            .push((change_hashes(rng, fx, known, 2, 8), bloom(rng, fx))),
        3 if !m.have.is_empty() => {
            let i = rng.below(m.have.len());
            mutate_bytes(rng, &mut m.have[i].1, &[]);
        }
        4 => {
            for c in &mut m.changes {
                if rng.one_in(2) {
                    *c = mutate_sealed(rng, c, &fx.changes);
                }
            }
            for _ in 0..rng.upto(2) {
                m.changes.push(change_chunk(rng, fx));
            }
        }
        5 => m.version ^= 1,
        _ => m.flags = flags(rng),
    }
    m.encode()
}

/// What goes in `DocMsg::msg` or `DocMsg::full` for `case_no`.
fn payload(rng: &mut Rng, fx: &Fixture, case_no: &str) -> Vec<u8> {
    let known = fx.case_hashes.get(case_no).map_or(&[][..], Vec::as_slice);
    match rng.below(15) {
        0 => rng.pick(&fx.docs).clone(),
        1 => rng.pick(&fx.sync_msgs).clone(),
        2 => {
            let mut b = rng.pick(&fx.docs).clone();
            mutate_bytes(rng, &mut b, &fx.docs);
            b
        }
        3 => {
            let mut b = rng.pick(&fx.sync_msgs).clone();
            mutate_bytes(rng, &mut b, &fx.sync_msgs);
            b
        }
        4 | 5 => {
            let d = rng.pick(&fx.docs);
            mutate_sealed(rng, d, &fx.changes)
        }
        6..=9 => crafted_message(rng, fx, known),
        10 => {
            let m = rng.pick(&fx.sync_msgs);
            remixed_message(rng, fx, known, m)
        }
        11 => {
            let n = rng.upto(200);
            rng.bytes(n)
        }
        12 => {
            let mut b = MAGIC.to_vec();
            let n = rng.upto(64);
            b.extend(rng.bytes(n));
            b
        }
        13 => {
            // A document followed by change chunks (a valid load), maybe mutated.
            let mut b = rng.pick(&fx.docs).clone();
            for _ in 0..rng.between(1, 3) {
                b.extend(change_chunk(rng, fx));
            }
            b
        }
        _ => Vec::new(),
    }
}

fn mutate_payload(rng: &mut Rng, fx: &Fixture, case_no: &str, p: &mut Vec<u8>) {
    let known = fx.case_hashes.get(case_no).map_or(&[][..], Vec::as_slice);
    match rng.below(4) {
        0 => mutate_bytes(rng, p, &fx.docs),
        1 => *p = mutate_sealed(rng, p, &fx.changes),
        2 => *p = remixed_message(rng, fx, known, p),
        _ => *p = payload(rng, fx, case_no),
    }
}

// ------------------------------------------------------------------------------------- sync fixture

const HUB: &str = "420222";
const TOWNSHIP: &str = "420222100";
const V1: &str = "420222100201";
const V2: &str = "420222100202";
const HUB_ACTOR: [u8; 16] = [200; 16];
const V1_ACTOR: [u8; 16] = [1; 16];
const V2_ACTOR: [u8; 16] = [2; 16];

/// Scope codes a peer might name: its own, its neighbour's, its parents', lookalikes and junk.
const SCOPES: &[&str] = &[
    V1,
    V2,
    TOWNSHIP,
    HUB,
    "420222101",
    "420223100201",
    "",
    "4",
    "4202221002011",
    "420222100201 ",
    "42022210020１",
];

/// Case numbers no replica can hold.
const JUNK_CASE_NOS: &[&str] = &[
    "",
    "-",
    "--",
    V1,
    "420222100201-",
    "420222100201-20261127",
    "4202221002011-20261127-0001",
    "42022210020-20261127-0001",
    "４２０２２２１００２０１-20261127-0001",
    "420222100201-20261127-0001\0",
    "420222100201/../../etc/passwd",
    "420222-20261127-0001",
    "420222100-20261127-0001",
    "420222100201-99999999-0001-0001",
];

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
}

fn valid_intake(catalog: &Catalog) -> ValidIntake {
    let item = &catalog.items[0];
    let req = IntakeRequest {
        item_code: item.code.clone(),
        applicant: ApplicantInput {
            name: "王秀英".into(),
            id_number: "11010519491231002X".into(),
            phone: "13800271234".into(),
            ..Default::default()
        },
        materials: item
            .materials
            .iter()
            .filter(|m| m.required)
            .map(|m| m.id.clone())
            .collect(),
        delivery: "代办员送达".into(),
        note: "测试".into(),
    };
    case::validate_intake(catalog, &req, today()).unwrap()
}

/// A real case document, as a node's intake writes it.
fn case_doc(intake: &ValidIntake, case_no: &str, node: &str, actor: [u8; 16]) -> AutoCommit {
    case::new_case_document(
        intake,
        IntakeContext {
            case_no,
            agent: Agent {
                user: "daiban".into(),
                name: "李代办".into(),
                node_code: node.into(),
                node_name: "村便民服务站".into(),
            },
            now: DateTime::parse_from_rfc3339("2026-11-27T09:30:00+08:00").unwrap(),
            query_password: "482913",
            actor: ActorId::from(actor.as_slice()),
        },
    )
    .unwrap()
    .0
}

/// A copy of `doc` with one more change by `actor`.
fn edited(doc: &mut AutoCommit, actor: [u8; 16], key: &str, value: &str) -> AutoCommit {
    let mut d = doc.fork();
    d.set_actor(ActorId::from(actor.as_slice()));
    d.put(automerge::ROOT, key, value).unwrap();
    d.commit();
    d
}

/// Every message of an automerge sync conversation between two documents.
fn sync_pair(a: &AutoCommit, b: &AutoCommit) -> Vec<Vec<u8>> {
    let (mut a, mut b) = (a.clone(), b.clone());
    let (mut sa, mut sb) = (State::new(), State::new());
    let mut out = Vec::new();
    for _ in 0..10 {
        let ma = a.sync().generate_sync_message(&mut sa).map(Message::encode);
        let mb = b.sync().generate_sync_message(&mut sb).map(Message::encode);
        if ma.is_none() && mb.is_none() {
            break;
        }
        if let Some(bytes) = ma {
            let m = Message::decode(&bytes).unwrap();
            b.sync().receive_sync_message(&mut sb, m).unwrap();
            out.push(bytes);
        }
        if let Some(bytes) = mb {
            let m = Message::decode(&bytes).unwrap();
            a.sync().receive_sync_message(&mut sa, m).unwrap();
            out.push(bytes);
        }
    }
    out
}

fn is_foreign(actor: &ActorId) -> bool {
    *actor == ActorId::from(HUB_ACTOR.as_slice()) || *actor == ActorId::from(V2_ACTOR.as_slice())
}

/// Changes in `doc` by actors bound to nodes other than the peer V1.
fn foreign_changes(doc: &mut AutoCommit) -> BTreeSet<ChangeHash> {
    doc.get_changes(&[])
        .iter()
        .filter(|c| is_foreign(c.actor_id()))
        .map(|c| c.hash())
        .collect()
}

fn held(r: &MemReplica) -> BTreeMap<String, Digest> {
    r.case_numbers()
        .into_iter()
        .map(|no| {
            let d = r
                .digest(&no)
                .unwrap_or_else(|| panic!("{no} has no digest"));
            (no, d)
        })
        .collect()
}

fn in_peer_scope(case_no: &str) -> bool {
    scope::scope_of(case_no).is_some_and(|s| scope::may_hold(V1, s))
}

struct Fixture {
    /// The county hub: 22 of the village's cases (it acted on one, one the village lost), two of
    /// another village's; actors bound as enrolment binds them.
    hub: MemReplica,
    /// Village V1: 20 cases the hub has (one edited since), one only it has.
    village: MemReplica,
    hub_cases: BTreeMap<String, Digest>,
    village_cases: BTreeMap<String, Digest>,
    /// Per case at the hub, the changes by actors not bound to V1 it already holds.
    hub_foreign: BTreeMap<String, BTreeSet<ChangeHash>>,
    /// A real session between the two: (request, response), in order.
    transcript: Vec<(Msg, Msg)>,
    /// Case numbers the village put in its `Sync` batches.
    batch_cases: Vec<String>,
    /// Transcript steps after which the client waits for a `SyncReply`.
    awaiting_sync: Vec<usize>,
    /// The V1 cases the hub holds.
    v1_at_hub: Vec<String>,
    case_nos: Vec<String>,
    /// Saved documents, including forgeries by actors bound to other nodes.
    docs: Vec<Vec<u8>>,
    /// Encoded automerge sync messages, from the transcript and from pairwise conversations.
    sync_msgs: Vec<Vec<u8>>,
    /// Change chunks.
    changes: Vec<Vec<u8>>,
    hashes: Vec<ChangeHash>,
    /// The change hashes of each document, sorted.
    hash_groups: Vec<Vec<ChangeHash>>,
    /// Per case number, every change either replica holds of it, sorted.
    case_hashes: BTreeMap<String, Vec<ChangeHash>>,
    /// Per V1 case at the hub, a change on top of the hub's version by V1's actor, then the same by
    /// the hub's and by V2's (which the hub must refuse from V1).
    next_changes: BTreeMap<String, Vec<Vec<u8>>>,
    fps: Vec<Fp>,
    digests: Vec<Digest>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::build)
}

impl Fixture {
    fn build() -> Fixture {
        let catalog = Catalog::builtin().unwrap();
        let intake = valid_intake(&catalog);
        let no = |code: &str, seq: u32| format!("{code}-20261127-{seq:04}");
        let mut hub = MemReplica::default();
        hub.bind_actor(&ActorId::from(HUB_ACTOR.as_slice()), HUB);
        hub.bind_actor(&ActorId::from(V1_ACTOR.as_slice()), V1);
        hub.bind_actor(&ActorId::from(V2_ACTOR.as_slice()), V2);
        let mut village = MemReplica::default();
        let mut docs: Vec<AutoCommit> = Vec::new();
        let mut sync_msgs = Vec::new();

        // 20 cases both hold (more than a leaf's worth, so the session descends with Compare); since
        // then the hub acted on #1 and #3, the village edited #2 and #3 (so #3 ends with two heads).
        for seq in 1..=20 {
            let n = no(V1, seq);
            let mut d = case_doc(&intake, &n, V1, V1_ACTOR);
            let mut at_hub = if seq == 1 || seq == 3 {
                edited(&mut d, HUB_ACTOR, "state", "RECEIVED")
            } else {
                d.clone()
            };
            let mut at_village = if seq == 2 || seq == 3 {
                edited(&mut d, V1_ACTOR, "note", "村里补充了说明")
            } else {
                d.clone()
            };
            hub.write(&n, &mut at_hub).unwrap();
            village.write(&n, &mut at_village).unwrap();
            if seq <= 3 {
                sync_msgs.extend(sync_pair(&at_village, &at_hub));
                docs.push(at_hub);
                docs.push(at_village);
            }
        }
        // #21 only the village has; #22 only the hub (the village lost it).
        let mut only_village = case_doc(&intake, &no(V1, 21), V1, V1_ACTOR);
        village.write(&no(V1, 21), &mut only_village).unwrap();
        let mut only_hub = case_doc(&intake, &no(V1, 22), V1, V1_ACTOR);
        hub.write(&no(V1, 22), &mut only_hub).unwrap();
        docs.push(only_village);
        // The other village's cases, which V1 may neither read nor write.
        for seq in 1..=2 {
            let mut d = case_doc(&intake, &no(V2, seq), V2, V2_ACTOR);
            hub.write(&no(V2, seq), &mut d).unwrap();
            docs.push(d);
        }
        // Forgeries V1 might send: #3 changed with the hub's actor and with V2's, a new V1 case
        // written entirely by V2's actor.
        let mut three = hub.load(&no(V1, 3)).unwrap().unwrap();
        for actor in [HUB_ACTOR, V2_ACTOR] {
            let forged = edited(&mut three, actor, "state", "ACCEPTED");
            sync_msgs.extend(sync_pair(&forged, &three));
            docs.push(forged);
        }
        docs.push(case_doc(&intake, &no(V1, 23), V1, V2_ACTOR));
        // A fresh replica's opening message.
        sync_msgs.extend(sync_pair(&AutoCommit::new(), &three).into_iter().take(2));

        let hub_cases = held(&hub);
        let village_cases = held(&village);
        let hub_foreign = hub_cases
            .keys()
            .map(|n| {
                (
                    n.clone(),
                    foreign_changes(&mut hub.load(n).unwrap().unwrap()),
                )
            })
            .collect();

        // The real session, recorded.
        let (mut h, mut v) = (hub.clone(), village.clone());
        let mut client = ClientSession::new(vec![V1.to_string()]);
        let mut server = ServerSession::new(V1);
        let mut transcript = Vec::new();
        let mut request = client.start(&v).unwrap();
        loop {
            let response = server.handle(&mut h, request.clone()).unwrap();
            transcript.push((request, response.clone()));
            match client.handle(&mut v, response).unwrap() {
                Some(next) => request = next,
                None => break,
            }
        }
        assert_eq!(
            h.node(V1, Prefix::ROOT).unwrap(),
            v.node(V1, Prefix::ROOT).unwrap()
        );
        assert!(transcript
            .iter()
            .any(|(q, _)| matches!(q, Msg::Compare { .. })));
        let mut batch_cases = Vec::new();
        for (q, r) in &transcript {
            for m in [q, r] {
                if let Msg::Sync { docs: ds } | Msg::SyncReply { docs: ds, .. } = m {
                    for d in ds {
                        batch_cases.push(d.case_no.clone());
                        sync_msgs.extend(d.msg.clone());
                        if let Some(full) = &d.full {
                            docs.push(AutoCommit::load(full).unwrap());
                        }
                    }
                }
            }
        }
        batch_cases.sort();
        batch_cases.dedup();
        let awaiting_sync = (0..transcript.len())
            .filter(|&i| matches!(transcript[i].0, Msg::Sync { .. }))
            .collect();
        let v1_at_hub = hub
            .case_numbers()
            .into_iter()
            .filter(|n| n.starts_with(V1))
            .collect();

        let mut changes = Vec::new();
        let mut hashes = Vec::new();
        let mut saved = Vec::new();
        let mut hash_groups = Vec::new();
        for d in &mut docs {
            let mut group = Vec::new();
            for c in d.get_changes(&[]) {
                changes.push(c.raw_bytes().to_vec());
                group.push(c.hash());
            }
            group.sort();
            hashes.extend(group.iter().copied());
            hash_groups.push(group);
            saved.push(d.save());
            saved.push(d.save_nocompress());
        }
        changes.sort();
        changes.dedup();
        hashes.sort();
        hashes.dedup();

        let mut case_hashes: BTreeMap<String, Vec<ChangeHash>> = BTreeMap::new();
        for r in [&hub, &village] {
            for n in r.case_numbers() {
                let mut doc = r.load(&n).unwrap().unwrap();
                let group = case_hashes.entry(n).or_default();
                group.extend(doc.get_changes(&[]).iter().map(|c| c.hash()));
                group.sort();
                group.dedup();
            }
        }
        // For every V1 case at the hub, the next change an honest village would send (by V1's
        // actor) and two it must not be able to send (by the hub's and by V2's).
        let mut next_changes: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for n in hub.case_numbers().into_iter().filter(|n| n.starts_with(V1)) {
            let mut doc = hub.load(&n).unwrap().unwrap();
            let heads = doc.get_heads();
            for actor in [V1_ACTOR, HUB_ACTOR, V2_ACTOR] {
                let mut next = edited(&mut doc, actor, "note", "下一步");
                let change = next.get_changes(&heads);
                assert_eq!(change.len(), 1);
                next_changes
                    .entry(n.clone())
                    .or_default()
                    .push(change[0].raw_bytes().to_vec());
            }
        }

        let mut fps = vec![Fp::EMPTY];
        for r in [&hub, &village] {
            for s in [V1, V2] {
                fps.push(r.node(s, Prefix::ROOT).unwrap());
                fps.extend(r.children(s, Prefix::ROOT).unwrap());
            }
        }
        let digests = hub_cases.values().copied().collect();
        let mut case_nos: Vec<String> = (1..=23).map(|s| no(V1, s)).collect();
        case_nos.extend((1..=2).map(|s| no(V2, s)));

        Fixture {
            hub,
            village,
            hub_cases,
            village_cases,
            hub_foreign,
            transcript,
            batch_cases,
            awaiting_sync,
            v1_at_hub,
            case_nos,
            docs: saved,
            sync_msgs,
            changes,
            hashes,
            hash_groups,
            case_hashes,
            next_changes,
            fps,
            digests,
        }
    }
}

// ----------------------------------------------------------------------------- message generators

fn case_no(rng: &mut Rng, fx: &Fixture) -> String {
    match rng.below(10) {
        0..=4 => rng.pick(&fx.case_nos).clone(),
        5 => rng.pick(JUNK_CASE_NOS).to_string(),
        6 => format!(
            "{}-{}-{:04}",
            rng.pick(SCOPES),
            rng.pick(&["20261127", "20260230", "99999999", ""]),
            rng.below(10_000)
        ),
        7 => {
            let n = rng.pick(&fx.case_nos);
            mutate_text(rng, n)
        }
        _ => text(rng),
    }
}

fn scope_code(rng: &mut Rng) -> String {
    match rng.below(6) {
        0..=3 => rng.pick(SCOPES).to_string(),
        4 => {
            let s = rng.pick(SCOPES);
            mutate_text(rng, s)
        }
        _ => text(rng),
    }
}

fn fp(rng: &mut Rng, fx: &Fixture) -> Fp {
    match rng.below(5) {
        0 => Fp::EMPTY,
        1 | 2 => *rng.pick(&fx.fps),
        3 => {
            let mut f = *rng.pick(&fx.fps);
            f.count = rng.u32();
            f
        }
        _ => Fp {
            xor: rng.array(),
            count: rng.u32(),
        },
    }
}

fn prefix(rng: &mut Rng, fx: &Fixture) -> Prefix {
    match rng.below(6) {
        0 => Prefix::ROOT,
        1 | 2 => Prefix::of(&rng.array(), rng.upto(DEPTH as usize) as u8),
        3 => {
            let n = rng.pick(&fx.case_nos);
            Prefix::of(&bucket(n), rng.upto(DEPTH as usize) as u8)
        }
        4 => Prefix {
            len: rng.byte(),
            bits: rng.u32(),
        },
        _ => Prefix {
            len: rng.upto(DEPTH as usize + 1) as u8,
            bits: rng.next() as u32,
        },
    }
}

fn digest(rng: &mut Rng, fx: &Fixture) -> Digest {
    if rng.one_in(2) {
        *rng.pick(&fx.digests)
    } else {
        rng.array()
    }
}

fn doc_msg(rng: &mut Rng, fx: &Fixture, case_no: String) -> DocMsg {
    DocMsg {
        msg: (!rng.one_in(3)).then(|| payload(rng, fx, &case_no)),
        full: rng.one_in(4).then(|| payload(rng, fx, &case_no)),
        want_full: rng.one_in(6),
        case_no,
    }
}

fn refusal(rng: &mut Rng, fx: &Fixture) -> Refusal {
    Refusal {
        subject: if rng.one_in(2) {
            case_no(rng, fx)
        } else {
            scope_code(rng)
        },
        reason: text(rng),
    }
}

fn node_answer(rng: &mut Rng, fx: &Fixture) -> NodeAnswer {
    let view = if rng.one_in(2) {
        let n = if rng.one_in(4) {
            *rng.pick(&[0, 1, FANOUT - 1, FANOUT + 1, 300])
        } else {
            FANOUT
        };
        NodeView::Children((0..n).map(|_| fp(rng, fx)).collect())
    } else {
        let n = rng.count(6, 200);
        NodeView::Items(
            (0..n)
                .map(|_| (case_no(rng, fx), digest(rng, fx)))
                .collect(),
        )
    };
    NodeAnswer {
        scope: if rng.one_in(2) {
            V1.to_string()
        } else {
            scope_code(rng)
        },
        prefix: prefix(rng, fx),
        view,
    }
}

fn catalog_json(rng: &mut Rng) -> Option<String> {
    match rng.below(8) {
        0 => Some(BUILTIN_CATALOG_JSON.replacen(
            "\"version\": 1,",
            &format!("\"version\": {},", rng.u32()),
            1,
        )),
        1 => {
            let mut b = BUILTIN_CATALOG_JSON.as_bytes().to_vec();
            mutate_bytes(rng, &mut b, &[]);
            Some(String::from_utf8_lossy(&b).into_owned())
        }
        2 => Some(rng.u32().to_string()),
        3 => Some(text(rng)),
        _ => None,
    }
}

fn hello(rng: &mut Rng, fx: &Fixture) -> Msg {
    let scopes = rng.count(4, 300);
    let links = rng.count(3, 1500);
    Msg::Hello {
        scopes: (0..scopes)
            .map(|_| ScopeRoot {
                scope: scope_code(rng),
                fp: fp(rng, fx),
            })
            .collect(),
        catalog_version: rng.u32(),
        calendar_version: rng.u32(),
        pending: rng.u32(),
        links: (0..links)
            .map(|_| LinkReport {
                code: scope_code(rng),
                last_seen: if rng.one_in(2) {
                    "2026-11-27T09:30:00+08:00".into()
                } else {
                    text(rng)
                },
                sessions: rng.u32(),
                failed_sessions: rng.u32(),
                refusals: rng.u32(),
                pending: rng.u32(),
            })
            .collect(),
        clock_ms: clock_ms(rng),
    }
}

/// A clock reading as a peer might report it: none, sane, or absurd.
fn clock_ms(rng: &mut Rng) -> i64 {
    match rng.below(5) {
        0 => 0,
        1 => 1_795_000_000_000 + rng.below(100_000_000) as i64,
        2 => *rng.pick(&[-1, i64::MIN, i64::MAX, i64::MIN + 1, 253_402_300_800_000]),
        _ => rng.next() as i64,
    }
}

fn compare(rng: &mut Rng, fx: &Fixture) -> Msg {
    let n = if rng.one_in(10) {
        *rng.pick(&[255, 256, 257, 1000])
    } else {
        rng.upto(6)
    };
    Msg::Compare {
        nodes: (0..n)
            .map(|_| NodeQuery {
                scope: scope_code(rng),
                prefix: prefix(rng, fx),
                fp: fp(rng, fx),
            })
            .collect(),
    }
}

fn sync(rng: &mut Rng, fx: &Fixture) -> Msg {
    let n = if rng.one_in(40) {
        *rng.pick(&[63, 64, 65, 100])
    } else {
        rng.upto(5)
    };
    Msg::Sync {
        docs: (0..n)
            .map(|_| {
                let no = case_no(rng, fx);
                doc_msg(rng, fx, no)
            })
            .collect(),
    }
}

fn hello_reply(rng: &mut Rng, fx: &Fixture) -> Msg {
    let (differ, refused) = (rng.count(3, 40), rng.count(2, 10));
    Msg::HelloReply {
        differ: (0..differ).map(|_| node_answer(rng, fx)).collect(),
        refused: (0..refused).map(|_| refusal(rng, fx)).collect(),
        catalog: catalog_json(rng),
        calendar: rng.one_in(4).then(|| (rng.u32(), text(rng))),
        clock_ms: clock_ms(rng),
        downstream: rng.one_in(4).then(|| {
            (0..rng.count(2, 20))
                .map(|_| NodeCert {
                    code: scope_code(rng),
                    serial: text(rng),
                    revoked: rng.one_in(2),
                    actors: (0..rng.count(0, 2)).map(|_| text(rng)).collect(),
                })
                .collect()
        }),
    }
}

fn compare_reply(rng: &mut Rng, fx: &Fixture) -> Msg {
    let n = rng.count(3, 40);
    Msg::CompareReply {
        differ: (0..n).map(|_| node_answer(rng, fx)).collect(),
    }
}

fn sync_reply(rng: &mut Rng, fx: &Fixture) -> Msg {
    let (docs, refused) = (rng.count(4, 70), rng.count(1, 10));
    Msg::SyncReply {
        docs: (0..docs)
            .map(|_| {
                let no = if rng.one_in(4) {
                    case_no(rng, fx)
                } else {
                    rng.pick(&fx.batch_cases).clone()
                };
                doc_msg(rng, fx, no)
            })
            .collect(),
        refused: (0..refused)
            .map(|_| {
                let mut r = refusal(rng, fx);
                if rng.one_in(2) {
                    r.subject = rng.pick(&fx.batch_cases).clone();
                }
                r
            })
            .collect(),
    }
}

/// Any message of any variant.
fn random_msg(rng: &mut Rng, fx: &Fixture) -> Msg {
    match rng.below(7) {
        0 => hello(rng, fx),
        1 => hello_reply(rng, fx),
        2 => compare(rng, fx),
        3 => compare_reply(rng, fx),
        4 => sync(rng, fx),
        5 => sync_reply(rng, fx),
        _ => Msg::Error { reason: text(rng) },
    }
}

fn mutate_answers(rng: &mut Rng, fx: &Fixture, differ: &mut Vec<NodeAnswer>) {
    if differ.is_empty() || rng.one_in(5) {
        differ.push(node_answer(rng, fx));
        return;
    }
    let i = rng.below(differ.len());
    let a = &mut differ[i];
    match rng.below(7) {
        0 => a.prefix = prefix(rng, fx),
        1 => a.scope = scope_code(rng),
        2 => match &mut a.view {
            NodeView::Children(c) => {
                if rng.one_in(2) {
                    c.truncate(rng.below(c.len().max(1)));
                } else {
                    c.push(fp(rng, fx));
                }
            }
            NodeView::Items(items) => items.truncate(rng.below(items.len().max(1))),
        },
        3 => match &mut a.view {
            NodeView::Children(c) if !c.is_empty() => {
                let j = rng.below(c.len());
                c[j] = fp(rng, fx);
            }
            NodeView::Items(items) if !items.is_empty() => {
                let j = rng.below(items.len());
                if rng.one_in(2) {
                    items[j].0 = case_no(rng, fx);
                } else {
                    items[j].1 = rng.array();
                }
            }
            _ => *a = node_answer(rng, fx),
        },
        4 => {
            a.view = match &a.view {
                NodeView::Children(_) => NodeView::Items(Vec::new()),
                NodeView::Items(_) => NodeView::Children(vec![Fp::EMPTY; FANOUT]),
            }
        }
        5 => {
            let again = a.clone();
            differ.push(again);
        }
        _ => {
            differ.remove(i);
        }
    }
}

fn mutate_docs(rng: &mut Rng, fx: &Fixture, docs: &mut Vec<DocMsg>) {
    if docs.is_empty() || rng.one_in(6) {
        let no = case_no(rng, fx);
        docs.push(doc_msg(rng, fx, no));
        return;
    }
    let i = rng.below(docs.len());
    let d = &mut docs[i];
    let no = d.case_no.clone();
    match rng.below(9) {
        0 => d.case_no = case_no(rng, fx),
        1 | 2 => match &mut d.msg {
            Some(p) => mutate_payload(rng, fx, &no, p),
            None => d.msg = Some(payload(rng, fx, &no)),
        },
        3 => match &mut d.full {
            Some(p) => mutate_payload(rng, fx, &no, p),
            None => d.full = Some(payload(rng, fx, &no)),
        },
        4 => std::mem::swap(&mut d.msg, &mut d.full),
        5 => d.want_full = !d.want_full,
        6 => {
            let again = d.clone();
            docs.push(again);
        }
        7 => {
            docs.remove(i);
        }
        _ => {
            let j = rng.below(docs.len());
            docs.swap(i, j);
        }
    }
}

/// One to three structure-aware edits of a message.
fn mutate_msg(rng: &mut Rng, fx: &Fixture, msg: &mut Msg) {
    for _ in 0..rng.between(1, 3) {
        if rng.one_in(12) {
            *msg = random_msg(rng, fx);
            continue;
        }
        match msg {
            Msg::Hello {
                scopes,
                catalog_version,
                calendar_version,
                pending,
                links,
                clock_ms: clock,
            } => match rng.below(6) {
                0 => scopes.push(ScopeRoot {
                    scope: scope_code(rng),
                    fp: fp(rng, fx),
                }),
                1 if !scopes.is_empty() => {
                    let i = rng.below(scopes.len());
                    if rng.one_in(2) {
                        scopes[i].fp = fp(rng, fx);
                    } else {
                        scopes[i].scope = scope_code(rng);
                    }
                }
                2 => *catalog_version = rng.u32(),
                3 => {
                    *calendar_version = rng.u32();
                    *pending = rng.u32();
                }
                4 => *clock = clock_ms(rng),
                _ => links.push(LinkReport {
                    code: scope_code(rng),
                    last_seen: text(rng),
                    sessions: rng.u32(),
                    failed_sessions: rng.u32(),
                    refusals: rng.u32(),
                    pending: rng.u32(),
                }),
            },
            Msg::HelloReply {
                differ,
                refused,
                catalog,
                calendar,
                clock_ms: clock,
                downstream,
            } => match rng.below(7) {
                0 | 1 => mutate_answers(rng, fx, differ),
                2 => refused.push(refusal(rng, fx)),
                3 => *catalog = catalog_json(rng),
                4 => *clock = clock_ms(rng),
                5 => downstream.get_or_insert_with(Vec::new).push(NodeCert {
                    code: scope_code(rng),
                    serial: text(rng),
                    revoked: rng.one_in(2),
                    actors: vec![text(rng)],
                }),
                _ => *calendar = Some((rng.u32(), text(rng))),
            },
            Msg::CompareReply { differ } => mutate_answers(rng, fx, differ),
            Msg::Compare { nodes } => {
                if nodes.is_empty() || rng.one_in(5) {
                    nodes.push(NodeQuery {
                        scope: scope_code(rng),
                        prefix: prefix(rng, fx),
                        fp: fp(rng, fx),
                    });
                } else {
                    let i = rng.below(nodes.len());
                    match rng.below(4) {
                        0 => nodes[i].prefix = prefix(rng, fx),
                        1 => nodes[i].fp = fp(rng, fx),
                        2 => nodes[i].scope = scope_code(rng),
                        _ => {
                            let again = nodes[i].clone();
                            nodes.push(again);
                        }
                    }
                }
            }
            Msg::Sync { docs } => mutate_docs(rng, fx, docs),
            Msg::SyncReply { docs, refused } => {
                if rng.one_in(4) {
                    refused.push(refusal(rng, fx));
                } else {
                    mutate_docs(rng, fx, docs);
                }
            }
            Msg::Error { reason } => *reason = mutate_text(rng, reason),
        }
    }
}

// ------------------------------------------------------------------------------------ session feed

/// (entries, probes, bytes of bits) of a bloom filter.
fn bloom_shape(bloom: &BloomFilter) -> Option<(u64, u64, usize)> {
    let b = bloom.to_bytes();
    let mut pos = 0;
    let entries = read_leb128(&b, &mut pos)?;
    let _per_entry = read_leb128(&b, &mut pos)?;
    let probes = read_leb128(&b, &mut pos)?;
    Some((entries, probes, b.len() - pos))
}

/// With `TONGBAN_FUZZ_SKIP_KNOWN=1`, drops the sync messages that hit the known automerge panics, to
/// look for other problems behind them.
fn defuse(msg: &mut Msg) {
    let skip = skip_known();
    let (Msg::Sync { docs } | Msg::SyncReply { docs, .. }) = msg else {
        return;
    };
    for d in docs {
        let hazardous = d
            .msg
            .as_deref()
            .and_then(|b| Message::decode(b).ok())
            .is_some_and(|m| {
                let unsorted = m.heads.windows(2).any(|w| w[0] > w[1]);
                (skip && unsorted)
                    || m.have.iter().any(|h| {
                        bloom_shape(&h.bloom).is_some_and(|(entries, probes, bits)| {
                            skip && entries > 0 && (bits == 0 || probes > 4096)
                        })
                    })
            });
        if hazardous {
            d.msg = None;
        }
    }
}

/// The message as the peer receives it: framed, then decoded, which must give it back unchanged.
fn over_the_wire(msg: Msg) -> Msg {
    let Ok(frame) = encode(&msg) else {
        return msg;
    };
    let mut dec = FrameDecoder::default();
    dec.push(&frame);
    assert_eq!(dec.next_msg(), Ok(Some(msg.clone())), "frame round trip");
    msg
}

/// Cases for which `msg` carries something that decodes as a document or as a sync message with
/// changes: the only ones the hub may change.
fn note_documents(msg: &Msg, touched: &mut BTreeSet<String>) {
    let Msg::Sync { docs } = msg else { return };
    for d in docs {
        if d.want_full || !in_peer_scope(&d.case_no) {
            continue;
        }
        // automerge itself may panic on these bytes; to the oracle that means "not decodable" (the
        // session must then refuse them too).
        let decodable = panic::catch_unwind(AssertUnwindSafe(|| match (&d.full, &d.msg) {
            (Some(full), _) => AutoCommit::load(full).is_ok(),
            (None, Some(m)) => Message::decode(m).is_ok_and(|m| !m.changes.is_empty()),
            (None, None) => false,
        }))
        .unwrap_or(false);
        if decodable {
            touched.insert(d.case_no.clone());
        }
    }
}

/// Sync messages aimed at cases the receiver holds and is talking about, each likely to decode: most
/// of a `Sync` or `SyncReply` dies at its first undecodable document, and this gets past that to the
/// merge and the answer.
fn aimed_docs(rng: &mut Rng, fx: &Fixture, cases: &[String]) -> Vec<DocMsg> {
    (0..rng.between(1, 3))
        .map(|_| {
            let case_no = rng.pick(cases).clone();
            let known = fx.case_hashes.get(&case_no).map_or(&[][..], Vec::as_slice);
            let msg = if rng.one_in(3) {
                let m = rng.pick(&fx.sync_msgs);
                remixed_message(rng, fx, known, m)
            } else {
                crafted_message(rng, fx, known)
            };
            DocMsg::sync(case_no, Some(msg))
        })
        .collect()
}

fn server_input(rng: &mut Rng, fx: &Fixture) -> Msg {
    match rng.below(12) {
        0 => random_msg(rng, fx),
        1 => hello(rng, fx),
        2 => compare(rng, fx),
        3 | 4 => sync(rng, fx),
        5 | 6 => Msg::Sync {
            docs: aimed_docs(rng, fx, &fx.v1_at_hub),
        },
        7 => rng.pick(&fx.transcript).0.clone(),
        8 => rng.pick(&fx.transcript).1.clone(),
        _ => {
            let mut m = rng.pick(&fx.transcript).0.clone();
            mutate_msg(rng, fx, &mut m);
            m
        }
    }
}

fn client_input(rng: &mut Rng, fx: &Fixture) -> Msg {
    match rng.below(12) {
        0 => random_msg(rng, fx),
        1 => hello_reply(rng, fx),
        2 => compare_reply(rng, fx),
        3 | 4 => sync_reply(rng, fx),
        5 | 6 => Msg::SyncReply {
            docs: aimed_docs(rng, fx, &fx.batch_cases),
            refused: Vec::new(),
        },
        7 => Msg::Error { reason: text(rng) },
        8 => rng.pick(&fx.transcript).1.clone(),
        9 => rng.pick(&fx.transcript).0.clone(),
        _ => {
            let mut m = rng.pick(&fx.transcript).1.clone();
            mutate_msg(rng, fx, &mut m);
            m
        }
    }
}

// ------------------------------------------------------------------------------------ frame tests

/// Sanity: the recorded session replays identically on both sides, and sealing reproduces automerge's
/// own chunk checksums (otherwise the sealed mutations would all die at the checksum).
#[test]
fn fixture_replays_deterministically_and_chunks_reseal() {
    let fx = fixture();
    let mut hub = fx.hub.clone();
    let mut server = ServerSession::new(V1);
    for (q, r) in &fx.transcript {
        assert_eq!(&server.handle(&mut hub, q.clone()).unwrap(), r);
    }
    let mut village = fx.village.clone();
    let mut client = ClientSession::new(vec![V1.to_string()]);
    assert_eq!(client.start(&village).unwrap(), fx.transcript[0].0);
    for (i, (_, r)) in fx.transcript.iter().enumerate() {
        let next = client.handle(&mut village, r.clone()).unwrap();
        assert_eq!(next.as_ref(), fx.transcript.get(i + 1).map(|(q, _)| q));
    }
    let mut sealed = 0;
    for chunk in fx.docs.iter().chain(&fx.changes) {
        if let Some((t, data, rest)) = split_chunk(chunk) {
            let mut again = seal(t, data);
            again.extend_from_slice(rest);
            assert_eq!(&again, chunk);
            sealed += 1;
        }
    }
    assert!(sealed > 10);
    assert!(
        fx.sync_msgs.len() > 10 && fx.changes.len() > 10,
        "corpus too small"
    );
}

#[test]
fn random_messages_roundtrip_through_the_decoder_in_any_chunking() {
    let fx = fixture();
    fuzz("frame_roundtrip", 3000, &[], |rng, _| {
        let msgs: Vec<Msg> = (0..rng.between(1, 5))
            .map(|_| random_msg(rng, fx))
            .collect();
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend(encode(m).unwrap());
        }
        let mut dec = FrameDecoder::default();
        let mut out = Vec::new();
        let mut rest = wire.as_slice();
        while !rest.is_empty() {
            let n = chunk_len(rng, rest.len());
            dec.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(m) = dec.next_msg().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(dec.next_msg(), Ok(None));
        assert_eq!(dec.pending(), 0);
        assert!(out == msgs, "{} messages came back different", msgs.len());
    });
}

fn chunk_len(rng: &mut Rng, left: usize) -> usize {
    let n = match rng.below(4) {
        0 => 1,
        1 => rng.between(1, 8),
        2 => rng.between(1, 256),
        _ => left,
    };
    n.min(left)
}

/// Structure-aware edits of a stream of valid frames.
fn mutate_frames(rng: &mut Rng, frames: &mut Vec<Vec<u8>>) {
    for _ in 0..rng.between(1, 4) {
        if frames.is_empty() {
            frames.push(vec![PROTOCOL_VERSION, 0, 0, 0, 0]);
        }
        let i = rng.below(frames.len());
        let donor = rng.pick(frames.as_slice()).clone();
        let any = rng.next() as u32;
        let f = &mut frames[i];
        let payload_len = f.len() - HEADER_LEN;
        let set_len =
            |f: &mut Vec<u8>, len: u32| f[1..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        match rng.below(13) {
            0 => {
                let j = rng.below(f.len());
                f[j] ^= 1 << rng.below(8);
            }
            1 => f[0] = rng.byte(),
            2 => {
                let len = payload_len as u32;
                let new = *rng.pick(&[
                    0,
                    1,
                    len.saturating_sub(1),
                    len + 1,
                    len.saturating_mul(2),
                    MAX_FRAME as u32,
                    MAX_FRAME as u32 + 1,
                    u32::MAX,
                    any,
                ]);
                set_len(f, new);
            }
            3 if payload_len > 0 => {
                let j = HEADER_LEN + rng.below(payload_len);
                f[j] ^= 1 << rng.below(8);
            }
            4 if payload_len > 0 => {
                let j = HEADER_LEN + rng.below(payload_len);
                f[j] = *rng.pick(&[0, 1, 6, 7, 0x7f, 0x80, 0xff]);
            }
            5 => {
                // A huge or unterminated varint (postcard lengths and tags), header kept consistent.
                let j = HEADER_LEN + rng.upto(payload_len);
                let end = (j + 1).min(f.len());
                f.splice(j..end, rng.pick(BIG_VARINTS).iter().copied());
                let len = (f.len() - HEADER_LEN) as u32;
                set_len(f, len);
            }
            6 => {
                f.truncate(HEADER_LEN + rng.upto(payload_len));
                let len = (f.len() - HEADER_LEN) as u32;
                set_len(f, len);
            }
            7 => {
                let n = rng.between(1, 16);
                f.extend(rng.bytes(n));
                let len = (f.len() - HEADER_LEN) as u32;
                set_len(f, len);
            }
            8 => {
                // Another frame's payload under this header (length mismatch).
                f.truncate(HEADER_LEN);
                f.extend_from_slice(&donor[HEADER_LEN..]);
            }
            9 => {
                // Payloads spliced: the head of one message, the tail of another.
                let cut = HEADER_LEN + rng.upto(payload_len);
                let from = HEADER_LEN + rng.upto(donor.len() - HEADER_LEN);
                f.truncate(cut);
                f.extend_from_slice(&donor[from..]);
                let len = (f.len() - HEADER_LEN) as u32;
                set_len(f, len);
            }
            10 => frames.insert(i, donor),
            11 => {
                frames.remove(i);
            }
            _ => {
                let n = rng.upto(300);
                f.truncate(HEADER_LEN);
                f.extend(rng.bytes(n));
                set_len(f, n as u32);
            }
        }
    }
}

#[test]
fn mutated_frames_give_a_message_need_more_or_an_error() {
    let fx = fixture();
    fuzz(
        "frame_mutations",
        4000,
        &[
            ("message", 0.2),
            ("malformed", 0.2),
            ("unknown version", 0.05),
            ("too large", 0.01),
        ],
        |rng, tally| {
            let mut frames: Vec<Vec<u8>> = (0..rng.between(1, 4))
                .map(|_| encode(&random_msg(rng, fx)).unwrap())
                .collect();
            mutate_frames(rng, &mut frames);
            let mut wire: Vec<u8> = frames.concat();
            match rng.below(6) {
                0 => wire.truncate(rng.upto(wire.len())),
                1 => {
                    let at = rng.upto(wire.len());
                    let n = rng.between(1, 12);
                    let junk = rng.bytes(n);
                    wire.splice(at..at, junk);
                }
                _ => {}
            }
            let mut dec = FrameDecoder::default();
            let mut pushed = 0usize;
            let mut rest = wire.as_slice();
            'feed: while !rest.is_empty() {
                let n = chunk_len(rng, rest.len());
                dec.push(&rest[..n]);
                pushed += n;
                rest = &rest[n..];
                loop {
                    match dec.next_msg() {
                        Ok(Some(m)) => {
                            // Whatever decodes is a message like any other: it encodes and comes back.
                            let again = encode(&m).unwrap();
                            let mut d = FrameDecoder::default();
                            d.push(&again);
                            assert_eq!(d.next_msg(), Ok(Some(m)));
                            tally.hit("message");
                        }
                        Ok(None) => break,
                        Err(FrameError::UnknownVersion(v)) => {
                            assert_ne!(v, PROTOCOL_VERSION);
                            tally.hit("unknown version");
                            break 'feed;
                        }
                        Err(FrameError::TooLarge(n)) => {
                            assert!(n > MAX_FRAME, "TooLarge({n}) within the limit");
                            tally.hit("too large");
                            break 'feed;
                        }
                        // The frame is dropped; the decoder stays usable.
                        Err(FrameError::Malformed(_)) => tally.hit("malformed"),
                    }
                    assert!(dec.pending() <= pushed);
                }
                // "Need more" only while a frame is incomplete.
                assert!(
                    dec.pending() < HEADER_LEN + MAX_FRAME,
                    "{} bytes buffered",
                    dec.pending()
                );
            }
        },
    );
}

// ---------------------------------------------------------------------------------- session tests

/// What garbage must never do to the hub: lose a case, change one for which no decodable document
/// arrived, store one outside V1's scope, or store a change by an actor bound to another node.
fn check_hub(fx: &Fixture, hub: &MemReplica, touched: &BTreeSet<String>) {
    let after = held(hub);
    for (no, before) in &fx.hub_cases {
        let now = after
            .get(no)
            .unwrap_or_else(|| panic!("case {no} vanished from the hub"));
        assert!(
            now == before || touched.contains(no),
            "case {no} changed although no decodable document for it was sent"
        );
    }
    for no in after.keys().filter(|n| !fx.hub_cases.contains_key(*n)) {
        assert!(in_peer_scope(no), "case {no} outside V1's scope was stored");
        assert!(
            touched.contains(no),
            "case {no} appeared without a decodable document"
        );
    }
    for no in touched.iter().filter(|n| after.contains_key(*n)) {
        let mut doc = hub
            .load(no)
            .unwrap_or_else(|e| panic!("stored case {no} does not load: {e}"))
            .unwrap();
        let known = fx.hub_foreign.get(no).cloned().unwrap_or_default();
        assert!(
            foreign_changes(&mut doc).is_subset(&known),
            "case {no}: a change by an actor bound to another node was stored"
        );
    }
}

#[test]
fn server_session_survives_hostile_requests_and_keeps_cases_intact() {
    let fx = fixture();
    fuzz(
        "server_session",
        1200,
        &[
            ("answered", 0.5),
            ("answered with sync messages", 0.1),
            ("refused", 0.5),
            ("stored", 0.05),
        ],
        |rng, tally| {
            let mut hub = fx.hub.clone();
            let mut session = ServerSession::new(V1);
            let mut touched = BTreeSet::new();
            // A real session up to a random point, then hostile requests.
            let legit = rng.upto(fx.transcript.len());
            for (q, _) in &fx.transcript[..legit] {
                note_documents(q, &mut touched);
                session.handle(&mut hub, q.clone()).unwrap();
            }
            for _ in 0..rng.between(1, 8) {
                let mut msg = server_input(rng, fx);
                defuse(&mut msg);
                if rng.one_in(2) {
                    msg = over_the_wire(msg);
                }
                note_documents(&msg, &mut touched);
                let before = held(&hub);
                trace_input(&msg);
                match session.handle(&mut hub, msg) {
                    Ok(Msg::SyncReply { docs, .. }) if docs.iter().any(|d| d.msg.is_some()) => {
                        tally.hit("answered with sync messages")
                    }
                    Ok(_) => tally.hit("answered"),
                    Err(_) => tally.hit("refused"),
                }
                if held(&hub) != before {
                    tally.hit("stored");
                }
            }
            check_hub(fx, &hub, &touched);
        },
    );
}

/// Documents arriving whole (`DocMsg::full`) for new and held cases, mutated inside their chunk with
/// the checksum recomputed: what automerge's document decoder gets from a hostile peer. (The general
/// test above reaches this too, but rarely; this one makes a few thousand such loads per run.)
#[test]
fn server_survives_corrupt_whole_documents() {
    let fx = fixture();
    fuzz(
        "server_documents",
        2500,
        &[("decodable", 0.1), ("stored", 0.03)],
        |rng, tally| {
            let mut hub = fx.hub.clone();
            let mut session = ServerSession::new(V1);
            let case_no = if rng.one_in(2) {
                format!("{V1}-20261127-{:04}", 100 + rng.below(100))
            } else {
                rng.pick(&fx.v1_at_hub).clone()
            };
            // Mostly corrupt documents; sometimes an intact one (honest or forged), so that the
            // merge, the actor check and the store are exercised too.
            let mut full = rng.pick(&fx.docs).clone();
            if !rng.one_in(4) {
                for _ in 0..rng.between(1, 2) {
                    full = mutate_sealed(rng, &full, &fx.changes);
                }
            }
            let msg = Msg::Sync {
                docs: vec![DocMsg {
                    case_no,
                    msg: None,
                    full: Some(full),
                    want_full: false,
                }],
            };
            let mut touched = BTreeSet::new();
            note_documents(&msg, &mut touched);
            if !touched.is_empty() {
                tally.hit("decodable");
            }
            trace_input(&msg);
            let _ = session.handle(&mut hub, msg);
            if held(&hub) != fx.hub_cases {
                tally.hit("stored");
            }
            check_hub(fx, &hub, &touched);
        },
    );
}

/// Sync messages for held cases whose change chunks are mutated inside with the checksum recomputed:
/// what automerge's change decoder and op-set insertion get from a hostile peer.
#[test]
fn server_survives_corrupt_changes() {
    let fx = fixture();
    fuzz(
        "server_changes",
        2500,
        &[("answered", 0.3), ("stored", 0.03)],
        |rng, tally| {
            let mut hub = fx.hub.clone();
            let mut session = ServerSession::new(V1);
            let case_no = rng.pick(&fx.v1_at_hub).clone();
            // Changes that follow this case (honest or forged) or any other, mostly corrupted.
            let changes = (0..rng.between(1, 3))
                .map(|_| {
                    let c = if rng.one_in(2) {
                        rng.pick(&fx.next_changes[&case_no])
                    } else {
                        rng.pick(&fx.changes)
                    };
                    if rng.one_in(3) {
                        c.clone()
                    } else {
                        mutate_sealed(rng, c, &fx.changes)
                    }
                })
                .collect();
            let heads = if rng.one_in(2) {
                fx.case_hashes[&case_no].clone()
            } else {
                Vec::new()
            };
            let payload = RawMessage {
                version: 0x42,
                heads,
                need: Vec::new(),
                have: Vec::new(),
                changes,
                flags: None,
            }
            .encode();
            let msg = Msg::Sync {
                docs: vec![DocMsg::sync(case_no, Some(payload))],
            };
            let mut touched = BTreeSet::new();
            note_documents(&msg, &mut touched);
            trace_input(&msg);
            if session.handle(&mut hub, msg).is_ok() {
                tally.hit("answered");
            }
            if held(&hub) != fx.hub_cases {
                tally.hit("stored");
            }
            check_hub(fx, &hub, &touched);
        },
    );
}

#[test]
fn client_session_survives_hostile_responses() {
    let fx = fixture();
    fuzz(
        "client_session",
        1000,
        &[
            ("continued", 0.1),
            ("finished", 0.03),
            ("refused", 0.5),
            ("stored", 0.015),
        ],
        |rng, tally| {
            let mut village = fx.village.clone();
            let mut session = ClientSession::new(vec![V1.to_string()]).with_pending(rng.u32());
            session.start(&village).unwrap();
            // The real responses up to a random point (often one where the client waits for a
            // SyncReply), then hostile ones.
            let legit = if rng.one_in(2) {
                *rng.pick(&fx.awaiting_sync)
            } else {
                rng.upto(fx.transcript.len())
            };
            for (_, r) in &fx.transcript[..legit] {
                session.handle(&mut village, r.clone()).unwrap();
            }
            for _ in 0..rng.between(1, 6) {
                let mut msg = client_input(rng, fx);
                defuse(&mut msg);
                if rng.one_in(2) {
                    msg = over_the_wire(msg);
                }
                let before = held(&village);
                trace_input(&msg);
                match session.handle(&mut village, msg) {
                    Ok(Some(_)) => tally.hit("continued"),
                    Ok(None) => tally.hit("finished"),
                    Err(_) => tally.hit("refused"),
                }
                if held(&village) != before {
                    tally.hit("stored");
                }
            }
            // Nothing the village held is lost, and everything it stored since still loads.
            let after = held(&village);
            for no in fx.village_cases.keys() {
                assert!(
                    after.contains_key(no),
                    "case {no} vanished from the village"
                );
            }
            for (no, digest) in &after {
                if fx.village_cases.get(no) != Some(digest) {
                    assert!(
                        village.load(no).is_ok_and(|d| d.is_some()),
                        "stored case {no} does not load"
                    );
                }
            }
        },
    );
}

/// The 10-byte sync message found by the fuzzers: one `Have` whose bloom filter claims an entry but has
/// zero bits per entry. automerge 0.12 accepts it, and `generate_sync_message` then computes
/// `hash % (8 * bits.len())` = `% 0` in `BloomFilter::get_probes` (sync/bloom.rs:74) for every change
/// of the document: a panic, reachable by any peer through `ServerSession::handle` (and by a server
/// through `ClientSession::handle`).
const ZERO_BIT_BLOOM_MSG: [u8; 10] = [
    0x42, // sync message, v1
    0,    // heads: none
    0,    // need: none
    1,    // one Have
    0,    // last_sync: none
    3,    // bloom: 3 bytes
    1,    // num_entries = 1
    0,    // num_bits_per_entry = 0
    0,    // num_probes = 0
    0,    // changes: none
];

/// A 15-byte sync message whose bloom filter asks for 2^32 - 1 probes: automerge 0.12 calls
/// `Vec::with_capacity(num_probes)` in `BloomFilter::get_probes` (16 GiB) and then loops that many
/// times. Under a memory limit the process aborts ("memory allocation of 17179869180 bytes failed");
/// without one it takes 16 GiB and minutes of CPU per change. Not a panic: no test can catch it.
const HUGE_PROBES_BLOOM_MSG: [u8; 15] = [
    0x42, 0, 0, 1, 0, 8, // as above, bloom of 8 bytes:
    1, 8, // num_entries = 1, num_bits_per_entry = 8 (one byte of bits)
    0xff, 0xff, 0xff, 0xff, 0x0f, // num_probes = u32::MAX
    0xaa, // the bits
    0,    // changes: none
];

fn server_outcome(msg: &[u8]) -> Result<String, String> {
    install_panic_hook();
    let fx = fixture();
    let mut hub = fx.hub.clone();
    let mut session = ServerSession::new(V1);
    let req = Msg::Sync {
        docs: vec![DocMsg::sync(
            format!("{V1}-20261127-0003"),
            Some(msg.to_vec()),
        )],
    };
    panic::catch_unwind(AssertUnwindSafe(|| {
        session
            .handle(&mut hub, req)
            .map_or_else(|e| e.to_string(), |m| m.kind().to_string())
    }))
    .map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_default()
    })
}

#[test]
fn server_survives_a_bloom_filter_without_bits() {
    let outcome = server_outcome(&ZERO_BIT_BLOOM_MSG);
    assert!(
        outcome.is_ok(),
        "ServerSession::handle panicked on Sync {{ docs: [DocMsg::sync(\"{V1}-20261127-0003\", \
         Some({ZERO_BIT_BLOOM_MSG:?}))] }}: {}",
        outcome.unwrap_err()
    );
}

#[test]
fn client_survives_a_bloom_filter_without_bits() {
    install_panic_hook();
    let fx = fixture();
    let mut village = fx.village.clone();
    let mut session = ClientSession::new(vec![V1.to_string()]);
    session.start(&village).unwrap();
    // Replay until the client has sent its first Sync, then answer it with the message.
    let first_sync = fx
        .transcript
        .iter()
        .position(|(q, _)| matches!(q, Msg::Sync { .. }))
        .unwrap();
    for (_, r) in &fx.transcript[..first_sync] {
        session.handle(&mut village, r.clone()).unwrap();
    }
    let case_no = format!("{V1}-20261127-0001");
    let reply = Msg::SyncReply {
        docs: vec![DocMsg::sync(
            case_no.clone(),
            Some(ZERO_BIT_BLOOM_MSG.to_vec()),
        )],
        refused: Vec::new(),
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        session.handle(&mut village, reply).map(|_| ())
    }));
    assert!(
        outcome.is_ok(),
        "ClientSession::handle panicked on SyncReply {{ docs: [DocMsg::sync(\"{case_no}\", \
         Some({ZERO_BIT_BLOOM_MSG:?}))] }}: {}",
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_default()
    );
}

/// A sync message naming a case's own changes as its heads, but not in sorted order (found by the
/// fuzzers). automerge 0.12 takes the heads as the shared heads and puts them in the `Have` of its
/// answer; `Message::encode` then fails `debug_assert!(hashes sorted)` (sync.rs:820). Debug builds only:
/// in release the answer goes out with unsorted hashes. Reachable by any peer through
/// `ServerSession::handle` for any case of two or more changes it knows the hashes of.
#[test]
fn server_survives_heads_out_of_order() {
    install_panic_hook();
    let fx = fixture();
    let mut hub = fx.hub.clone();
    let case_no = format!("{V1}-20261127-0001");
    let mut heads = fx.case_hashes[&case_no].clone();
    assert!(heads.len() >= 2);
    heads.reverse();
    let msg = RawMessage {
        version: 0x42,
        heads,
        need: Vec::new(),
        have: Vec::new(),
        changes: Vec::new(),
        flags: None,
    }
    .encode();
    let mut session = ServerSession::new(V1);
    let req = Msg::Sync {
        docs: vec![DocMsg::sync(case_no.clone(), Some(msg.clone()))],
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        session.handle(&mut hub, req).map(|m| m.kind())
    }));
    assert!(
        outcome.is_ok(),
        "ServerSession::handle panicked on Sync {{ docs: [DocMsg::sync(\"{case_no}\", Some({msg:?}))] }}: {}",
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_default()
    );
}

/// Rewrites the header fields of a change chunk with one dependency (`deps`: count, 32-byte hash;
/// `actor`: length, 16 bytes; `seq`; `start_op`) and reseals it.
fn forge_change(chunk: &[u8], actor: Option<[u8; 16]>, start_op: Option<u64>) -> Vec<u8> {
    let (chunk_type, data, _) = split_chunk(chunk).unwrap();
    assert_eq!(
        (data[0], data[33]),
        (1, 16),
        "one dependency, 16-byte actor"
    );
    let mut out = data[..34].to_vec();
    out.extend_from_slice(&actor.unwrap_or_else(|| data[34..50].try_into().unwrap()));
    let mut pos = 50;
    let seq = read_leb128(data, &mut pos).unwrap();
    leb128(seq, &mut out);
    let old_start = read_leb128(data, &mut pos).unwrap();
    leb128(start_op.unwrap_or(old_start), &mut out);
    out.extend_from_slice(&data[pos..]);
    seal(chunk_type, &out)
}

/// Sends one sync message carrying `change` for `case_no` to a fresh session over the hub fixture;
/// returns the hub afterwards, or the panic.
fn send_change(case_no: &str, change: &[u8]) -> Result<MemReplica, String> {
    install_panic_hook();
    let msg = RawMessage {
        version: 0x42,
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![change.to_vec()],
        flags: None,
    }
    .encode();
    let mut hub = fixture().hub.clone();
    let mut session = ServerSession::new(V1);
    let req = Msg::Sync {
        docs: vec![DocMsg::sync(case_no.to_string(), Some(msg))],
    };
    panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = session.handle(&mut hub, req);
    }))
    .map(|()| hub)
    .map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_default()
    })
}

/// The honest next change of case #2 (V1's actor, seq 2) with its actor id replaced by one the hub has
/// never seen (found by the fuzzers as `batch.rs:1121`, the commonest of the automerge panics below).
/// automerge 0.12 panics in `import_ops` (`lookup_actor(..).unwrap()`, op_set2/change/batch.rs:1121)
/// instead of refusing a change whose actor's earlier changes it lacks. Any peer in scope can send it.
#[test]
fn server_survives_a_change_by_an_actor_it_has_not_seen() {
    let case_no = format!("{V1}-20261127-0002");
    let change = forge_change(&fixture().next_changes[&case_no][0], Some([9; 16]), None);
    let outcome = send_change(&case_no, &change);
    assert!(
        outcome.is_ok(),
        "ServerSession::handle panicked on one sync message for {case_no} carrying the change {} \
         ({} bytes): {}",
        hex(&change),
        change.len(),
        outcome.err().unwrap_or_default()
    );
}

/// A change with no operations whose `start_op` (1) lies below its dependencies' operations (found by
/// the fuzzers, then made by hand here). automerge 0.12 applies it (the heads move), but a document
/// holding it saves to bytes that do not load: "error inflating document chunk ops: max_op is lower
/// than start_op". The hub stores that merged document, and the case no longer loads: every later
/// session touching it fails. Any peer in scope can do this to any case it knows the heads of (it
/// receives them in every normal sync).
#[test]
fn server_never_stores_a_document_it_cannot_load() {
    let fx = fixture();
    let case_no = format!("{V1}-20261127-0002");
    let mut held = fx.hub.load(&case_no).unwrap().unwrap();
    assert_eq!(held.get_heads().len(), 1);
    let mut fork = held.fork();
    fork.set_actor(ActorId::from([9u8; 16].as_slice()));
    let hash = fork.empty_change(automerge::transaction::CommitOptions::default());
    let empty = fork.get_change_by_hash(&hash).unwrap().raw_bytes().to_vec();
    let change = forge_change(&empty, None, Some(1));
    let hub = send_change(&case_no, &change).unwrap();
    let stored = hub.load(&case_no);
    assert!(
        stored.is_ok(),
        "after one sync message carrying the change {} ({} bytes), case {case_no} no longer loads \
         at the hub: {}",
        hex(&change),
        change.len(),
        stored.err().map(|e| e.to_string()).unwrap_or_default()
    );
}

/// Without the sync core's bound on bloom filters this aborts the whole process (a 16 GiB allocation
/// inside automerge); with it, the message is refused.
#[test]
fn server_survives_a_bloom_filter_with_a_huge_probe_count() {
    let outcome = server_outcome(&HUGE_PROBES_BLOOM_MSG);
    assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
}

// ----------------------------------------------------------------------------------- intake tests

fn intake_catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::builtin().unwrap())
}

/// The body `tests/src/lib.rs::valid_case_body` posts.
fn valid_body(catalog: &Catalog) -> Value {
    let item = &catalog.items[0];
    json!({
        "item_code": item.code,
        "applicant": {
            "name": "王秀英",
            "id_number": "11010519491231002X",
            "phone": "13800271234"
        },
        "materials": item.materials.iter().filter(|m| m.required).map(|m| m.id.clone()).collect::<Vec<_>>(),
        "delivery": "代办员送达",
        "note": "测试"
    })
}

fn random_date(rng: &mut Rng) -> NaiveDate {
    match rng.below(8) {
        0 => NaiveDate::MIN,
        1 => NaiveDate::MAX,
        2 => NaiveDate::from_ymd_opt(1880, 1, 1).unwrap(),
        3 => today(),
        _ => NaiveDate::from_num_days_from_ce_opt(600_000 + rng.below(200_000) as i32).unwrap(),
    }
}

const JSON_KEYS: &[&str] = &[
    "item_code",
    "applicant",
    "materials",
    "delivery",
    "note",
    "kind",
    "name",
    "id_number",
    "phone",
    "credit_code",
    "legal_rep",
    "address",
    "extra",
    "",
    "__proto__",
    "ITEM_CODE",
    "item_code\u{0}",
];

fn random_json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 6 } else { 10 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => json!(*rng.pick(&[i64::MIN, -1, 0, 1, 11, 18, i64::MAX])),
        3 => match rng.below(4) {
            0 => json!(u64::MAX),
            1 => json!(f64::MAX),
            2 => json!(-0.0),
            _ => json!(1e-300),
        },
        4 | 5 => Value::String(text(rng)),
        6 => Value::Array(
            (0..rng.upto(4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        7 => Value::Object(
            (0..rng.upto(4))
                .map(|_| {
                    let k = if rng.one_in(2) {
                        rng.pick(JSON_KEYS).to_string()
                    } else {
                        text(rng)
                    };
                    (k, random_json(rng, depth + 1))
                })
                .collect(),
        ),
        8 if rng.one_in(8) => Value::String(
            rng.pick(&["中", "a", "\u{0}", "🦀"])
                .repeat(rng.between(1000, 50_000)),
        ),
        _ => (0..rng.between(10, 300)).fold(json!("x"), |v, _| {
            if rng.one_in(2) {
                Value::Array(vec![v])
            } else {
                Value::Object([("applicant".to_string(), v)].into_iter().collect())
            }
        }),
    }
}

/// One structural edit somewhere in the tree.
/// One structural edit somewhere in the tree; mostly edits that keep the shape (so that the result
/// still parses as an intake and reaches validation), sometimes ones that break it.
fn mutate_json(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(map) if !map.is_empty() && !rng.one_in(12) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(12) {
                0..=8 => mutate_json(rng, map.get_mut(&k).unwrap()),
                9 => {
                    map.remove(&k);
                }
                10 => {
                    map.insert(k, random_json(rng, 0));
                }
                _ => {
                    let k = rng.pick(JSON_KEYS).to_string();
                    map.insert(k, random_json(rng, 0));
                }
            }
        }
        Value::Array(items) if !items.is_empty() && !rng.one_in(4) => match rng.below(4) {
            0 | 1 => {
                let i = rng.below(items.len());
                mutate_json(rng, &mut items[i]);
            }
            2 => {
                items.remove(rng.below(items.len()));
            }
            _ => {
                let again = items[rng.below(items.len())].clone();
                items.push(if rng.one_in(2) {
                    again
                } else {
                    random_json(rng, 0)
                });
            }
        },
        Value::String(s) if !rng.one_in(6) => {
            *s = if rng.one_in(2) {
                mutate_text(rng, s)
            } else {
                text(rng)
            }
        }
        _ => *v = random_json(rng, 0),
    }
}

/// Lone continuation bytes, overlong forms, surrogates, truncated sequences.
const INVALID_UTF8: &[&[u8]] = &[&[0xff], &[0xc0, 0x80], &[0xed, 0xa0, 0x80], &[0xe4, 0xb8]];

/// Edits of the JSON text itself: broken escapes, lone surrogates, numbers out of every range, deep
/// nesting, duplicate keys, invalid UTF-8.
fn mutate_json_text(rng: &mut Rng, b: &mut Vec<u8>) {
    const TOKENS: &[&str] = &[
        "\"",
        "\\",
        "\\u",
        "\\ud800",
        "\"\\udc00\\ud800\"",
        "1e999999",
        "-",
        "18446744073709551616",
        "-9223372036854775809",
        "0.0000000000000000000000000001e-400",
        "nul",
        "tru",
        ",",
        ":",
        "{",
        "}",
        "[",
        "]",
        "\u{0}",
        "\u{feff}",
        "\"\\u0000\"",
        ",\"note\":\"dup\"",
        ",\"item_code\":null",
    ];
    for _ in 0..rng.between(1, 3) {
        let pos = rng.upto(b.len());
        match rng.below(7) {
            0 | 1 => {
                let t = rng.pick(TOKENS).as_bytes().to_vec();
                b.splice(pos..pos, t);
            }
            2 => {
                let n = *rng.pick(&[127usize, 128, 129, 5000]);
                let (open, close) = if rng.one_in(2) {
                    ("[", "]")
                } else {
                    ("{\"a\":", "}")
                };
                let nested = format!("{}1{}", open.repeat(n), close.repeat(n));
                b.splice(pos..pos, nested.into_bytes());
            }
            3 => {
                let invalid = *rng.pick(INVALID_UTF8);
                b.splice(pos..pos, invalid.iter().copied());
            }
            _ => mutate_bytes(rng, b, &[]),
        }
    }
}

/// No panic, and what passes is what the rules promise. Returns whether it passed.
fn check_intake(catalog: &Catalog, req: &IntakeRequest, date: NaiveDate) -> bool {
    match case::validate_intake(catalog, req, date) {
        Ok(v) => {
            let a = &v.applicant;
            assert_eq!(
                validate::check_mobile(&a.phone).as_deref(),
                Some(a.phone.as_str())
            );
            assert!(DELIVERY_METHODS.contains(&v.delivery.as_str()));
            assert!(v.note.chars().count() <= 500 && a.address.chars().count() <= 200);
            assert!(!a.name.is_empty() && a.name.chars().count() <= 50);
            if a.kind == "1" {
                assert_eq!(a.cert_no, a.id_number);
                assert_eq!(
                    validate::check_id_number(&a.id_number, date),
                    Ok(a.id_number.clone())
                );
            } else {
                assert_eq!(
                    validate::check_credit_code(&a.cert_no),
                    Ok(a.cert_no.clone())
                );
            }
            for m in v.item.materials.iter().filter(|m| m.required) {
                assert!(
                    v.collected.contains(&m.id),
                    "required {} not collected",
                    m.id
                );
            }
            true
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            false
        }
    }
}

#[test]
fn intake_json_never_panics() {
    let catalog = intake_catalog();
    let base = valid_body(catalog);
    let req: IntakeRequest = serde_json::from_value(base.clone()).unwrap();
    assert!(case::validate_intake(catalog, &req, today()).is_ok());
    fuzz(
        "intake_json",
        10000,
        &[("parsed", 0.15), ("accepted", 0.02)],
        |rng, tally| {
            let mut body = base.clone();
            if rng.one_in(16) {
                body = random_json(rng, 0);
            }
            let edits = if rng.one_in(3) { rng.between(2, 4) } else { 1 };
            for _ in 0..edits {
                mutate_json(rng, &mut body);
            }
            let mut bytes = serde_json::to_vec(&body).unwrap();
            if rng.one_in(4) {
                mutate_json_text(rng, &mut bytes);
            }
            let date = random_date(rng);
            if let Ok(req) = serde_json::from_slice::<IntakeRequest>(&bytes) {
                tally.hit("parsed");
                if check_intake(catalog, &req, date) {
                    tally.hit("accepted");
                }
            }
            if let Ok(s) = std::str::from_utf8(&bytes) {
                if let Ok(req) = serde_json::from_str::<IntakeRequest>(s) {
                    check_intake(catalog, &req, date);
                }
            }
        },
    );
}

// Near-valid field values, so the validators' later branches (dates, checksums) get exercised.

/// A valid ID number of someone born in the 20th century.
fn valid_id_number(rng: &mut Rng) -> String {
    let region = *rng.pick(&["110105", "420222", "420281"]);
    let birth = NaiveDate::from_num_days_from_ce_opt(693_596 + rng.below(36_500) as i32).unwrap();
    let first17 = format!("{region}{}{}", birth.format("%Y%m%d"), digits(rng, 3));
    validate::id_with_check_char(&first17).unwrap()
}

fn valid_credit_code(rng: &mut Rng) -> String {
    const CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [usize; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let values: Vec<usize> = (0..17).map(|_| rng.below(31)).collect();
    let sum: usize = values.iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    let mut code: String = values.iter().map(|&v| char::from(CHARSET[v])).collect();
    code.push(char::from(CHARSET[(31 - sum % 31) % 31]));
    code
}

fn id_number(rng: &mut Rng) -> String {
    let region = *rng.pick(&["110105", "420222", "000000", "999999"]);
    let birth = match rng.below(4) {
        0 => (*rng.pick(&[
            "20260230", "19000229", "20000229", "00000101", "99991231", "20261128",
        ]))
        .to_string(),
        _ => random_date(rng).format("%Y%m%d").to_string(),
    };
    let first17 = format!("{region}{birth}{}", digits(rng, 3));
    let valid = validate::id_with_check_char(&first17).unwrap_or(first17);
    match rng.below(5) {
        0 => valid,
        1 => format!(" {} ", valid.to_lowercase()),
        2 | 3 => mutate_text(rng, &valid),
        _ => text(rng),
    }
}

fn credit_code(rng: &mut Rng) -> String {
    let code = valid_credit_code(rng);
    match rng.below(5) {
        0 => code,
        1 => code.to_lowercase(),
        2 | 3 => mutate_text(rng, &code),
        _ => text(rng),
    }
}

fn phone(rng: &mut Rng) -> String {
    let mut p = format!("1{}", digits(rng, 10));
    for _ in 0..rng.upto(3) {
        let at = rng.upto(p.len());
        p.insert(at, *rng.pick(&[' ', '-']));
    }
    match rng.below(4) {
        0 | 1 => p,
        2 => mutate_text(rng, &p),
        _ => text(rng),
    }
}

fn field(rng: &mut Rng, near: &[&str]) -> String {
    match rng.below(4) {
        0 => rng.pick(near).to_string(),
        1 => {
            let s = rng.pick(near);
            mutate_text(rng, s)
        }
        _ => text(rng),
    }
}

#[test]
fn intake_validation_never_panics_on_any_field() {
    let catalog = intake_catalog();
    fuzz(
        "intake_fields",
        20000,
        &[("accepted", 0.15), ("refused", 0.3)],
        |rng, tally| {
            // A valid intake (a person or an organisation), then up to three fields made hostile.
            let item = rng.pick(&catalog.items);
            let organisation = rng.one_in(3);
            let mut materials: Vec<String> = item
                .materials
                .iter()
                .filter(|m| m.required || rng.one_in(2))
                .map(|m| m.id.clone())
                .collect();
            if rng.one_in(4) && !materials.is_empty() {
                let again = rng.pick(&materials).clone();
                materials.push(again);
            }
            let mut req = IntakeRequest {
                item_code: item.code.clone(),
                applicant: ApplicantInput {
                    kind: if organisation {
                        rng.pick(&["2", "3", "4", "5", "6"]).to_string()
                    } else {
                        rng.pick(&["", "1"]).to_string()
                    },
                    name: if organisation {
                        "某某有限公司"
                    } else {
                        "王秀英"
                    }
                    .into(),
                    id_number: if organisation && rng.one_in(2) {
                        String::new()
                    } else {
                        valid_id_number(rng)
                    },
                    phone: format!("1{}", digits(rng, 10)),
                    credit_code: if organisation {
                        valid_credit_code(rng)
                    } else {
                        String::new()
                    },
                    legal_rep: if organisation { "陈法人" } else { "" }.into(),
                    address: "湖北省黄石市阳新县兴国镇".into(),
                },
                materials,
                delivery: rng.pick(&DELIVERY_METHODS).to_string(),
                note: rng.pick(&["", "测试"]).to_string(),
            };
            let a = &mut req.applicant;
            for _ in 0..rng.upto(3) {
                match rng.below(12) {
                    0 => req.item_code = field(rng, &[item.code.as_str(), "", "NOPE"]),
                    1 => {
                        a.kind = field(rng, &["", "1", "2", "6", "0", "7", " 2 ", "１", "12"]);
                    }
                    2 => a.name = field(rng, &["王秀英", "某某有限公司", ""]),
                    3 | 4 => a.id_number = id_number(rng),
                    5 => a.phone = phone(rng),
                    6 => a.credit_code = credit_code(rng),
                    7 => a.legal_rep = field(rng, &["陈法人", ""]),
                    8 => a.address = field(rng, &["湖北省黄石市阳新县兴国镇", ""]),
                    9 => {
                        req.delivery =
                            field(rng, &["窗口领取", "邮寄", "代办员送达", "", "飞鸽传书"])
                    }
                    10 => req.note = field(rng, &["测试", ""]),
                    _ => {
                        if rng.one_in(2) {
                            req.materials.clear();
                        }
                        for _ in 0..rng.count(3, 40) {
                            req.materials.push(text(rng));
                        }
                    }
                }
            }
            let today = if rng.one_in(4) {
                random_date(rng)
            } else {
                today()
            };
            if check_intake(catalog, &req, today) {
                tally.hit("accepted");
            } else {
                tally.hit("refused");
            }
        },
    );
}

#[test]
fn validators_never_panic_and_keep_their_promises() {
    fuzz("validators", 50000, &[], |rng, _| {
        let today = random_date(rng);
        let s = match rng.below(7) {
            0 => id_number(rng),
            1 => credit_code(rng),
            2 => phone(rng),
            3 => field(rng, SCOPES),
            4 => field(rng, JUNK_CASE_NOS),
            5 => field(
                rng,
                &["420222100201-20261127-0001", "420222103-20261127-12345"],
            ),
            _ => text(rng),
        };
        if let Ok(id) = validate::check_id_number(&s, today) {
            assert_eq!(id, s.trim().to_ascii_uppercase());
            assert_eq!(id.len(), 18);
            assert_eq!(validate::check_id_number(&id, today), Ok(id.clone()));
        }
        if let Some(id) = validate::id_with_check_char(&s) {
            assert_eq!(id.len(), 18);
            let far = NaiveDate::MAX;
            assert!(matches!(
                validate::check_id_number(&id, far),
                Ok(_) | Err(validate::IdNumberProblem::BirthDate)
            ));
        }
        if let Ok(code) = validate::check_credit_code(&s) {
            assert_eq!(code.len(), 18);
            assert_eq!(validate::check_credit_code(&code), Ok(code.clone()));
        }
        if let Some(p) = validate::check_mobile(&s) {
            assert!(p.len() == 11 && p.starts_with('1') && p.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(validate::check_mobile(&p), Some(p.clone()));
        }
        if let Ok(tier) = validate::check_division_code(&s) {
            let len = match tier {
                tongban_shared::Tier::County => 6,
                tongban_shared::Tier::Township => 9,
                tongban_shared::Tier::Village => 12,
            };
            assert_eq!(s.len(), len);
        }
        if let Ok(name) = validate::check_person_name(&s, "applicant.name", "申请人姓名") {
            assert_eq!(name, s.trim());
            assert!(name.chars().count() <= 50 && !name.chars().any(char::is_control));
        }
        if case::is_case_no(&s) {
            assert!(
                scope::scope_of(&s).is_some(),
                "{s:?} is a case number without a scope"
            );
        }
        if let Some(code) = scope::scope_of(&s) {
            assert!(s.starts_with(code));
            assert!(scope::may_hold(code, code) && scope::may_hold(&code[..6], code));
        }
        let _ = bucket(&s);
        let _ = case::format_case_no(&s, today, rng.u32());
    });
}
