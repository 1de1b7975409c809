//! The files the traffic has made and not deleted, as the client knows them: each is lent to one
//! operation at a time, so that no read meets a delete of the same file running beside it.

use std::collections::VecDeque;

use sha2::{Digest, Sha256};

use crate::client::MIB;

/// Files kept about this many: past it uploads turn into deletes, under half of it deletes
/// turn into uploads.
pub const TARGET_FILES: usize = 200;
/// Keys (`soak/k0` …) the keyed uploads share, so that most of them replace a file.
const KEYS: usize = 24;
/// Deleted or replaced ids remembered, to check that they are gone.
const GONE: usize = 64;

/// What a file holds.
#[derive(Clone, Copy, Debug)]
pub enum Content {
    /// The client's 1 MiB block from this offset on, over and over.
    Block { offset: usize },
    /// The soak's JPEG.
    Image,
}

/// A file the traffic uploaded.
#[derive(Clone, Debug)]
pub struct Live {
    pub id: String,
    pub size: usize,
    pub content: Content,
    /// Hex SHA-256 of its bytes, as the upload's answer gave it.
    pub sha256: String,
    pub key: Option<String>,
}

/// The bytes `[start, start + len)` of a file holding `content`, `image` being the JPEG.
pub fn bytes_of(content: Content, image: &[u8], block: &[u8], start: usize, len: usize) -> Vec<u8> {
    match content {
        Content::Image => image[start..start + len].to_vec(),
        Content::Block { offset } => {
            let mut out = Vec::with_capacity(len);
            let mut at = (offset + start) % MIB;
            while out.len() < len {
                let run = (MIB - at).min(len - out.len());
                out.extend_from_slice(&block[at..at + run]);
                at = 0;
            }
            out
        }
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A xorshift generator: the choices of one worker.
pub struct Rng(u64);

impl Rng {
    /// A generator for worker `n`.
    pub fn new(n: u64) -> Self {
        Self(0x2545_f491_4f6c_dd1d ^ (n + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 {
            0
        } else {
            (self.0 % n as u64) as usize
        }
    }
}

/// The live files, those lent out counted, the free keys and the ids that must be gone.
pub struct Pool {
    idle: Vec<Live>,
    lent: usize,
    lost: usize,
    free_keys: Vec<String>,
    gone: VecDeque<String>,
}

impl Pool {
    /// No file yet, every key free.
    pub fn new() -> Self {
        Self {
            idle: Vec::new(),
            lent: 0,
            lost: 0,
            free_keys: (0..KEYS).map(|k| format!("soak/k{k}")).collect(),
            gone: VecDeque::new(),
        }
    }

    /// Live files, lent or not.
    pub fn len(&self) -> usize {
        self.idle.len() + self.lent
    }

    /// Lends a file chosen at random among those `fits`, if any.
    pub fn take(&mut self, rng: &mut Rng, fits: impl Fn(&Live) -> bool) -> Option<Live> {
        let fitting: Vec<usize> = (0..self.idle.len())
            .filter(|&i| fits(&self.idle[i]))
            .collect();
        if fitting.is_empty() {
            return None;
        }
        let at = fitting[rng.below(fitting.len())];
        self.lent += 1;
        Some(self.idle.swap_remove(at))
    }

    /// How many idle files `fits`.
    pub fn count(&self, fits: impl Fn(&Live) -> bool) -> usize {
        self.idle.iter().filter(|l| fits(l)).count()
    }

    /// Takes back a lent file, unchanged.
    pub fn give_back(&mut self, live: Live) {
        self.lent -= 1;
        self.idle.push(live);
    }

    /// Adds a new file.
    pub fn add(&mut self, live: Live) {
        self.idle.push(live);
    }

    /// A lent file was deleted: its key is free and its id must be gone.
    pub fn deleted(&mut self, live: Live) {
        self.lent -= 1;
        self.free_keys.extend(live.key);
        self.remember_gone(live.id);
    }

    /// A lent keyed file was replaced by `new` under the same key.
    pub fn replaced(&mut self, old: Live, new: Live) {
        self.lent -= 1;
        self.remember_gone(old.id);
        self.idle.push(new);
    }

    /// A lent file whose delete or replacement failed: whether it still exists is unknown, so
    /// no later operation uses it.
    pub fn lost(&mut self, live: Live) {
        self.lent -= 1;
        self.lost += 1;
        self.free_keys.extend(live.key);
    }

    /// Takes a free key, if any.
    pub fn take_key(&mut self, rng: &mut Rng) -> Option<String> {
        (!self.free_keys.is_empty())
            .then(|| self.free_keys.swap_remove(rng.below(self.free_keys.len())))
    }

    /// Gives back a key whose upload failed.
    pub fn free_key(&mut self, key: String) {
        self.free_keys.push(key);
    }

    /// An id that was deleted or replaced, at random.
    pub fn gone(&self, rng: &mut Rng) -> Option<String> {
        self.gone.get(rng.below(self.gone.len())).cloned()
    }

    fn remember_gone(&mut self, id: String) {
        if self.gone.len() == GONE {
            self.gone.pop_front();
        }
        self.gone.push_back(id);
    }

    /// The ids of the idle files (all of them once the traffic has stopped).
    pub fn ids(&self) -> Vec<String> {
        self.idle.iter().map(|l| l.id.clone()).collect()
    }

    /// Files lent and not given back (none once the traffic has stopped), and files whose
    /// fate is unknown after a failed delete or replacement.
    pub fn unsettled(&self) -> (usize, usize) {
        (self.lent, self.lost)
    }
}
