//! Embeds the model named by `BNAS_MODEL` (a path) into the firmware and sizes the arena from it.
//!
//! The model is parsed here with the host build of bnas-device, so a malformed model fails the
//! build, and `ARENA_WORDS`, `INPUT_LEN`, `CLASSES` and `N_NODES` become constants: the arena is a
//! static, and a model whose arena does not fit the RAM budget fails at link time.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=BNAS_MODEL");
    println!("cargo:rerun-if-changed=memory.x");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());

    let path = env::var("BNAS_MODEL")
        .unwrap_or_else(|_| panic!("set BNAS_MODEL to the .bnas model file to embed (an absolute path)"));
    println!("cargo:rerun-if-changed={path}");
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("BNAS_MODEL={path}: {e}"));
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(4)) {
        let mut b = [0u8; 4];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u32::from_le_bytes(b);
    }
    let le: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let model = bnas_device::Model::parse(&le[..bytes.len()]).unwrap_or_else(|e| panic!("BNAS_MODEL={path}: {e}"));
    let (c, h, w) = model.input_shape();
    fs::write(out.join("model.bnas"), &bytes).expect("write model");
    let consts = format!(
        "/// Arena words the embedded model needs.\npub const ARENA_WORDS: usize = {};\n\
         /// u8 pixels per image.\npub const INPUT_LEN: usize = {};\n\
         /// Logits per image.\npub const CLASSES: usize = {};\n\
         /// Nodes in the graph.\npub const N_NODES: usize = {};\n\
         /// Bytes of the model file.\npub const MODEL_BYTES: usize = {};\n",
        model.arena_words(),
        c * h * w,
        model.classes(),
        model.n_nodes(),
        bytes.len()
    );
    fs::write(out.join("model_consts.rs"), consts).expect("write consts");
}
