//! The process's memory policy: what glibc's allocator keeps, so that a server whose
//! functions have scaled to zero gives their memory back to the OS.

/// Allocations of 4 MiB and more (model files, weights, plans' packed constants) get their own
/// mappings, returned to the OS as soon as they are freed. glibc's default threshold starts at
/// 128 KiB but rises to the size of the largest block freed (up to 32 MiB), after which model
/// weights land in the heap, and a model freed by scale to zero leaves holes the heap keeps.
/// Process-wide, set once, before the server allocates.
pub(crate) fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator tuning, for allocations made from now on.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
            }
        });
    }
}

/// The process's resident memory, bytes (Linux: `/proc/self/statm`), for `/metrics`.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Returns freed heap pages, in every arena, to the OS (glibc keeps them otherwise). Called
/// after start-up (compiling the built-in components leaves megabytes freed) and whenever
/// functions scale to zero. Takes milliseconds on a large heap: call it on a blocking thread.
pub(crate) fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
