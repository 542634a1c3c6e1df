//! The `catsync` binary: parses the command line and hands over to the library.

fn main() {
    std::process::exit(catsync::cli::main());
}
