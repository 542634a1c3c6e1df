//! `catsync gen`: writes deterministic synthetic Sales Layer exports for benchmarks.

use std::path::PathBuf;

use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::gen::{delta, full, Delta, Size};

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// `S` (1k products), `M` (10k), `L` (100k × 4 variants, 500 categories), `XL` (1M × 4).
    #[arg(long, default_value = "S")]
    pub size: String,
    /// Directory for `00-full.json` (and `01-delta.json`).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write a delta changing this fraction of products…
    #[arg(long)]
    pub delta_products: Option<f64>,
    /// …repricing this fraction of variants…
    #[arg(long, default_value_t = 0.0)]
    pub delta_variants: f64,
    /// …and renaming this many categories.
    #[arg(long, default_value_t = 0)]
    pub delta_categories: usize,
}

pub fn exec(args: &GenArgs, g: &Globals) -> Result<Exit, Error> {
    let size = Size::named(&args.size)
        .ok_or_else(|| Error::failed(format!("unknown size `{}`: use S, M, L or XL", args.size)))?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io("create directory", &args.out, e))?;
    let write = |name: &str, f: &dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()>| -> Result<(), Error> {
        let path = args.out.join(name);
        let file = std::fs::File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        f(&mut w).and_then(|_| std::io::Write::flush(&mut w)).map_err(|e| Error::io("write", &path, e))?;
        if !g.quiet {
            super::outln(format_args!("wrote {}", path.display()))?;
        }
        Ok(())
    };
    write("00-full.json", &|w| full(w, &size, args.seed))?;
    if let Some(products) = args.delta_products {
        let d = Delta { products, variants: args.delta_variants, renamed_categories: args.delta_categories };
        write("01-delta.json", &|w| delta(w, &size, args.seed, &d))?;
    }
    Ok(Exit::Success)
}
