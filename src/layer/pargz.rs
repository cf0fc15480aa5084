//! Parallel gzip with output that does not depend on the number of threads.
//!
//! The uncompressed stream is cut into fixed [`BLOCK`]-byte blocks. Each block is deflated on
//! its own (in a dedicated thread pool) with the previous block's last 32 KiB as the
//! dictionary, the way pigz does it; every block but the last ends with a sync flush, so the
//! blocks concatenate into one ordinary deflate stream inside one gzip member. The bytes
//! depend only on the input, [`BLOCK`], the level and the backend, never on the thread count
//! or timing: blocks are written strictly in order.
//!
//! The backend is `zlib-rs` (pure Rust). Its SIMD paths only compute match lengths and slide
//! the hash table, so the compressed bytes are the same on every CPU.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::OnceLock;

use flate2::{Compress, FlushCompress, Status};

/// Uncompressed bytes per independently compressed block. Part of the output format: a
/// change changes every gzip layer's digest (it is in the compressor id).
pub const BLOCK: usize = 1 << 20;
/// Deflate's window: the dictionary each block gets from the one before it.
const DICT: usize = 32 * 1024;
/// Gzip header OS byte: 255 ("unknown"), so the header does not depend on the build host.
const OS_UNKNOWN: u8 = 255;

/// The pool that compresses blocks. Separate from rayon's global pool on purpose: layer
/// builds run on the global pool and block waiting for their blocks, so blocks must never
/// queue behind them (that could deadlock with every global worker waiting).
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("strata-gzip-{i}"))
            .build()
            .or_else(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
            .expect("a one-thread pool can always be built")
    })
}

type Pending = Receiver<io::Result<Vec<u8>>>;

/// A `Write` that gzips what it is given into `out`, compressing blocks in parallel.
pub struct ParGzWriter<W: Write> {
    out: Option<W>,
    level: u32,
    block: Vec<u8>,
    /// The last [`DICT`] bytes of the previous block.
    dict: Vec<u8>,
    pending: VecDeque<Pending>,
    max_pending: usize,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> ParGzWriter<W> {
    pub fn new(mut out: W, level: u32) -> io::Result<Self> {
        // XFL is 0 for levels 2..=8, as zlib writes it.
        let xfl = match level {
            9 => 2,
            0 | 1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, OS_UNKNOWN])?;
        Ok(ParGzWriter {
            out: Some(out),
            level,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            pending: VecDeque::new(),
            // Enough blocks in flight to keep every thread busy while bounding memory.
            max_pending: 2 * pool().current_num_threads() + 1,
            crc: crc32fast::Hasher::new(),
            len: 0,
        })
    }

    fn out(&mut self) -> &mut W {
        self.out.as_mut().expect("used after finish")
    }

    /// Hands the current block to the pool; writes finished blocks when too many are queued.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.dict);
        if !last {
            self.dict = data[data.len().saturating_sub(DICT)..].to_vec();
        }
        let level = self.level;
        let (tx, rx) = sync_channel(1);
        pool().spawn(move || {
            // The receiver only goes away when the writer is dropped mid-stream.
            let _ = tx.send(deflate_block(&data, &dict, level, last));
        });
        self.pending.push_back(rx);
        while self.pending.len() > self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let bytes = rx
                .recv()
                .map_err(|_| io::Error::other("a compression thread stopped"))??;
            self.out().write_all(&bytes)?;
        }
        Ok(())
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let crc = self.crc.clone().finalize();
        let isize = self.len as u32; // gzip stores the length modulo 2^32
        let mut out = self.out.take().expect("used after finish");
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(&isize.to_le_bytes())?;
        Ok(out)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        if self.block.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are fixed-size by design; flushing early would change the output.
        Ok(())
    }
}

/// One block as raw deflate: ends with a sync flush (byte-aligned, not final) unless `last`.
fn deflate_block(data: &[u8], dict: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let done_in = c.total_in() as usize;
        let status = c
            .compress_vec(&data[done_in..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete when the compressor left output space unused.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => break,
            Status::Ok | Status::BufError => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    fn gzip(data: &[u8], chunk: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), 6).expect("new");
        for c in data.chunks(chunk.max(1)) {
            w.write_all(c).expect("write");
        }
        w.finish().expect("finish")
    }

    /// Compressible but not trivial: text-like with some variety.
    fn sample(n: usize) -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 7 == 0 {
                    b'a' + (x >> 16) as u8 % 26
                } else {
                    b"the quick brown fox "[i % 20]
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_at_block_edges() {
        for n in [0, 1, DICT, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17] {
            let data = sample(n);
            let gz = gzip(&data, 100_000);
            assert_eq!(gunzip(&gz), data, "size {n}");
            assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
            assert_eq!(gz[9], OS_UNKNOWN);
        }
    }

    #[test]
    fn output_does_not_depend_on_write_sizes() {
        let data = sample(2 * BLOCK + 4321);
        let a = gzip(&data, 1);
        let b = gzip(&data, 4096);
        let c = gzip(&data, data.len());
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let data = sample(3 * BLOCK + 99);
        let here = gzip(&data, 65536);
        // The same blocks compressed one after another on this thread.
        let blocks: Vec<&[u8]> = data.chunks(BLOCK).collect();
        let mut serial = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, OS_UNKNOWN];
        let mut dict: &[u8] = &[];
        for (i, b) in blocks.iter().enumerate() {
            let last = i + 1 == blocks.len();
            serial.extend(deflate_block(b, dict, 6, last).expect("deflate"));
            dict = &b[b.len().saturating_sub(DICT)..];
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&data);
        serial.extend(crc.finalize().to_le_bytes());
        serial.extend((data.len() as u32).to_le_bytes());
        assert_eq!(here, serial);
    }

    #[test]
    fn the_dictionary_is_used() {
        // Incompressible bytes, then a short last block repeating the first block's tail:
        // only a block that sees the previous block's tail can shrink it to nearly nothing.
        let mut x: u64 = 7;
        let mut data: Vec<u8> = (0..BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let tail = data[BLOCK - 30_000..].to_vec();
        data.extend_from_slice(&tail);
        let gz = gzip(&data, 65536);
        let first = deflate_block(&data[..BLOCK], &[], 6, false).expect("deflate");
        let second_alone = deflate_block(&tail, &[], 6, true).expect("deflate");
        assert!(second_alone.len() > 29_000, "{}", second_alone.len());
        assert!(
            gz.len() < first.len() + 1_000,
            "{} vs {}",
            gz.len(),
            first.len()
        );
        assert_eq!(gunzip(&gz), data);
    }
}
