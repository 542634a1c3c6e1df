//! The `catsync` binary: parses the command line and hands over to the library.

/// mimalloc instead of the system allocator: a plan allocates and frees millions of small
/// strings from two threads, where glibc's per-thread arenas spend their time growing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(catsync::cli::main());
}
