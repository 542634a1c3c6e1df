//! The `catsync` binary: parses the command line and hands over to the library.

/// mimalloc instead of the system allocator: a plan allocates and frees millions of small
/// strings from two threads, where glibc's per-thread arenas spend their time growing. Built
/// without transparent huge pages (`no_thp` in Cargo.toml): where the kernel compacts memory on
/// demand for them (`defrag` = `madvise`, a common default), a first plan spent up to a third of
/// its time in that compaction, differently from one run to the next.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = catsync::cli::main();
    // Ends without the C runtime's exit handlers and the main thread's thread-local destructors,
    // once what catsync printed is flushed (as `std::process::exit` would). The handler that
    // costs is mimalloc's: built for a library that may be unloaded, it collects and returns
    // every page it holds (~5 ms after an L delta plan, 2 % of it), which the kernel frees anyway.
    // catsync registers none of its own; the state is flushed, files are synced and workers are
    // joined before `cli::main` returns.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; nothing of this process runs after it.
    unsafe { libc::_exit(code) }
}
