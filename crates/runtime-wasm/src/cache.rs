//! The compile cache: machine code of components on disk, keyed by the SHA-256 of the component
//! and of the engine's compatibility settings.

use std::hash::{Hash, Hasher};
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::Loaded;

/// Reject what is not a component before handing it to the compiler, with a useful message.
pub fn check_component(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => Err(
            "is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target \
             (or adapt it with `wasm-tools component new`)"
                .into(),
        ),
        _ => Err("is not a WebAssembly component (bad magic bytes)".into()),
    }
}

pub fn load(
    engine: &wasmtime::Engine,
    cache_dir: Option<&Path>,
    bytes: &[u8],
) -> Result<Loaded, String> {
    let compile = || {
        Component::new(engine, bytes).map_err(|e| format!("cannot compile the component: {e:#}"))
    };
    let Some(dir) = cache_dir else {
        return compile().map(|component| Loaded {
            component,
            cached: false,
        });
    };
    let file = dir.join(format!("{}.cwasm", key(engine, bytes)));
    if file.is_file() {
        // SAFETY: the file was written by `store` below from `Component::serialize` of this same
        // engine configuration (the key covers the engine's compatibility hash), into a cache
        // folder muon owns, and is only ever replaced by an atomic rename.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &file) } {
            Ok(component) => {
                return Ok(Loaded {
                    component,
                    cached: true,
                });
            }
            Err(e) => tracing::warn!("ignoring unusable cache entry {}: {e:#}", file.display()),
        }
    }
    let component = compile()?;
    if let Err(e) = store(&component, dir, &file) {
        tracing::warn!("cannot write the compile cache {}: {e}", file.display());
    }
    Ok(Loaded {
        component,
        cached: false,
    })
}

fn store(component: &Component, dir: &Path, file: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

fn key(engine: &wasmtime::Engine, bytes: &[u8]) -> String {
    let mut compat = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let mut sha = Sha256::new();
    sha.update(bytes);
    sha.update(compat.finish().to_le_bytes());
    sha.update(env!("CARGO_PKG_VERSION"));
    hex::encode(sha.finalize())
}
