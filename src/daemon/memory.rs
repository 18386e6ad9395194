//! How the daemon asks the C library's allocator to hold memory.
//!
//! glibc serves blocks from 128 KiB up with `mmap`, but raises that
//! threshold (up to 32 MiB) each time such a block is freed, after which
//! big blocks come from the heap. A table that grows by doubling (the
//! queue's per-message tables, one entry a queued message) then leaves
//! each outgrown copy behind in the heap, resident and mostly unused: a
//! queue of deferred messages cost about twice what its tables hold. A
//! fixed threshold keeps every big block in its own mapping, which a
//! `realloc` moves with `mremap` (no copy left behind) and a `free` gives
//! back to the system at once.
//!
//! Smaller blocks stay in the heaps glibc keeps (one "arena" per thread
//! that needed one), which give memory back only from their top: the
//! queue's recovery makes millions of small, short-lived blocks on a
//! blocking-pool thread, and the pages they leave free between longer
//! lived blocks stay resident. [`release_free_memory`] gives those back
//! once recovery is over.

/// Blocks from this size up get a mapping of their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Fixes the allocator's `mmap` threshold (glibc only; elsewhere, as is).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator (under its own
    // lock, so any thread may call it), with a valid option and value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Gives the allocator's free pages back to the system, in every arena
/// (glibc only; elsewhere, nothing). For after a one-off burst of
/// allocations, such as the queue's recovery; it walks the free lists, so
/// not for a hot path.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists under
    // its locks and returns free pages to the system; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}
