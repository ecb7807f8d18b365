//! The keyed state file: one per operator subtask per checkpoint.
//!
//! ```text
//! "FLOEKS02"                                  magic (keys and values: CBOR)
//! u64 header_len, header (bincode), u64 xxh3  state names, max parallelism
//! block per key group, ascending              bincode Vec<(key bytes, Vec<Option<value bytes>>)>
//! index (bincode)                             Vec<IndexEntry { key_group, offset, len, entries, checksum }>
//! u64 index_offset, u64 index_len, u64 index_checksum, "FLOEKEND"
//! ```
//!
//! The index lets a restoring subtask read only the key groups it owns. Every byte is
//! covered by a magic number, a bound check or an xxh3 checksum (header, each block, the
//! index), so a truncated or corrupted file is detected, never restored.

use crate::storage::Location;
use crate::Result;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use xxhash_rust::xxh3::xxh3_64;

/// Key bytes of an entry that belongs to an operator subtask, not to a key (a timed
/// operator's watermark): `0xff` starts no CBOR item, so no key encodes so.
pub const OPERATOR_ENTRY_KEY: &[u8] = b"\xff_operator";

/// The hidden state every timed operator (process functions, windows, joins) keeps its
/// timers in: one value per key, `{"event": [[ts, namespace], ..], "processing": [..]}`.
pub const TIMERS_STATE: &str = "_timers";

/// The hidden state of a timed operator's combined watermark: operator entries
/// ([`OPERATOR_ENTRY_KEY`]), one per key group the subtask owned, restored as a floor.
pub const WATERMARK_STATE: &str = "_watermark";

/// Version 2: keys and values are CBOR (self-describing).
const MAGIC: &[u8; 8] = b"FLOEKS02";
const END_MAGIC: &[u8; 8] = b"FLOEKEND";

/// Header of a keyed state file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StateFileHeader {
    /// State names; entry values are in this order.
    pub state_names: Vec<String>,
    /// The job's max parallelism when the file was written.
    pub max_parallelism: u32,
}

/// Where one key group's block lives in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The key group.
    pub key_group: u32,
    /// Byte offset of the block.
    pub offset: u64,
    /// Block length in bytes.
    pub len: u64,
    /// Number of keys in the block.
    pub entries: u64,
    /// xxh3 of the block bytes.
    pub checksum: u64,
}

/// One key's entry: key bytes and per-state value bytes.
pub type Entry = (Vec<u8>, Vec<Option<Vec<u8>>>);

/// What was written.
#[derive(Clone, Debug)]
pub struct WrittenFile {
    /// File size in bytes.
    pub size: u64,
    /// Number of keys.
    pub entries: u64,
}

/// Writes a keyed state file from entries grouped by ascending key group, then fsyncs it.
pub fn write_state_file<'a, I>(
    path: &Path,
    header: &StateFileHeader,
    groups: I,
) -> Result<WrittenFile>
where
    I: IntoIterator<Item = (u32, Vec<(&'a [u8], &'a [Option<Vec<u8>>])>)>,
{
    let f = File::create(path)
        .with_context(|| format!("cannot create state file {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 16, f);
    let shown = path.display().to_string();
    let written = encode_state_file(&mut w, &shown, header, groups)?;
    let f = w
        .into_inner()
        .map_err(|e| crate::anyhow!("cannot write state file {}: {}", path.display(), e.error()))?;
    f.sync_all()
        .with_context(|| format!("cannot sync state file {}", path.display()))?;
    Ok(written)
}

/// Encodes a keyed state file in memory (to be uploaded to an object store).
pub fn state_file_bytes<'a, I>(
    header: &StateFileHeader,
    groups: I,
) -> Result<(Vec<u8>, WrittenFile)>
where
    I: IntoIterator<Item = (u32, Vec<(&'a [u8], &'a [Option<Vec<u8>>])>)>,
{
    let mut buf = Vec::new();
    let w = encode_state_file(&mut buf, "in memory", header, groups)?;
    Ok((buf, w))
}

/// Writes the state file format to `w`; `shown` names the file in errors.
fn encode_state_file<'a, W: Write, I>(
    w: &mut W,
    shown: &str,
    header: &StateFileHeader,
    groups: I,
) -> Result<WrittenFile>
where
    I: IntoIterator<Item = (u32, Vec<(&'a [u8], &'a [Option<Vec<u8>>])>)>,
{
    let mut pos: u64 = 0;
    let put = |w: &mut W, bytes: &[u8], pos: &mut u64| -> Result<()> {
        w.write_all(bytes)
            .with_context(|| format!("cannot write state file {shown}"))?;
        *pos += bytes.len() as u64;
        Ok(())
    };
    put(w, MAGIC, &mut pos)?;
    let hb = bincode::serialize(header)?;
    put(w, &(hb.len() as u64).to_le_bytes(), &mut pos)?;
    put(w, &hb, &mut pos)?;
    put(w, &xxh3_64(&hb).to_le_bytes(), &mut pos)?;
    let mut index = Vec::new();
    let mut total = 0u64;
    for (kg, entries) in groups {
        let block = bincode::serialize(&entries)?;
        index.push(IndexEntry {
            key_group: kg,
            offset: pos,
            len: block.len() as u64,
            entries: entries.len() as u64,
            checksum: xxh3_64(&block),
        });
        total += entries.len() as u64;
        put(w, &block, &mut pos)?;
    }
    let ib = bincode::serialize(&index)?;
    let index_offset = pos;
    put(w, &ib, &mut pos)?;
    put(w, &index_offset.to_le_bytes(), &mut pos)?;
    put(w, &(ib.len() as u64).to_le_bytes(), &mut pos)?;
    put(w, &xxh3_64(&ib).to_le_bytes(), &mut pos)?;
    put(w, END_MAGIC, &mut pos)?;
    Ok(WrittenFile {
        size: pos,
        entries: total,
    })
}

/// What a state file is read from: a local file, or an object fetched whole.
trait Source: Read + Seek + Send {}
impl<T: Read + Seek + Send> Source for T {}

/// An open keyed state file with its header and index read and verified.
pub struct StateFileReader {
    file: Box<dyn Source>,
    path: String,
    /// The file's header.
    pub header: StateFileHeader,
    /// The file's index.
    pub index: Vec<IndexEntry>,
}

impl StateFileReader {
    /// Opens `path`, checking magic numbers, the index checksum and block bounds.
    pub fn open(path: &Path) -> Result<Self> {
        let p = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot open state file {p}"))?;
        let size = file
            .metadata()
            .with_context(|| format!("cannot read state file {p}"))?
            .len();
        Self::from_source(Box::new(file), size, p)
    }

    /// Opens the state file at `loc`. An object-store file is fetched whole (one GET) and
    /// read from memory; a local one is read in place.
    pub fn open_location(loc: &Location) -> Result<Self> {
        match loc {
            Location::Local(p) => Self::open(p),
            o => {
                let bytes = crate::storage::read(o)
                    .with_context(|| format!("cannot open state file {o}"))?;
                let size = bytes.len() as u64;
                Self::from_source(Box::new(std::io::Cursor::new(bytes)), size, o.to_string())
            }
        }
    }

    fn from_source(mut file: Box<dyn Source>, size: u64, p: String) -> Result<Self> {
        let bad = |what: &str| crate::anyhow!("corrupt state file {p}: {what}");
        if size < 8 + 8 + 8 + 32 {
            return Err(bad("too short"));
        }
        let io = |e: std::io::Error| crate::anyhow!("corrupt state file {p}: {e}");
        let mut magic = [0u8; 8];
        file.read_exact(&mut magic).map_err(io)?;
        if &magic != MAGIC {
            if magic.starts_with(b"FLOEKS") {
                return Err(bad(&format!(
                    "unsupported state file version {}",
                    // Escaped: a corrupted version may hold any byte, a line break among them.
                    magic[6..].escape_ascii()
                )));
            }
            return Err(bad("not a Floe keyed state file (bad magic)"));
        }
        let mut u = [0u8; 8];
        file.read_exact(&mut u).map_err(io)?;
        let hlen = u64::from_le_bytes(u);
        if hlen > size - 8 - 8 - 8 - 32 {
            return Err(bad("header length out of bounds"));
        }
        let mut hb = vec![0u8; hlen as usize];
        file.read_exact(&mut hb).map_err(io)?;
        file.read_exact(&mut u).map_err(io)?;
        if xxh3_64(&hb) != u64::from_le_bytes(u) {
            return Err(bad("header checksum mismatch"));
        }
        let header: StateFileHeader =
            bincode::deserialize(&hb).map_err(|_| bad("unreadable header"))?;
        let header_end = 8 + 8 + hlen + 8;
        let mut tail = [0u8; 32];
        file.seek(SeekFrom::Start(size - 32)).map_err(io)?;
        file.read_exact(&mut tail).map_err(io)?;
        if &tail[24..32] != END_MAGIC {
            return Err(bad("truncated (missing end marker)"));
        }
        let ioff = u64::from_le_bytes(tail[0..8].try_into().expect("8 bytes"));
        let ilen = u64::from_le_bytes(tail[8..16].try_into().expect("8 bytes"));
        let isum = u64::from_le_bytes(tail[16..24].try_into().expect("8 bytes"));
        if ioff < header_end || ioff.checked_add(ilen) != Some(size - 32) {
            return Err(bad("index out of bounds"));
        }
        let mut ib = vec![0u8; ilen as usize];
        file.seek(SeekFrom::Start(ioff)).map_err(io)?;
        file.read_exact(&mut ib).map_err(io)?;
        if xxh3_64(&ib) != isum {
            return Err(bad("index checksum mismatch"));
        }
        let index: Vec<IndexEntry> =
            bincode::deserialize(&ib).map_err(|_| bad("unreadable index"))?;
        // The blocks must tile the space between the header and the index exactly.
        let mut at = header_end;
        for e in &index {
            if e.offset != at || e.offset.checked_add(e.len).is_none_or(|end| end > ioff) {
                return Err(bad("block out of bounds"));
            }
            at = e.offset + e.len;
        }
        if at != ioff {
            return Err(bad("blocks do not cover the data section"));
        }
        Ok(StateFileReader {
            file,
            path: p,
            header,
            index,
        })
    }

    /// Reads the entries of one index entry's key group, verifying its checksum.
    pub fn read_block(&mut self, e: &IndexEntry) -> Result<Vec<Entry>> {
        let mut block = vec![0u8; e.len as usize];
        let p = &self.path;
        let io = |err: std::io::Error| crate::anyhow!("corrupt state file {p}: {err}");
        self.file.seek(SeekFrom::Start(e.offset)).map_err(io)?;
        self.file.read_exact(&mut block).map_err(io)?;
        if xxh3_64(&block) != e.checksum {
            crate::bail!(
                "corrupt state file {}: checksum mismatch in key group {}",
                self.path,
                e.key_group
            );
        }
        bincode::deserialize(&block).map_err(|err| {
            crate::anyhow!(
                "corrupt state file {}: key group {}: {err}",
                self.path,
                e.key_group
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let header = StateFileHeader {
            state_names: vec!["count".into()],
            max_parallelism: 128,
        };
        let k1 = b"k1".to_vec();
        let v1 = [Some(vec![1u8, 2])];
        let k2 = b"k2".to_vec();
        let v2 = [None];
        let groups = vec![
            (3u32, vec![(&k1[..], &v1[..])]),
            (77u32, vec![(&k2[..], &v2[..])]),
        ];
        let w = write_state_file(&p, &header, groups).unwrap();
        assert_eq!(w.entries, 2);
        let mut r = StateFileReader::open(&p).unwrap();
        assert_eq!(r.index.len(), 2);
        let e = r.index[1].clone();
        assert_eq!(r.read_block(&e).unwrap(), vec![(k2.clone(), v2.to_vec())]);

        // Flip one byte inside the first block.
        let mut bytes = std::fs::read(&p).unwrap();
        let off = r.index[0].offset as usize;
        bytes[off + 1] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        let mut r = StateFileReader::open(&p).unwrap();
        let e = r.index[0].clone();
        assert!(r
            .read_block(&e)
            .unwrap_err()
            .to_string()
            .contains("checksum mismatch"));

        // Truncate.
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        assert!(StateFileReader::open(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("corrupt state file"));
    }
}
