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
