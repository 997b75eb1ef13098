//! Convert a checkpoint between the JSON and safetensors formats (the format is chosen by each
//! path's extension; weights are copied bit for bit).
//!
//! ```text
//! cargo run --release --example convert -- fixtures/succulm_upper_middle.json \
//!     fixtures/succulm_upper_middle.safetensors
//! ```

use succulm::nn::model::Model;
use succulm::Error;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to] = args.as_slice() else {
        return Err(Error::invalid_arg(
            "arguments",
            "usage: convert <from.json|from.safetensors> <to.json|to.safetensors>",
        ));
    };
    let (model, vocab) = Model::load(from)?;
    model.save(to, &vocab)?;
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!("{from} ({} bytes) -> {to} ({} bytes)", size(from), size(to));
    Ok(())
}
