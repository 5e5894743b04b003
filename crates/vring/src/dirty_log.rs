//! The dirty-page log of live migration (vhost-user spec, "Migration" / SET_LOG_BASE): a bitmap
//! in memory shared with the front-end, one bit per `VHOST_LOG_PAGE` (4 KiB) of guest-physical
//! address space. While VHOST_F_LOG_ALL is negotiated every write the device makes into guest
//! memory sets the bits of the pages it touched; the front-end collects and clears them
//! concurrently, so bits are only ever set with atomic ORs.
//!
//! Layout (the kernel's vhost and QEMU's `vhost_log_chunk_t`): an array of native-endian 64-bit
//! words; page `p` is bit `p % 64` of word `p / 64`.
//!
//! Threat model: the front-end chooses the fd, size and offset (hostile). The file is fstat()ed
//! before it is mapped, so a short file is refused here instead of raising SIGBUS later, and every
//! bit is bounds-checked against the mapped size. A write to a page past the end of the log cannot
//! be recorded: it is counted (`missed_pages`), never written out of bounds.

use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::error::DirtyLogError;
use crate::memory::WriteLog;
use crate::mmap::{errno, page_size, Mmap};

/// Bytes of guest-physical address space per log bit (spec: VHOST_LOG_PAGE).
pub const VHOST_LOG_PAGE: u64 = 0x1000;

/// A mapped dirty-page bitmap.
#[derive(Debug)]
pub struct DirtyLog {
    /// Keeps the log mapped; `bitmap` points into it.
    mapping: Mmap,
    /// Offset of the bitmap's first byte inside `mapping` (mmap_offset minus its page-aligned part).
    start: usize,
    /// Length of the bitmap in bytes (SET_LOG_BASE `mmap_size`).
    len: usize,
    /// Pages written beyond the end of the bitmap (a log too small for guest memory).
    missed: AtomicU64,
}

impl DirtyLog {
    /// Maps `[mmap_offset, mmap_offset + mmap_size)` of `fd` (SET_LOG_BASE). Refuses a zero size,
    /// an overflowing range and a file shorter than the range. Does not take ownership of `fd`.
    pub fn map(fd: RawFd, mmap_size: u64, mmap_offset: u64) -> Result<DirtyLog, DirtyLogError> {
        if mmap_size == 0 {
            return Err(DirtyLogError::ZeroSize);
        }
        let end = mmap_offset
            .checked_add(mmap_size)
            .ok_or(DirtyLogError::RangeOverflow { mmap_offset, mmap_size })?;
        let mut stat = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes at most one `struct stat` into the buffer we own.
        if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
            return Err(DirtyLogError::Fstat { errno: errno() });
        }
        // SAFETY: fstat returned 0, so it initialised the struct.
        let file_size = u64::try_from(unsafe { stat.assume_init() }.st_size).unwrap_or(0);
        if end > file_size {
            return Err(DirtyLogError::BeyondFile { mmap_offset, mmap_size, file_size });
        }
        let page = page_size() as u64;
        let aligned_offset = mmap_offset & !(page - 1);
        let start = mmap_offset - aligned_offset;
        let too_large = DirtyLogError::RangeOverflow { mmap_offset, mmap_size };
        let len = usize::try_from(mmap_size).map_err(|_| too_large.clone())?;
        let map_len = len.checked_add(start as usize).ok_or(too_large)?;
        let mapping = Mmap::map_shared(fd, aligned_offset, map_len, 0).map_err(DirtyLogError::Map)?;
        Ok(DirtyLog { mapping, start: start as usize, len, missed: AtomicU64::new(0) })
    }

    /// Size of the bitmap in bytes.
    pub fn size(&self) -> usize {
        self.len
    }

    /// How many page marks fell past the end of the bitmap and were lost.
    pub fn missed_pages(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Sets the bit of every page of `[gpa, gpa + len)`.
    pub fn mark(&self, gpa: u64, len: usize) {
        if len == 0 {
            return;
        }
        let last_byte = gpa.saturating_add(len as u64 - 1);
        for page in gpa / VHOST_LOG_PAGE..=last_byte / VHOST_LOG_PAGE {
            self.mark_page(page);
        }
    }

    fn mark_page(&self, page: u64) {
        let (byte, mask) = bit_position(page);
        let Some(byte) = usize::try_from(byte).ok().filter(|&b| b < self.len) else {
            self.missed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // SAFETY: byte < len and `start + len` bytes of the mapping are mapped read-write for the
        // life of `self`; AtomicU8 has alignment 1; every access to the shared bitmap from this
        // process is atomic (the front-end uses atomic exchanges on whole words).
        let cell = unsafe { &*self.mapping.as_ptr().add(self.start + byte).cast::<AtomicU8>() };
        // Relaxed: the front-end reads the log only after stopping the rings or after a sync,
        // both of which order our writes (the worker is joined / the syscall is a barrier).
        cell.fetch_or(mask, Ordering::Relaxed);
    }
}

/// Byte offset and bit mask of `page` in a bitmap of native-endian 64-bit words.
fn bit_position(page: u64) -> (u64, u8) {
    let word = page / 64;
    let bit = page % 64;
    let byte_in_word = if cfg!(target_endian = "little") { bit / 8 } else { 7 - bit / 8 };
    (word.saturating_mul(8).saturating_add(byte_in_word), 1u8 << (bit % 8))
}

impl WriteLog for DirtyLog {
    fn log_write(&self, gpa: u64, len: usize) {
        self.mark(gpa, len);
    }
}
