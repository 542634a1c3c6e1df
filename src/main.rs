//! The `catsync` binary: parses the command line and hands over to the library.

/// mimalloc instead of the system allocator: a plan allocates and frees millions of small
/// strings from two threads, where glibc's per-thread arenas spend their time growing. Built
/// without transparent huge pages (`no_thp` in Cargo.toml): where the kernel compacts memory on
/// demand for them (`defrag` = `madvise`, a common default), a first plan spent up to a third of
/// its time in that compaction, differently from one run to the next.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(catsync::cli::main());
}
