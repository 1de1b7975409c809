//! The traffic's operations, in what proportions, and which file each one works on.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Result;
use bytes::Bytes;
use jpeg_encoder::{ColorType, Encoder};

use super::pool::{Live, Pool, Rng, TARGET_FILES};
use crate::client::{Bench, MIB};

/// One kind of request (or, for tus, of exchange) the traffic sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `POST /files`, 1 KiB to 4 MiB; some of 1 MiB and more of unknown length.
    Upload,
    /// `POST /files?key=…`: a new key, or one held by a file it replaces.
    Upsert,
    /// `GET` of a whole file, by id or by key.
    Download,
    /// `GET` with `Range`, up to 64 KiB.
    Range,
    Head,
    /// `GET /files/{id}/info`.
    Info,
    /// `GET /files?limit=50`, with or without `prefix=soak/`.
    List,
    /// `DELETE`, by id or by key.
    Delete,
    /// `GET` of a deleted or replaced file: `404`.
    Gone,
    /// A tus upload of 1 or 2 MiB: `POST /files/tus` and one `PATCH`.
    Tus,
    /// `GET ?w=…&format=webp` of an uploaded JPEG (or, with too few of them, its upload).
    Variant,
}

impl Op {
    /// Every operation, in the order the results list them.
    pub const ALL: [Self; 11] = [
        Self::Upload,
        Self::Upsert,
        Self::Download,
        Self::Range,
        Self::Head,
        Self::Info,
        Self::List,
        Self::Delete,
        Self::Gone,
        Self::Tus,
        Self::Variant,
    ];

    /// Its name in the results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Upsert => "keyed_upload",
            Self::Download => "download",
            Self::Range => "range",
            Self::Head => "head",
            Self::Info => "info",
            Self::List => "list",
            Self::Delete => "delete",
            Self::Gone => "gone_404",
            Self::Tus => "tus_upload",
            Self::Variant => "image_variant",
        }
    }

    /// Its share of the traffic, in percent.
    fn weight(self) -> usize {
        match self {
            Self::Download => 22,
            Self::Range | Self::Upload => 14,
            Self::Delete => 12,
            Self::Head => 10,
            Self::Upsert | Self::List => 6,
            Self::Info => 5,
            Self::Variant | Self::Gone => 4,
            Self::Tus => 3,
        }
    }

    /// An operation drawn by its share.
    pub fn draw(rng: &mut Rng) -> Self {
        let mut at = rng.below(Self::ALL.iter().map(|op| op.weight()).sum());
        for op in Self::ALL {
            if at < op.weight() {
                return op;
            }
            at -= op.weight();
        }
        Self::List
    }
}

/// What an operation drawn turns into, given the files there are, with the file it works on.
pub enum Plan {
    Upload,
    /// A keyed upload: of a free key, or replacing `old`, which holds it.
    Upsert {
        key: String,
        old: Option<Live>,
    },
    /// An operation on one file: download, range, HEAD, info or variant.
    Read(Op, Live),
    List,
    Delete(Live),
    Gone(String),
    Tus,
    /// The upload of a JPEG for later variants.
    Image,
}

impl Plan {
    /// The operation it is counted as.
    pub fn op(&self) -> Op {
        match self {
            Self::Upload => Op::Upload,
            Self::Upsert { .. } => Op::Upsert,
            Self::Read(op, _) => *op,
            Self::List => Op::List,
            Self::Delete(_) => Op::Delete,
            Self::Gone(_) => Op::Gone,
            Self::Tus => Op::Tus,
            Self::Image => Op::Variant,
        }
    }
}

/// JPEGs kept at least, for the variants to be made of.
const IMAGES: usize = 3;

/// The client, the JPEG variants are made of, and the files.
pub struct Soaker {
    pub bench: Arc<Bench>,
    /// A 640 × 480 JPEG.
    pub image: Bytes,
    pool: Mutex<Pool>,
}

impl Soaker {
    /// A soaker with no file yet.
    pub fn new(bench: Arc<Bench>) -> Result<Self> {
        let image = jpeg(&bench.block)?.into();
        Ok(Self {
            bench,
            image,
            pool: Mutex::new(Pool::new()),
        })
    }

    /// The files, locked for a moment (never across an `.await`).
    pub fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `op` turns into: the file it works on is lent to it; an operation with no file to
    /// work on uploads one, or lists when there are files enough.
    pub fn plan(&self, op: Op, rng: &mut Rng) -> Plan {
        let mut pool = self.pool();
        let n = pool.len();
        let room = n < TARGET_FILES;
        let any = |_: &Live| true;
        let is_image = |l: &Live| matches!(l.content, super::pool::Content::Image);
        let fallback = |pool: &mut Pool, rng: &mut Rng| {
            if room {
                return Plan::Upload;
            }
            pool.take(rng, any).map_or(Plan::List, Plan::Delete)
        };
        match op {
            Op::Upload | Op::Tus if !room => fallback(&mut pool, rng),
            Op::Upload => Plan::Upload,
            Op::Tus => Plan::Tus,
            Op::Delete if n < TARGET_FILES / 2 => Plan::Upload,
            Op::Upsert => {
                let fresh = room && rng.below(4) == 0;
                let key = if fresh { pool.take_key(rng) } else { None };
                if let Some(key) = key {
                    return Plan::Upsert { key, old: None };
                }
                match pool.take(rng, |l| l.key.is_some()) {
                    Some(old) => Plan::Upsert {
                        key: old.key.clone().unwrap_or_default(),
                        old: Some(old),
                    },
                    None => match room.then(|| pool.take_key(rng)).flatten() {
                        Some(key) => Plan::Upsert { key, old: None },
                        None => fallback(&mut pool, rng),
                    },
                }
            }
            Op::Variant if pool.count(is_image) < IMAGES && room => Plan::Image,
            Op::Variant => match pool.take(rng, is_image) {
                Some(live) => Plan::Read(op, live),
                None => fallback(&mut pool, rng),
            },
            Op::Download | Op::Range | Op::Head | Op::Info | Op::Delete => {
                match pool.take(rng, |l| op != Op::Range || l.size >= 2) {
                    Some(live) if op == Op::Delete => Plan::Delete(live),
                    Some(live) => Plan::Read(op, live),
                    None => fallback(&mut pool, rng),
                }
            }
            Op::Gone => pool.gone(rng).map_or(Plan::List, Plan::Gone),
            Op::List => Plan::List,
        }
    }

    /// The size of an upload: 60 % up to 64 KiB, 30 % up to 1 MiB, 10 % up to 4 MiB.
    pub fn size(rng: &mut Rng) -> usize {
        match rng.below(10) {
            0..6 => 1024 + rng.below(63 * 1024),
            6..9 => 64 * 1024 + rng.below(MIB - 64 * 1024),
            _ => MIB + rng.below(3 * MIB),
        }
    }
}

/// A 640 × 480 JPEG of diagonal bands with grain from `block`, so that it encodes as a photo
/// rather than to almost nothing.
fn jpeg(block: &[u8]) -> Result<Vec<u8>> {
    let (w, h) = (640u16, 480u16);
    let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h) * 3)
        .map(|i| {
            let (x, y) = ((i / 3) % usize::from(w), (i / 3) / usize::from(w));
            (((x + y) / 3 + (i % 3) * 40) as u8).wrapping_add(block[i % MIB] & 0x0f)
        })
        .collect();
    let mut out = Vec::new();
    Encoder::new(&mut out, 85).encode(&pixels, w, h, ColorType::Rgb)?;
    Ok(out)
}
