//! A Python pickle reader that can only build plain values.
//!
//! Django's cache pickles token values. Unpickling is code execution in Python, so this reader
//! implements only the opcodes that build `None`, bools, ints, floats, str, bytes, lists, tuples,
//! sets and dicts (protocols 2 to 5), and refuses every opcode that imports, calls or builds
//! objects (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`, extensions,
//! persistent ids, out-of-band buffers). Nothing is ever looked up or executed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// A plain value read from a pickle.
#[derive(Clone, Debug, PartialEq)]
pub enum PickleValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// bytes or bytearray.
    Bytes(Vec<u8>),
    /// A list, tuple, set or frozenset, in order.
    List(Vec<PickleValue>),
    /// A dict, in insertion order.
    Dict(Vec<(PickleValue, PickleValue)>),
}

impl PickleValue {
    /// The value under string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&PickleValue> {
        match self {
            PickleValue::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, PickleValue::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    /// An opcode that could import or call something, or that plain values never need.
    #[error("pickle opcode 0x{0:02x} is refused")]
    Refused(u8),
    /// The data ends early or is inconsistent.
    #[error("malformed pickle: {0}")]
    Malformed(&'static str),
    /// Larger or deeper than a token value can be.
    #[error("pickle exceeds the size limits")]
    TooBig,
}

const MAX_INPUT: usize = 1024 * 1024;
const MAX_NODES: usize = 100_000;
const MAX_DEPTH: usize = 64;
/// Memo references let a small pickle name one node many times; the value built from it is
/// bounded on its own, so no input can expand into more than this many values or string bytes.
const MAX_OUTPUT_VALUES: usize = 100_000;
const MAX_OUTPUT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
enum Node {
    Leaf(PickleValue),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
}

enum Slot {
    Mark,
    Node(usize),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Slot>,
    memo: std::collections::HashMap<u32, usize>,
}

/// Reads one pickle into a plain value.
///
/// # Errors
/// [`PickleError`] for anything that is not a plain-value pickle.
pub fn decode(data: &[u8]) -> Result<PickleValue, PickleError> {
    if data.len() > MAX_INPUT {
        return Err(PickleError::TooBig);
    }
    let mut m = Machine {
        data,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        memo: std::collections::HashMap::new(),
    };
    let root = m.run()?;
    let mut budget = Budget {
        values: MAX_OUTPUT_VALUES,
        bytes: MAX_OUTPUT_BYTES,
    };
    m.materialize(root, 0, &mut budget)
}

struct Budget {
    values: usize,
    bytes: usize,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(PickleError::Malformed("length overflow"))?;
        let bytes = self
            .data
            .get(self.pos..end)
            .ok_or(PickleError::Malformed("truncated"))?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le_len(&mut self, width: usize) -> Result<usize, PickleError> {
        let bytes = self.take(width)?;
        let mut n: u64 = 0;
        for (i, b) in bytes.iter().enumerate() {
            n |= u64::from(*b) << (8 * i);
        }
        usize::try_from(n).map_err(|_| PickleError::TooBig)
    }

    fn push(&mut self, node: Node) -> Result<(), PickleError> {
        if self.nodes.len() >= MAX_NODES {
            return Err(PickleError::TooBig);
        }
        self.nodes.push(node);
        self.stack.push(Slot::Node(self.nodes.len() - 1));
        Ok(())
    }

    fn leaf(&mut self, v: PickleValue) -> Result<(), PickleError> {
        self.push(Node::Leaf(v))
    }

    fn pop(&mut self) -> Result<usize, PickleError> {
        match self.stack.pop() {
            Some(Slot::Node(i)) => Ok(i),
            Some(Slot::Mark) => Err(PickleError::Malformed("unexpected mark")),
            None => Err(PickleError::Malformed("stack underflow")),
        }
    }

    fn top(&self) -> Result<usize, PickleError> {
        match self.stack.last() {
            Some(Slot::Node(i)) => Ok(*i),
            _ => Err(PickleError::Malformed("no value on the stack")),
        }
    }

    fn pop_to_mark(&mut self) -> Result<Vec<usize>, PickleError> {
        let mut items = Vec::new();
        loop {
            match self.stack.pop() {
                Some(Slot::Node(i)) => items.push(i),
                Some(Slot::Mark) => break,
                None => return Err(PickleError::Malformed("missing mark")),
            }
        }
        items.reverse();
        Ok(items)
    }

    fn string(&mut self, len: usize) -> Result<(), PickleError> {
        let s = std::str::from_utf8(self.take(len)?)
            .map_err(|_| PickleError::Malformed("invalid UTF-8"))?;
        let s = s.to_owned();
        self.leaf(PickleValue::Str(s))
    }

    fn bytes(&mut self, len: usize) -> Result<(), PickleError> {
        let b = self.take(len)?.to_vec();
        self.leaf(PickleValue::Bytes(b))
    }

    fn long(&mut self, len: usize) -> Result<(), PickleError> {
        if len > 8 {
            return Err(PickleError::Malformed("integer wider than 64 bits"));
        }
        let bytes = self.take(len)?;
        let mut n: i64 = 0;
        for (i, b) in bytes.iter().enumerate() {
            n |= i64::from(*b) << (8 * i);
        }
        if len > 0 && len < 8 && bytes[len - 1] & 0x80 != 0 {
            n -= 1i64 << (8 * len);
        }
        self.leaf(PickleValue::Int(n))
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        let node = *self
            .memo
            .get(&key)
            .ok_or(PickleError::Malformed("unknown memo key"))?;
        self.stack.push(Slot::Node(node));
        Ok(())
    }

    fn set_items(&mut self, dict: usize, flat: Vec<usize>) -> Result<(), PickleError> {
        if !flat.len().is_multiple_of(2) {
            return Err(PickleError::Malformed("odd number of dict items"));
        }
        let Some(Node::Dict(items)) = self.nodes.get_mut(dict) else {
            return Err(PickleError::Malformed("setitem on a non-dict"));
        };
        for pair in flat.chunks_exact(2) {
            items.push((pair[0], pair[1]));
        }
        Ok(())
    }

    fn append(&mut self, list: usize, values: Vec<usize>) -> Result<(), PickleError> {
        let Some(Node::List(items)) = self.nodes.get_mut(list) else {
            return Err(PickleError::Malformed("append on a non-list"));
        };
        items.extend(values);
        Ok(())
    }

    fn run(&mut self) -> Result<usize, PickleError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return Err(PickleError::Malformed("unsupported protocol"));
                    }
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    self.stack
                        .pop()
                        .ok_or(PickleError::Malformed("stack underflow"))?;
                }
                b'1' => {
                    self.pop_to_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(Slot::Node(top));
                }
                b'N' => self.leaf(PickleValue::None)?,
                0x88 => self.leaf(PickleValue::Bool(true))?,
                0x89 => self.leaf(PickleValue::Bool(false))?,
                b'J' => {
                    let b = self.take(4)?;
                    let n = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    self.leaf(PickleValue::Int(i64::from(n)))?;
                }
                b'K' => {
                    let n = self.u8()?;
                    self.leaf(PickleValue::Int(i64::from(n)))?;
                }
                b'M' => {
                    let b = self.take(2)?;
                    let n = u16::from_le_bytes([b[0], b[1]]);
                    self.leaf(PickleValue::Int(i64::from(n)))?;
                }
                0x8a => {
                    let len = usize::from(self.u8()?);
                    self.long(len)?;
                }
                0x8b => {
                    let len = self.le_len(4)?;
                    self.long(len)?;
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(b);
                    self.leaf(PickleValue::Float(f64::from_be_bytes(raw)))?;
                }
                0x8c => {
                    let len = usize::from(self.u8()?);
                    self.string(len)?;
                }
                b'X' => {
                    let len = self.le_len(4)?;
                    self.string(len)?;
                }
                0x8d => {
                    let len = self.le_len(8)?;
                    self.string(len)?;
                }
                b'C' | b'U' => {
                    let len = usize::from(self.u8()?);
                    self.bytes(len)?;
                }
                b'B' | b'T' => {
                    let len = self.le_len(4)?;
                    self.bytes(len)?;
                }
                0x8e | 0x96 => {
                    let len = self.le_len(8)?;
                    self.bytes(len)?;
                }
                b'}' => self.push(Node::Dict(Vec::new()))?,
                b']' => self.push(Node::List(Vec::new()))?,
                b')' => self.push(Node::Tuple(Vec::new()))?,
                0x8f => self.push(Node::List(Vec::new()))?,
                b'd' => {
                    let flat = self.pop_to_mark()?;
                    self.push(Node::Dict(Vec::new()))?;
                    let dict = self.top()?;
                    self.set_items(dict, flat)?;
                }
                b'l' => {
                    let items = self.pop_to_mark()?;
                    self.push(Node::List(items))?;
                }
                b't' => {
                    let items = self.pop_to_mark()?;
                    self.push(Node::Tuple(items))?;
                }
                0x91 => {
                    let items = self.pop_to_mark()?;
                    self.push(Node::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items))?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, vec![key, value])?;
                }
                b'u' => {
                    let flat = self.pop_to_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, flat)?;
                }
                b'a' => {
                    let value = self.pop()?;
                    let list = self.top()?;
                    self.append(list, vec![value])?;
                }
                b'e' | 0x90 => {
                    let values = self.pop_to_mark()?;
                    let list = self.top()?;
                    self.append(list, values)?;
                }
                0x94 => {
                    let key = u32::try_from(self.memo.len()).map_err(|_| PickleError::TooBig)?;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = u32::from(self.u8()?);
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.le_len(4)?;
                    self.memo_put(u32::try_from(key).map_err(|_| PickleError::TooBig)?)?;
                }
                b'h' => {
                    let key = u32::from(self.u8()?);
                    self.memo_get(key)?;
                }
                b'j' => {
                    let key = self.le_len(4)?;
                    self.memo_get(u32::try_from(key).map_err(|_| PickleError::TooBig)?)?;
                }
                other => return Err(PickleError::Refused(other)),
            }
        }
    }

    fn materialize(
        &self,
        index: usize,
        depth: usize,
        budget: &mut Budget,
    ) -> Result<PickleValue, PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::TooBig);
        }
        let node = self
            .nodes
            .get(index)
            .ok_or(PickleError::Malformed("dangling reference"))?;
        budget.values = budget.values.checked_sub(1).ok_or(PickleError::TooBig)?;
        let size = match node {
            Node::Leaf(PickleValue::Str(s)) => s.len(),
            Node::Leaf(PickleValue::Bytes(b)) => b.len(),
            _ => 0,
        };
        budget.bytes = budget.bytes.checked_sub(size).ok_or(PickleError::TooBig)?;
        Ok(match node {
            Node::Leaf(v) => v.clone(),
            Node::List(items) | Node::Tuple(items) => PickleValue::List(
                items
                    .iter()
                    .map(|i| self.materialize(*i, depth + 1, budget))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Dict(items) => {
                // As in Python, a key set again keeps its first place and takes the later value.
                let mut entries: Vec<(PickleValue, PickleValue)> = Vec::with_capacity(items.len());
                let mut places: HashMap<DictKey, usize> = HashMap::with_capacity(items.len());
                for (k, v) in items {
                    let key = self.materialize(*k, depth + 1, budget)?;
                    let value = self.materialize(*v, depth + 1, budget)?;
                    let Some(hashed) = DictKey::of(&key) else {
                        entries.push((key, value));
                        continue;
                    };
                    match places.entry(hashed) {
                        Entry::Occupied(place) => {
                            if let Some(entry) = entries.get_mut(*place.get()) {
                                entry.1 = value;
                            }
                        }
                        Entry::Vacant(place) => {
                            place.insert(entries.len());
                            entries.push((key, value));
                        }
                    }
                }
                PickleValue::Dict(entries)
            }
        })
    }
}

/// A dict key as Python compares it: `1`, `1.0` and `True` are the same key, as are `0`, `-0.0`
/// and `False`. [`DictKey::of`] gives nothing for a NaN or a dict, which are never merged.
#[derive(PartialEq, Eq, Hash)]
enum DictKey {
    None,
    Int(i64),
    Float(u64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<DictKey>),
}

impl DictKey {
    fn of(value: &PickleValue) -> Option<DictKey> {
        Some(match value {
            PickleValue::None => DictKey::None,
            PickleValue::Bool(b) => DictKey::Int(i64::from(*b)),
            PickleValue::Int(i) => DictKey::Int(*i),
            PickleValue::Float(f) if f.is_nan() => return None,
            // Whole floats in i64 range equal the int (the cast is exact there).
            PickleValue::Float(f)
                if f.fract() == 0.0 && (-(2f64.powi(63))..2f64.powi(63)).contains(f) =>
            {
                DictKey::Int(*f as i64)
            }
            PickleValue::Float(f) => DictKey::Float(f.to_bits()),
            PickleValue::Str(s) => DictKey::Str(s.clone()),
            PickleValue::Bytes(b) => DictKey::Bytes(b.clone()),
            PickleValue::List(items) => {
                DictKey::Tuple(items.iter().map(DictKey::of).collect::<Option<_>>()?)
            }
            PickleValue::Dict(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests;
