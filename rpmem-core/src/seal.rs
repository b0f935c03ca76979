//! The TCP data path's handshake and record layer: keys derived from the
//! session secret (which only ever travels over ssh), both ends proving
//! they know them before a lane is bound, and every byte after the
//! handshake sealed with AES-256-GCM in bounded records.
//!
//! Nothing here is new cryptography: HKDF-SHA256 (RustCrypto `hkdf`,
//! `sha2`), HMAC-SHA256 (`hmac`, constant-time verification) and
//! AES-256-GCM (RustCrypto `aes-gcm` in the no_std, allocator-free build;
//! `ring`'s, 6x faster, with the `std` feature: docs/BENCHMARKS.md), composed
//! the way TLS 1.3 with a pre-shared key composes them. The core draws no
//! randomness: the drivers pass fresh nonces in (`getrandom` in rpmem and
//! rpmemd, the seed in the simulator).
//!
//! ```text
//! client hello (client -> server, 48 bytes)
//!  0  4  magic "RPT2"
//!  4  2  version (2)
//!  6  2  mode: 0 sealed, 1 plaintext
//!  8  4  lane
//! 12  4  reserved, 0
//! 16 32  client nonce (fresh random)
//!
//! server hello (server -> client, 72 bytes)
//!  0  4  magic "RPT2"
//!  4  4  status: 0 ok, 1 bad version, 3 bad lane, 4 mode refused
//!  8 32  server nonce (fresh random; zero when status != 0)
//! 40 32  server proof = HMAC-SHA256(k_sconf, client hello || bytes 0..40)
//!        (zero when status != 0)
//!
//! client proof (client -> server, 32 bytes)
//!  0 32  HMAC-SHA256(k_cconf, client hello || server hello)
//!
//! then the 8-byte hello answer of wire::tcp (status of the lane claim).
//!
//! keys: HKDF-SHA256(salt = client nonce || server nonce, ikm = secret,
//!   info = "rpmem tcp lane v2" || lane (u32 LE) || mode (u8)), 128 bytes:
//!   k_c2s | k_s2c | k_cconf | k_sconf
//!
//! record (sealed mode, each direction after the hello answer)
//!  0  4  n: plaintext bytes, 1..=65536 (u32 LE; additional data)
//!  4  n  AES-256-GCM ciphertext
//! 4+n 16 tag
//! nonce: 0u32 LE || record counter (u64 LE), per direction, from 0
//! ```

#[cfg(not(feature = "std"))]
use aes_gcm::aead::{AeadInPlace, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `N` fresh random bytes from the operating system's random source
/// (`getrandom(2)` on Linux, through ring's `SystemRandom`): the drivers'
/// handshake nonces and rpmemd's session secret. The core itself never
/// draws randomness; this is for the std drivers only.
#[cfg(feature = "std")]
pub fn fresh_random<const N: usize>() -> std::io::Result<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| std::io::Error::other("the system's random source (getrandom) failed"))?;
    Ok(out)
}

/// Magic of the client hello and the server hello.
pub const MAGIC: [u8; 4] = *b"RPT2";
/// Handshake version this code speaks.
pub const VERSION: u16 = 2;
/// Length of the session secret.
pub const SECRET_LEN: usize = 32;
/// Length of each side's nonce.
pub const NONCE_LEN: usize = 32;
/// Length of a proof (HMAC-SHA256).
pub const PROOF_LEN: usize = 32;
/// Length of the client hello.
pub const HELLO_LEN: usize = 48;
/// Length of the server hello.
pub const SERVER_HELLO_LEN: usize = 72;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 4;
/// Length of a record's tag.
pub const TAG_LEN: usize = 16;
/// Most plaintext bytes in one record.
pub const MAX_RECORD: usize = 64 * 1024;
/// Most bytes of one record on the wire.
pub const MAX_RECORD_WIRE: usize = RECORD_HEADER_LEN + MAX_RECORD + TAG_LEN;
/// Bytes a receive buffer for [`Inbound`] must have at least.
pub const INBOUND_BUF_LEN: usize = 2 * MAX_RECORD_WIRE;

const KEY_LEN: usize = 32;
const INFO: &[u8] = b"rpmem tcp lane v2";

/// Server hello status: accepted so far, the client's proof is due.
pub const STATUS_OK: u32 = 0;
/// Server hello status: another version.
pub const STATUS_BAD_VERSION: u32 = 1;
/// Server hello status: no such lane in the session.
pub const STATUS_BAD_LANE: u32 = 3;
/// Server hello status: the lane mode (sealed or plaintext) is not the
/// session's.
pub const STATUS_MODE_REFUSED: u32 = 4;

/// Whether a lane's records are sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LaneMode {
    /// Every byte after the handshake is an AES-256-GCM record (default).
    Sealed,
    /// Frames go in the clear after the handshake (explicit choice of both
    /// sides); the handshake still proves the key.
    Plaintext,
}

impl LaneMode {
    fn code(self) -> u16 {
        match self {
            LaneMode::Sealed => 0,
            LaneMode::Plaintext => 1,
        }
    }

    fn from_code(c: u16) -> Option<LaneMode> {
        match c {
            0 => Some(LaneMode::Sealed),
            1 => Some(LaneMode::Plaintext),
            _ => None,
        }
    }

    /// `"sealed"` or `"plaintext"`.
    pub fn name(self) -> &'static str {
        match self {
            LaneMode::Sealed => "sealed",
            LaneMode::Plaintext => "plaintext",
        }
    }
}

/// A failed handshake or record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Hello bytes that are not this handshake.
    #[error("{what}: {why}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// The server refused the client hello.
    #[error("rpmemd refused the lane's hello: {}", status_name(*status))]
    Refused {
        /// The server hello's status.
        status: u32,
    },
    /// The server's proof does not verify: it does not know the session
    /// secret (an impostor), or the hello was changed on the way.
    #[error("rpmemd's handshake proof does not verify: the answering side does not know the session secret, or the hello was changed on the way")]
    ServerProof,
    /// The client's proof does not verify.
    #[error("the client's handshake proof does not verify: wrong session secret, a replayed hello, or bytes changed on the way")]
    ClientProof,
    /// A record header announcing a length out of bounds.
    #[error("record {counter} announces {len} bytes; a record holds 1..=65536")]
    RecordLen {
        /// Record number in its direction.
        counter: u64,
        /// The announced length.
        len: u32,
    },
    /// A record whose tag does not verify: forged, changed, replayed,
    /// reordered or cut.
    #[error("record {counter} does not authenticate (forged, changed, replayed, reordered or cut on the way)")]
    Tag {
        /// Record number in its direction.
        counter: u64,
    },
    /// 2^64 records in one direction.
    #[error("record counter exhausted")]
    Exhausted,
    /// A buffer too small for what it must hold (a driver bug).
    #[error("buffer of {len} bytes where {need} are needed")]
    Buffer {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
}

fn status_name(s: u32) -> &'static str {
    match s {
        STATUS_BAD_VERSION => "it speaks another version",
        STATUS_BAD_LANE => "the session has no such lane",
        STATUS_MODE_REFUSED => {
            "the lane's mode (sealed or plaintext) is not the one the session agreed on"
        }
        _ => "unknown status",
    }
}

/// Everything HKDF gives for one lane.
#[derive(Clone)]
struct Derived {
    c2s: [u8; KEY_LEN],
    s2c: [u8; KEY_LEN],
    cconf: [u8; KEY_LEN],
    sconf: [u8; KEY_LEN],
}

fn derive(
    secret: &[u8; SECRET_LEN],
    client_nonce: &[u8; NONCE_LEN],
    server_nonce: &[u8; NONCE_LEN],
    lane: u32,
    mode: LaneMode,
) -> Derived {
    let mut salt = [0u8; 2 * NONCE_LEN];
    let (a, b) = salt.split_at_mut(NONCE_LEN);
    a.copy_from_slice(client_nonce);
    b.copy_from_slice(server_nonce);
    let hk = hkdf::Hkdf::<Sha256>::new(Some(&salt), secret);
    let mut okm = [0u8; 4 * KEY_LEN];
    let lane_b = lane.to_le_bytes();
    let mode_b = [mode.code() as u8];
    // 128 bytes is far below HKDF-SHA256's limit of 8160: cannot fail.
    let _ = hk.expand_multi_info(&[INFO, &lane_b, &mode_b], &mut okm);
    let mut d = Derived {
        c2s: [0; KEY_LEN],
        s2c: [0; KEY_LEN],
        cconf: [0; KEY_LEN],
        sconf: [0; KEY_LEN],
    };
    for (i, k) in [&mut d.c2s, &mut d.s2c, &mut d.cconf, &mut d.sconf]
        .into_iter()
        .enumerate()
    {
        if let Some(src) = okm.get(i * KEY_LEN..(i + 1) * KEY_LEN) {
            k.copy_from_slice(src);
        }
    }
    d
}

fn mac(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: cannot fail.
    let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    for p in parts {
        m.update(p);
    }
    m
}

#[allow(clippy::panic)]
#[cold]
fn unreachable_hmac() -> ! {
    // HMAC accepts keys of every length (RFC 2104).
    panic!("HMAC refused a 32-byte key")
}

/// The keys of one lane, once both proofs verified.
#[derive(Clone)]
pub struct LaneKeys {
    mode: LaneMode,
    c2s: [u8; KEY_LEN],
    s2c: [u8; KEY_LEN],
}

impl core::fmt::Debug for LaneKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LaneKeys")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl LaneKeys {
    /// The lane's mode.
    pub fn mode(&self) -> LaneMode {
        self.mode
    }

    /// The client's record layer: it seals client-to-server records and
    /// opens server-to-client ones. `None` in plaintext mode.
    pub fn client(&self) -> Option<(Sealer, Opener)> {
        match self.mode {
            LaneMode::Sealed => Some((Sealer::new(&self.c2s), Opener::new(&self.s2c))),
            LaneMode::Plaintext => None,
        }
    }

    /// rpmemd's record layer. `None` in plaintext mode.
    pub fn server(&self) -> Option<(Sealer, Opener)> {
        match self.mode {
            LaneMode::Sealed => Some((Sealer::new(&self.s2c), Opener::new(&self.c2s))),
            LaneMode::Plaintext => None,
        }
    }
}

/// The client's side of the handshake.
#[derive(Clone)]
pub struct ClientHandshake {
    secret: [u8; SECRET_LEN],
    lane: u32,
    mode: LaneMode,
    client_nonce: [u8; NONCE_LEN],
    hello: [u8; HELLO_LEN],
}

impl core::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("lane", &self.lane)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// A handshake for `lane` of the session whose secret is `secret`;
    /// `client_nonce` must be fresh random bytes.
    pub fn new(
        secret: &[u8; SECRET_LEN],
        lane: u32,
        mode: LaneMode,
        client_nonce: [u8; NONCE_LEN],
    ) -> ClientHandshake {
        let mut hello = [0u8; HELLO_LEN];
        put(&mut hello, 0, &MAGIC);
        put(&mut hello, 4, &VERSION.to_le_bytes());
        put(&mut hello, 6, &mode.code().to_le_bytes());
        put(&mut hello, 8, &lane.to_le_bytes());
        put(&mut hello, 16, &client_nonce);
        ClientHandshake {
            secret: *secret,
            lane,
            mode,
            client_nonce,
            hello,
        }
    }

    /// The lane mode asked for.
    pub fn mode(&self) -> LaneMode {
        self.mode
    }

    /// The 48 bytes to send first. They do not hold the secret.
    pub fn hello(&self) -> &[u8; HELLO_LEN] {
        &self.hello
    }

    /// Check the server hello; when its proof verifies, returns the client
    /// proof to send and the lane's keys.
    pub fn on_server_hello(
        &self,
        bytes: &[u8; SERVER_HELLO_LEN],
    ) -> Result<([u8; PROOF_LEN], LaneKeys), SealError> {
        if bytes.get(0..4) != Some(&MAGIC[..]) {
            return Err(SealError::Malformed {
                what: "server hello",
                why: "magic (bytes 0..4) is not \"RPT2\"",
            });
        }
        let status = u32_at(bytes, 4);
        if status != STATUS_OK {
            return Err(SealError::Refused { status });
        }
        let mut server_nonce = [0u8; NONCE_LEN];
        get(bytes, 8, &mut server_nonce);
        let d = derive(
            &self.secret,
            &self.client_nonce,
            &server_nonce,
            self.lane,
            self.mode,
        );
        let (head, proof) = bytes.split_at(40);
        if mac(&d.sconf, &[&self.hello, head])
            .verify_slice(proof)
            .is_err()
        {
            return Err(SealError::ServerProof);
        }
        let tag = mac(&d.cconf, &[&self.hello, bytes]).finalize().into_bytes();
        let mut out = [0u8; PROOF_LEN];
        out.copy_from_slice(&tag);
        Ok((
            out,
            LaneKeys {
                mode: self.mode,
                c2s: d.c2s,
                s2c: d.s2c,
            },
        ))
    }
}

/// Why the server refuses a client hello before any proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloRefusal {
    /// Not this handshake at all: closed without an answer.
    #[error("not a lane hello: {0}")]
    Malformed(&'static str),
    /// Another version.
    #[error("hello version (bytes 4..6) is {got}; this server speaks version 2")]
    BadVersion {
        /// Version sent.
        got: u16,
    },
    /// No such lane.
    #[error("hello lane (bytes 8..12) is {lane}, but the session has {nlanes} lanes")]
    BadLane {
        /// Lane sent.
        lane: u32,
        /// Lanes of the session.
        nlanes: u32,
    },
    /// The mode is not the session's.
    #[error("hello asks for a {asked} lane, but this session's lanes are {session} (the plaintext choice must be made on both sides)")]
    Mode {
        /// What the client asked for.
        asked: &'static str,
        /// What the session agreed on.
        session: &'static str,
    },
}

impl HelloRefusal {
    /// The server hello to send before closing, if the client deserves one.
    pub fn reply(&self) -> Option<[u8; SERVER_HELLO_LEN]> {
        let status = match self {
            HelloRefusal::Malformed(_) => return None,
            HelloRefusal::BadVersion { .. } => STATUS_BAD_VERSION,
            HelloRefusal::BadLane { .. } => STATUS_BAD_LANE,
            HelloRefusal::Mode { .. } => STATUS_MODE_REFUSED,
        };
        let mut out = [0u8; SERVER_HELLO_LEN];
        put(&mut out, 0, &MAGIC);
        put(&mut out, 4, &status.to_le_bytes());
        Some(out)
    }
}

/// The server's side of the handshake, between its hello and the
/// client's proof.
#[derive(Clone)]
pub struct ServerHandshake {
    lane: u32,
    mode: LaneMode,
    derived: Derived,
    transcript: [u8; HELLO_LEN + SERVER_HELLO_LEN],
}

impl core::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("lane", &self.lane)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ServerHandshake {
    /// Check a client hello for a session of `nlanes` lanes whose lanes are
    /// `mode`; `server_nonce` must be fresh random bytes. Returns the
    /// handshake awaiting the client's proof and the server hello to send.
    pub fn on_hello(
        secret: &[u8; SECRET_LEN],
        hello: &[u8; HELLO_LEN],
        server_nonce: [u8; NONCE_LEN],
        nlanes: u32,
        mode: LaneMode,
    ) -> Result<(ServerHandshake, [u8; SERVER_HELLO_LEN]), HelloRefusal> {
        if hello.get(0..4) != Some(&MAGIC[..]) {
            return Err(HelloRefusal::Malformed(
                "magic (bytes 0..4) is not \"RPT2\"",
            ));
        }
        let version = u16_at(hello, 4);
        if version != VERSION {
            return Err(HelloRefusal::BadVersion { got: version });
        }
        if u32_at(hello, 12) != 0 {
            return Err(HelloRefusal::Malformed(
                "reserved bytes 12..16 are not zero",
            ));
        }
        let Some(asked) = LaneMode::from_code(u16_at(hello, 6)) else {
            return Err(HelloRefusal::Malformed(
                "mode (bytes 6..8) is neither 0 nor 1",
            ));
        };
        let lane = u32_at(hello, 8);
        if lane >= nlanes {
            return Err(HelloRefusal::BadLane { lane, nlanes });
        }
        if asked != mode {
            return Err(HelloRefusal::Mode {
                asked: asked.name(),
                session: mode.name(),
            });
        }
        let mut client_nonce = [0u8; NONCE_LEN];
        get(hello, 16, &mut client_nonce);
        let derived = derive(secret, &client_nonce, &server_nonce, lane, mode);
        let mut sh = [0u8; SERVER_HELLO_LEN];
        put(&mut sh, 0, &MAGIC);
        put(&mut sh, 4, &STATUS_OK.to_le_bytes());
        put(&mut sh, 8, &server_nonce);
        let (head, _) = sh.split_at(40);
        let proof = mac(&derived.sconf, &[hello, head]).finalize().into_bytes();
        put(&mut sh, 40, &proof);
        let mut transcript = [0u8; HELLO_LEN + SERVER_HELLO_LEN];
        put(&mut transcript, 0, hello);
        put(&mut transcript, HELLO_LEN, &sh);
        Ok((
            ServerHandshake {
                lane,
                mode,
                derived,
                transcript,
            },
            sh,
        ))
    }

    /// The lane the hello names.
    pub fn lane(&self) -> u32 {
        self.lane
    }

    /// Check the client's proof (constant time); then the lane may be
    /// bound.
    pub fn on_proof(&self, proof: &[u8; PROOF_LEN]) -> Result<LaneKeys, SealError> {
        mac(&self.derived.cconf, &[&self.transcript])
            .verify_slice(proof)
            .map_err(|_| SealError::ClientProof)?;
        Ok(LaneKeys {
            mode: self.mode,
            c2s: self.derived.c2s,
            s2c: self.derived.s2c,
        })
    }
}

fn nonce_bytes(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    put(&mut n, 4, &counter.to_le_bytes());
    n
}

// The AEAD: AES-256-GCM. Without `std` (the core's no_std, allocator-free
// build, the link check) RustCrypto's `aes-gcm`; with `std` (rpmem, rpmemd,
// the simulator, the fuzzers) ring's, measured 6x faster here
// (docs/BENCHMARKS.md). The same algorithm: the records are the same bytes.

#[cfg(not(feature = "std"))]
type Key = aes_gcm::Aes256Gcm;

#[cfg(not(feature = "std"))]
fn key(k: &[u8; KEY_LEN]) -> Key {
    Key::new(&(*k).into())
}

#[cfg(not(feature = "std"))]
fn seal_detached(key: &Key, counter: u64, aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
    let tag = key
        .encrypt_in_place_detached(&nonce_bytes(counter).into(), aad, buf)
        .ok()?;
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&tag);
    Some(t)
}

#[cfg(not(feature = "std"))]
fn open_detached(key: &Key, counter: u64, aad: &[u8], buf: &mut [u8], tag: [u8; TAG_LEN]) -> bool {
    key.decrypt_in_place_detached(&nonce_bytes(counter).into(), aad, buf, &tag.into())
        .is_ok()
}

#[cfg(feature = "std")]
type Key = ring::aead::LessSafeKey;

#[cfg(feature = "std")]
fn key(k: &[u8; KEY_LEN]) -> Key {
    match ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, k) {
        Ok(u) => Key::new(u),
        Err(_) => unreachable_key(),
    }
}

#[cfg(feature = "std")]
#[allow(clippy::panic)]
#[cold]
fn unreachable_key() -> ! {
    // AES-256-GCM takes 32-byte keys, which is what is passed.
    panic!("AES-256-GCM refused a 32-byte key")
}

#[cfg(feature = "std")]
fn seal_detached(key: &Key, counter: u64, aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
    let nonce = ring::aead::Nonce::assume_unique_for_key(nonce_bytes(counter));
    let tag = key
        .seal_in_place_separate_tag(nonce, ring::aead::Aad::from(aad), buf)
        .ok()?;
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(tag.as_ref());
    Some(t)
}

#[cfg(feature = "std")]
fn open_detached(key: &Key, counter: u64, aad: &[u8], buf: &mut [u8], tag: [u8; TAG_LEN]) -> bool {
    let nonce = ring::aead::Nonce::assume_unique_for_key(nonce_bytes(counter));
    key.open_in_place_separate_tag(
        nonce,
        ring::aead::Aad::from(aad),
        ring::aead::Tag::from(tag),
        buf,
        0..,
    )
    .is_ok()
}

/// Seals one direction's records.
pub struct Sealer {
    key: Key,
    counter: u64,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    fn new(k: &[u8; KEY_LEN]) -> Sealer {
        Sealer {
            key: key(k),
            counter: 0,
        }
    }

    /// Records sealed so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Seal the `len` plaintext bytes at `record[4..4 + len]` in place into
    /// one record (header, ciphertext, tag); returns its wire length
    /// `len + 20`. `len` is 1..=[`MAX_RECORD`].
    pub fn seal_in_place(&mut self, record: &mut [u8], len: usize) -> Result<usize, SealError> {
        if len == 0 || len > MAX_RECORD {
            return Err(SealError::RecordLen {
                counter: self.counter,
                len: u32::try_from(len).unwrap_or(u32::MAX),
            });
        }
        let total = len + RECORD_HEADER_LEN + TAG_LEN;
        let have = record.len();
        let Some(rec) = record.get_mut(..total) else {
            return Err(SealError::Buffer {
                len: have,
                need: total,
            });
        };
        if self.counter == u64::MAX {
            return Err(SealError::Exhausted);
        }
        let header = (len as u32).to_le_bytes();
        let (h, rest) = rec.split_at_mut(RECORD_HEADER_LEN);
        h.copy_from_slice(&header);
        let (body, tag_out) = rest.split_at_mut(len);
        let tag =
            seal_detached(&self.key, self.counter, &header, body).ok_or(SealError::Exhausted)?;
        tag_out.copy_from_slice(&tag);
        self.counter += 1;
        Ok(total)
    }

    /// Copy `plaintext` (1..=[`MAX_RECORD`] bytes) into `out` and seal it
    /// there; returns the record's wire length.
    pub fn seal_from(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, SealError> {
        let need = plaintext.len() + RECORD_HEADER_LEN + TAG_LEN;
        let have = out.len();
        let Some(dst) = out.get_mut(RECORD_HEADER_LEN..RECORD_HEADER_LEN + plaintext.len()) else {
            return Err(SealError::Buffer { len: have, need });
        };
        dst.copy_from_slice(plaintext);
        self.seal_in_place(out, plaintext.len())
    }
}

/// Opens one direction's records, strictly in order.
pub struct Opener {
    key: Key,
    counter: u64,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Opener {
    fn new(k: &[u8; KEY_LEN]) -> Opener {
        Opener {
            key: key(k),
            counter: 0,
        }
    }

    /// Records opened so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The wire length of the record whose 4-byte header this is (checked
    /// against the bound).
    pub fn record_len(&self, header: [u8; RECORD_HEADER_LEN]) -> Result<usize, SealError> {
        let len = u32::from_le_bytes(header);
        if len == 0 || len as usize > MAX_RECORD {
            return Err(SealError::RecordLen {
                counter: self.counter,
                len,
            });
        }
        Ok(len as usize + RECORD_HEADER_LEN + TAG_LEN)
    }

    /// Open one whole record in place; returns its plaintext (inside
    /// `record`). Nothing of a record whose tag fails is returned.
    pub fn open<'a>(&mut self, record: &'a mut [u8]) -> Result<&'a [u8], SealError> {
        let mut header = [0u8; RECORD_HEADER_LEN];
        get(record, 0, &mut header);
        let total = self.record_len(header)?;
        if record.len() != total {
            return Err(SealError::Buffer {
                len: record.len(),
                need: total,
            });
        }
        if self.counter == u64::MAX {
            return Err(SealError::Exhausted);
        }
        let counter = self.counter;
        let body = record.get_mut(RECORD_HEADER_LEN..).unwrap_or(&mut []);
        let (pt, tag) = body.split_at_mut(total - RECORD_HEADER_LEN - TAG_LEN);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag);
        if open_detached(&self.key, counter, &header, pt, t) {
            self.counter += 1;
            Ok(pt)
        } else {
            Err(SealError::Tag { counter })
        }
    }
}

/// The receiving end of a sealed lane: ciphertext is received into a
/// buffer the driver provides (at least [`INBOUND_BUF_LEN`] bytes), each
/// record is opened there once it is whole, and only then its plaintext is
/// handed out. A failure is final.
pub struct Inbound<B> {
    opener: Opener,
    buf: B,
    /// Opened plaintext not yet consumed: `buf[pt_from..pt_to]`.
    pt_from: usize,
    pt_to: usize,
    /// Received bytes not opened yet: `buf[raw_from..raw_to]`.
    raw_from: usize,
    raw_to: usize,
    failed: Option<SealError>,
}

impl<B> core::fmt::Debug for Inbound<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Inbound")
            .field("opener", &self.opener)
            .field("plaintext", &(self.pt_to - self.pt_from))
            .field("raw", &(self.raw_to - self.raw_from))
            .field("failed", &self.failed)
            .finish()
    }
}

impl<B: AsMut<[u8]> + AsRef<[u8]>> Inbound<B> {
    /// Records opened by `opener`, received into `buf`.
    pub fn new(opener: Opener, buf: B) -> Result<Inbound<B>, SealError> {
        let len = buf.as_ref().len();
        if len < INBOUND_BUF_LEN {
            return Err(SealError::Buffer {
                len,
                need: INBOUND_BUF_LEN,
            });
        }
        Ok(Inbound {
            opener,
            buf,
            pt_from: 0,
            pt_to: 0,
            raw_from: 0,
            raw_to: 0,
            failed: None,
        })
    }

    /// Opened plaintext not consumed yet.
    pub fn plaintext(&self) -> &[u8] {
        self.buf
            .as_ref()
            .get(self.pt_from..self.pt_to)
            .unwrap_or(&[])
    }

    /// `n` bytes of [`plaintext`](Self::plaintext) were used.
    pub fn consume(&mut self, n: usize) {
        self.pt_from = self.pt_from.saturating_add(n).min(self.pt_to);
    }

    /// Bytes received and not yet handed out (opened or not).
    pub fn buffered(&self) -> usize {
        (self.pt_to - self.pt_from) + (self.raw_to - self.raw_from)
    }

    /// Where to receive ciphertext into (empty while plaintext is left to
    /// consume and the buffer is full; never while all is consumed).
    pub fn space(&mut self) -> &mut [u8] {
        if self.pt_from == self.pt_to && self.raw_from > 0 {
            let (from, to) = (self.raw_from, self.raw_to);
            self.buf.as_mut().copy_within(from..to, 0);
            self.raw_to = to - from;
            self.raw_from = 0;
            self.pt_from = 0;
            self.pt_to = 0;
        }
        let at = self.raw_to;
        self.buf.as_mut().get_mut(at..).unwrap_or(&mut [])
    }

    /// `n` bytes were received into [`space`](Self::space).
    pub fn received(&mut self, n: usize) {
        self.raw_to = self.raw_to.saturating_add(n).min(self.buf.as_ref().len());
    }

    /// Once all plaintext is consumed, opens the next record if it is
    /// whole. Returns whether plaintext is available.
    pub fn open_next(&mut self) -> Result<bool, SealError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.pt_from < self.pt_to {
            return Ok(true);
        }
        let avail = self.raw_to - self.raw_from;
        if avail < RECORD_HEADER_LEN {
            return Ok(false);
        }
        let mut header = [0u8; RECORD_HEADER_LEN];
        get(self.buf.as_ref(), self.raw_from, &mut header);
        let total = match self.opener.record_len(header) {
            Ok(t) => t,
            Err(e) => return Err(*self.failed.insert(e)),
        };
        if avail < total {
            return Ok(false);
        }
        let from = self.raw_from;
        let rec = self
            .buf
            .as_mut()
            .get_mut(from..from + total)
            .unwrap_or(&mut []);
        match self.opener.open(rec) {
            Ok(pt) => {
                let n = pt.len();
                self.pt_from = from + RECORD_HEADER_LEN;
                self.pt_to = self.pt_from + n;
                self.raw_from = from + total;
                Ok(n > 0)
            }
            Err(e) => Err(*self.failed.insert(e)),
        }
    }
}

fn put(buf: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = buf.get_mut(at..at + src.len()) {
        d.copy_from_slice(src);
    }
}

fn get(buf: &[u8], at: usize, dst: &mut [u8]) {
    if let Some(s) = buf.get(at..at + dst.len()) {
        dst.copy_from_slice(s);
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    get(b, at, &mut x);
    u16::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    get(b, at, &mut x);
    u32::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const SECRET: [u8; SECRET_LEN] = [0x42; SECRET_LEN];

    fn handshake(mode: LaneMode) -> (LaneKeys, LaneKeys) {
        let c = ClientHandshake::new(&SECRET, 1, mode, [1; NONCE_LEN]);
        let (s, sh) =
            ServerHandshake::on_hello(&SECRET, c.hello(), [2; NONCE_LEN], 4, mode).unwrap();
        let (proof, ck) = c.on_server_hello(&sh).unwrap();
        let sk = s.on_proof(&proof).unwrap();
        (ck, sk)
    }

    #[test]
    fn the_hello_never_holds_the_secret() {
        let c = ClientHandshake::new(&SECRET, 0, LaneMode::Sealed, [1; NONCE_LEN]);
        assert!(!c.hello().windows(4).any(|w| w == [0x42; 4]));
        let (_, sh) =
            ServerHandshake::on_hello(&SECRET, c.hello(), [2; NONCE_LEN], 1, LaneMode::Sealed)
                .unwrap();
        assert!(!sh.windows(4).any(|w| w == [0x42; 4]));
    }

    #[test]
    fn both_sides_agree_and_records_round_trip() {
        let (ck, sk) = handshake(LaneMode::Sealed);
        let (mut cs, mut co) = ck.client().unwrap();
        let (mut ss, mut so) = sk.server().unwrap();
        let mut rec = vec![0u8; 100];
        let n = cs.seal_from(b"hello, pool", &mut rec).unwrap();
        assert_eq!(n, 11 + 20);
        assert_ne!(&rec[4..15], b"hello, pool");
        assert_eq!(so.open(&mut rec[..n]).unwrap(), b"hello, pool");
        let n = ss.seal_from(b"durable", &mut rec).unwrap();
        assert_eq!(co.open(&mut rec[..n]).unwrap(), b"durable");
        assert!(sk.client().is_some() && handshake(LaneMode::Plaintext).0.client().is_none());
    }

    #[test]
    fn a_wrong_secret_fails_the_servers_proof_at_the_client() {
        let c = ClientHandshake::new(&[9; 32], 0, LaneMode::Sealed, [1; NONCE_LEN]);
        let (_, sh) =
            ServerHandshake::on_hello(&SECRET, c.hello(), [2; NONCE_LEN], 1, LaneMode::Sealed)
                .unwrap();
        assert_eq!(c.on_server_hello(&sh).unwrap_err(), SealError::ServerProof);
    }

    #[test]
    fn an_impostor_server_or_client_cannot_prove() {
        // An impostor server that does not know the secret.
        let c = ClientHandshake::new(&SECRET, 0, LaneMode::Sealed, [1; NONCE_LEN]);
        let (_, fake) =
            ServerHandshake::on_hello(&[0; 32], c.hello(), [2; NONCE_LEN], 1, LaneMode::Sealed)
                .unwrap();
        assert_eq!(
            c.on_server_hello(&fake).unwrap_err(),
            SealError::ServerProof
        );
        // A replayed hello and proof against a fresh server nonce.
        let (s1, sh1) =
            ServerHandshake::on_hello(&SECRET, c.hello(), [2; NONCE_LEN], 1, LaneMode::Sealed)
                .unwrap();
        let (proof, _) = c.on_server_hello(&sh1).unwrap();
        assert!(s1.on_proof(&proof).is_ok());
        let (s2, _) =
            ServerHandshake::on_hello(&SECRET, c.hello(), [3; NONCE_LEN], 1, LaneMode::Sealed)
                .unwrap();
        assert_eq!(s2.on_proof(&proof).unwrap_err(), SealError::ClientProof);
        // A changed mode in the hello changes the keys: the proof fails.
        let mut h = *c.hello();
        h[6] = 1;
        let (_, sh) =
            ServerHandshake::on_hello(&SECRET, &h, [2; NONCE_LEN], 1, LaneMode::Plaintext).unwrap();
        assert_eq!(c.on_server_hello(&sh).unwrap_err(), SealError::ServerProof);
    }

    #[test]
    fn refusals() {
        let c = ClientHandshake::new(&SECRET, 5, LaneMode::Plaintext, [1; NONCE_LEN]);
        let r =
            ServerHandshake::on_hello(&SECRET, c.hello(), [2; NONCE_LEN], 4, LaneMode::Plaintext)
                .unwrap_err();
        assert_eq!(r, HelloRefusal::BadLane { lane: 5, nlanes: 4 });
        assert_eq!(
            c.on_server_hello(&r.reply().unwrap()).unwrap_err(),
            SealError::Refused {
                status: STATUS_BAD_LANE
            }
        );
        let c = ClientHandshake::new(&SECRET, 0, LaneMode::Plaintext, [1; NONCE_LEN]);
        let r = ServerHandshake::on_hello(&SECRET, c.hello(), [2; NONCE_LEN], 4, LaneMode::Sealed)
            .unwrap_err();
        assert!(matches!(
            r,
            HelloRefusal::Mode {
                asked: "plaintext",
                session: "sealed"
            }
        ));
        let mut h = *c.hello();
        h[0] = b'X';
        assert!(r.reply().is_some());
        let r = ServerHandshake::on_hello(&SECRET, &h, [2; NONCE_LEN], 4, LaneMode::Plaintext)
            .unwrap_err();
        assert!(r.reply().is_none());
        let mut h = *c.hello();
        h[4] = 1;
        let r = ServerHandshake::on_hello(&SECRET, &h, [2; NONCE_LEN], 4, LaneMode::Plaintext)
            .unwrap_err();
        assert_eq!(r, HelloRefusal::BadVersion { got: 1 });
    }

    fn sealed_stream(records: &[&[u8]]) -> (Vec<Vec<u8>>, Opener) {
        let (ck, sk) = handshake(LaneMode::Sealed);
        let (mut s, _) = ck.client().unwrap();
        let (_, o) = sk.server().unwrap();
        let out = records
            .iter()
            .map(|r| {
                let mut b = vec![0u8; r.len() + 20];
                s.seal_from(r, &mut b).unwrap();
                b
            })
            .collect();
        (out, o)
    }

    #[test]
    fn flipped_replayed_reordered_and_dropped_records_fail() {
        let (recs, mut o) = sealed_stream(&[b"one", b"two", b"three"]);
        // Any flipped bit (header, ciphertext or tag).
        for byte in 0..recs[0].len() {
            let (recs, mut o) = sealed_stream(&[b"one"]);
            let mut r = recs[0].clone();
            r[byte] ^= 1;
            let n = r.len();
            assert!(o.open(&mut r[..n]).is_err(), "byte {byte}");
        }
        // Reordered: the second record first.
        let mut r1 = recs[1].clone();
        assert_eq!(o.open(&mut r1).unwrap_err(), SealError::Tag { counter: 0 });
        let mut r0 = recs[0].clone();
        assert_eq!(o.open(&mut r0).unwrap(), b"one");
        // Replayed.
        let mut r0 = recs[0].clone();
        assert_eq!(o.open(&mut r0).unwrap_err(), SealError::Tag { counter: 1 });
        // Dropped (the third in place of the second).
        let mut r2 = recs[2].clone();
        assert_eq!(o.open(&mut r2).unwrap_err(), SealError::Tag { counter: 1 });
        // Lengths out of bounds.
        assert!(matches!(
            o.record_len(0u32.to_le_bytes()),
            Err(SealError::RecordLen { len: 0, .. })
        ));
        assert!(o.record_len(65537u32.to_le_bytes()).is_err());
        assert_eq!(o.record_len(65536u32.to_le_bytes()), Ok(65556));
    }

    #[test]
    fn inbound_reassembles_records_from_any_pieces() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let chunks: Vec<&[u8]> = data.chunks(MAX_RECORD - 7).collect();
        let (recs, o) = sealed_stream(&chunks);
        let wire: Vec<u8> = recs.concat();
        for piece in [1usize, 7, 4096, 70_000, 1 << 20] {
            let mut inb = Inbound::new(o.clone_for_test(), vec![0u8; INBOUND_BUF_LEN]).unwrap();
            let mut at = 0;
            let mut got = Vec::new();
            loop {
                while inb.open_next().unwrap() {
                    let n = inb.plaintext().len().min(5000);
                    got.extend_from_slice(&inb.plaintext()[..n]);
                    inb.consume(n);
                }
                if at == wire.len() {
                    break;
                }
                let space = inb.space();
                let n = piece.min(space.len()).min(wire.len() - at);
                space[..n].copy_from_slice(&wire[at..at + n]);
                inb.received(n);
                at += n;
            }
            assert_eq!(got, data, "piece {piece}");
            assert_eq!(inb.buffered(), 0);
        }
        // A cut record never yields its bytes.
        let mut inb = Inbound::new(o.clone_for_test(), vec![0u8; INBOUND_BUF_LEN]).unwrap();
        let cut = &recs[0][..recs[0].len() - 1];
        inb.space()[..cut.len()].copy_from_slice(cut);
        inb.received(cut.len());
        assert!(!inb.open_next().unwrap());
        assert!(inb.plaintext().is_empty());
        assert!(Inbound::new(o.clone_for_test(), vec![0u8; 10]).is_err());
    }

    /// The two AES-256-GCM implementations (RustCrypto's in the no_std
    /// build, ring's with std) make the same records.
    #[test]
    fn both_backends_make_the_same_records() {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let k = [9u8; KEY_LEN];
        let mut sealer = Sealer::new(&k);
        let rc = aes_gcm::Aes256Gcm::new(&k.into());
        for (counter, len) in [(0u64, 1usize), (1, 64), (2, 65536)] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut rec = vec![0u8; len + 20];
            sealer.seal_from(&plain, &mut rec).unwrap();
            let header = (len as u32).to_le_bytes();
            let mut body = plain.clone();
            let tag = rc
                .encrypt_in_place_detached(&nonce_bytes(counter).into(), &header, &mut body)
                .unwrap();
            assert_eq!(&rec[4..4 + len], &body[..]);
            assert_eq!(&rec[4 + len..], &tag[..]);
        }
    }

    impl Opener {
        fn clone_for_test(&self) -> Opener {
            Opener {
                key: self.key.clone(),
                counter: self.counter,
            }
        }
    }
}
