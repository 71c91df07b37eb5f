//! Checkpoints: every tensor of a run (parameters, buffers, optimizer state) in one
//! safetensors file whose metadata carries the run's JSON state, written to a temporary file
//! and renamed, so a run killed at any moment leaves either the old or the new checkpoint.
//! A copy of the state is written beside it as `state.json` for people.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::engine::optim::{Adam, Sgd};
use crate::engine::{Backend, Buffers, ParamStore};

pub const FILE: &str = "checkpoint.safetensors";
const STATE_KEY: &str = "bnas_state";

/// A named f32 tensor on the host.
pub struct HostTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Writes `path` atomically: a temporary file beside it, then a rename.
/// The temporary file is the path with `.tmp` appended, so `m.bnas` and `m.onnx` never share one;
/// an error names `path`, the file the user asked for.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// The run folder `out`'s side of starting (`resume` false) or resuming a `what` ("run",
/// "search") whose configuration file is `config`: a fresh start may not overwrite a checkpoint,
/// a resume needs the configuration. Returns the configuration's path.
pub fn check_folder(out: &Path, config: &str, what: &str, resume: bool) -> Result<PathBuf> {
    let config_path = out.join(config);
    if !resume && out.join(FILE).exists() {
        if !config_path.exists() {
            bail!(
                "{} already holds another kind of run (a checkpoint, no {config}); choose another --out",
                out.display()
            );
        }
        bail!("{} already holds a {what}; pass --resume to continue it or choose another --out", out.display());
    }
    if resume && !config_path.exists() {
        bail!("{}: no {what} to resume (no {config}); leave out --resume to start one there", out.display());
    }
    Ok(config_path)
}

/// Makes the run folder `out` and claims it for this process: [`lock_folder`] (`holder`: what
/// this process runs there, for a second one's refusal), then [`check_folder`] again under the
/// lock, since another process may have started there since the first check.
pub fn claim_folder(out: &Path, config: &str, what: &str, holder: &str, resume: bool) -> Result<FolderLock> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create run folder {}", out.display()))?;
    let lock = lock_folder(out, holder)?;
    check_folder(out, config, what, resume)?;
    Ok(lock)
}

/// The file in a run folder that a running search, training run or demo holds locked.
pub const LOCK_FILE: &str = ".bnas-lock";

/// A run folder held by this process (see [`lock_folder`]); released when dropped.
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

/// Locks the run folder `out` (which must exist) for a `what` ("search", "training run"), so
/// that a second `bnas` process in the same folder (another `--resume`, say) is refused instead
/// of writing the same checkpoint. The operating system releases the lock when the process
/// ends, however it ends, so a killed run leaves no stale lock. Where the file system has no
/// locks, a note says so and the run goes on.
pub fn lock_folder(out: &Path, what: &str) -> Result<FolderLock> {
    use std::io::{Read, Seek, Write};
    let path = out.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            // The holder's process id, for the message a second process prints.
            let id = std::process::id().to_string();
            file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(id.as_bytes())).ok();
            Ok(FolderLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            file.read_to_string(&mut holder).ok();
            let holder = holder.trim();
            let holder = if holder.is_empty() { String::new() } else { format!(" (process {holder})") };
            bail!(
                "{}: another bnas process{holder} is running a {what} in this folder; wait for it to end or choose another --out",
                out.display()
            )
        }
        // A file system without locks (some network mounts): the run goes on, unguarded.
        Err(std::fs::TryLockError::Error(e)) => {
            eprintln!(
                "note: cannot lock {} ({e}); going on without the lock, so run no other bnas process in {}",
                path.display(),
                out.display()
            );
            Ok(FolderLock { _file: file })
        }
    }
}

/// `--resume` continues a run with the settings saved in its `config` file; only `--epochs` may
/// change (see [`refuse_changed_settings`]).
///
/// Returns the epoch count the resumed run goes on to: `flags`' where `--epochs` was typed, else
/// the run's own (not the flag's default, which would cut the run short or lengthen it). A
/// missing or unreadable `config` is left to the resume itself to report (`flags`' count then).
pub fn check_resumed_settings<C: serde::Serialize>(
    out: &Path,
    config: &str,
    flags: &C,
    given: &[String],
) -> Result<usize> {
    let (asked, saved) = refuse_changed_settings(out, config, flags, given, "epochs")?;
    let epochs = |settings: &Settings| settings.get("epochs")?.as_u64();
    let typed_epochs = epochs(&asked).context("the settings of a run have an epoch count")? as usize;
    let epochs_typed = given.iter().any(|g| g == "epochs");
    Ok(match saved {
        Some(saved) if !epochs_typed => epochs(&saved).map_or(typed_epochs, |e| e as usize),
        _ => typed_epochs,
    })
}

/// A run's settings as JSON: each setting's name and value.
pub type Settings = serde_json::Map<String, serde_json::Value>;

/// `--resume` continues a run with the settings saved in `out`'s `config` file, and only the
/// setting `free` may change: a flag in `given` (the ids of the flags typed on the command line)
/// whose setting in `flags` differs from the saved one is refused, not silently dropped.
///
/// Returns the settings asked for and the saved ones (`None` where `config` is missing or
/// unreadable, which is left to the resume itself to report).
pub fn refuse_changed_settings<C: serde::Serialize>(
    out: &Path,
    config: &str,
    flags: &C,
    given: &[String],
    free: &str,
) -> Result<(Settings, Option<Settings>)> {
    // Through text, as the saved file was written: an f32 setting then reads back as saved.
    let serde_json::Value::Object(asked) = serde_json::from_str(&serde_json::to_string(flags)?)? else {
        bail!("the settings of a run are a JSON object");
    };
    let Ok(text) = std::fs::read_to_string(out.join(config)) else { return Ok((asked, None)) };
    let Ok(serde_json::Value::Object(saved)) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok((asked, None));
    };
    let flag = |id: &str| format!("--{}", id.replace('_', "-"));
    let mut differ = Vec::new();
    for id in given.iter().filter(|id| *id != free) {
        // The flags that name a setting the other way round.
        let key = match id.as_str() {
            "no_augment" => "augment",
            "no_zeroise" => "zeroise",
            "with_sep_conv" => "sep_conv",
            key => key,
        };
        if let (Some(a), Some(s)) = (asked.get(key), saved.get(key)) {
            if a != s {
                differ.push(format!("{} ({key} {a}; the run has {s})", flag(id)));
            }
        }
    }
    if !differ.is_empty() {
        bail!(
            "{}: --resume continues the run with its saved settings ({config}), and only {} may change; \
             {} would change them: leave {} out, or start a new run with another --out",
            out.display(),
            flag(free),
            differ.join(", "),
            if differ.len() == 1 { "it" } else { "them" }
        );
    }
    Ok((asked, Some(saved)))
}

/// Saves tensors and the JSON `state` to `dir/checkpoint.safetensors` (and `dir/state.json`).
pub fn save(dir: &Path, tensors: &[HostTensor], state: &serde_json::Value) -> Result<PathBuf> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| Ok((t.name.clone(), TensorView::new(Dtype::F32, t.shape.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let state_text = serde_json::to_string(state)?;
    let meta = HashMap::from([(STATE_KEY.to_string(), state_text.clone())]);
    let file = safetensors::serialize(views, Some(meta))?;
    let path = dir.join(FILE);
    write_atomic(&path, &file)?;
    write_atomic(&dir.join("state.json"), serde_json::to_string_pretty(state)?.as_bytes())?;
    Ok(path)
}

/// A loaded checkpoint.
pub struct Loaded {
    pub tensors: HashMap<String, HostTensor>,
    pub state: serde_json::Value,
}

impl Loaded {
    /// Takes tensor `name`, checking its shape.
    pub fn take(&mut self, name: &str, shape: &[usize], file: &Path) -> Result<Vec<f32>> {
        let t = self.tensors.remove(name).with_context(|| format!("{}: tensor {name} is missing", file.display()))?;
        if t.shape != shape {
            bail!("{}: tensor {name} has shape {:?}, the network expects {shape:?}", file.display(), t.shape);
        }
        Ok(t.data)
    }
}

pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors checkpoint", path.display()))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).with_context(|| format!("{}: unreadable header", path.display()))?;
    let state_text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .with_context(|| format!("{}: no bnas state in the metadata (not written by bnas?)", path.display()))?;
    let state = serde_json::from_str(state_text).with_context(|| format!("{}: corrupt state JSON", path.display()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!("{}: tensor {name} is {:?}, expected F32", path.display(), view.dtype());
        }
        let data = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        tensors.insert(name.clone(), HostTensor { name, shape: view.shape().to_vec(), data });
    }
    Ok(Loaded { tensors, state })
}

/// Every parameter and buffer of a store, downloaded.
pub fn collect<B: Backend>(b: &B, params: &ParamStore<B>, bufs: &Buffers<B>) -> Vec<HostTensor> {
    let mut out: Vec<HostTensor> = params
        .params
        .iter()
        .map(|p| HostTensor { name: p.name.clone(), shape: p.shape.clone(), data: b.download(&p.value) })
        .collect();
    out.extend(bufs.list.iter().map(|x| HostTensor {
        name: x.name.clone(),
        shape: x.shape.clone(),
        data: b.download(&x.value),
    }));
    out
}

/// SGD momentum buffers as `sgd.<param>` tensors.
pub fn collect_sgd<B: Backend>(b: &B, params: &ParamStore<B>, sgd: &Sgd<B>) -> Vec<HostTensor> {
    params
        .params
        .iter()
        .zip(&sgd.state)
        .filter_map(|(p, m)| {
            m.as_ref().map(|m| HostTensor {
                name: format!("sgd.{}", p.name),
                shape: p.shape.clone(),
                data: b.download(m),
            })
        })
        .collect()
}

/// Adam moments as `adam_m.<param>` and `adam_v.<param>` tensors.
pub fn collect_adam<B: Backend>(b: &B, params: &ParamStore<B>, adam: &Adam<B>) -> Vec<HostTensor> {
    let mut out = Vec::new();
    for (p, s) in params.params.iter().zip(&adam.state) {
        if let Some((m, v)) = s {
            out.push(HostTensor { name: format!("adam_m.{}", p.name), shape: p.shape.clone(), data: b.download(m) });
            out.push(HostTensor { name: format!("adam_v.{}", p.name), shape: p.shape.clone(), data: b.download(v) });
        }
    }
    out
}

/// Restores parameters and buffers (all must be present with matching shapes).
pub fn restore<B: Backend>(
    b: &B,
    loaded: &mut Loaded,
    file: &Path,
    params: &mut ParamStore<B>,
    bufs: &mut Buffers<B>,
) -> Result<()> {
    for p in &mut params.params {
        p.value = b.upload(&loaded.take(&p.name, &p.shape, file)?);
    }
    for x in &mut bufs.list {
        x.value = b.upload(&loaded.take(&x.name, &x.shape, file)?);
    }
    Ok(())
}

pub fn restore_sgd<B: Backend>(
    b: &B,
    loaded: &mut Loaded,
    file: &Path,
    params: &ParamStore<B>,
    sgd: &mut Sgd<B>,
) -> Result<()> {
    for (p, m) in params.params.iter().zip(sgd.state.iter_mut()) {
        let name = format!("sgd.{}", p.name);
        if loaded.tensors.contains_key(&name) {
            *m = Some(b.upload(&loaded.take(&name, &p.shape, file)?));
        }
    }
    Ok(())
}

pub fn restore_adam<B: Backend>(
    b: &B,
    loaded: &mut Loaded,
    file: &Path,
    params: &ParamStore<B>,
    adam: &mut Adam<B>,
) -> Result<()> {
    for (p, s) in params.params.iter().zip(adam.state.iter_mut()) {
        let (mn, vn) = (format!("adam_m.{}", p.name), format!("adam_v.{}", p.name));
        if loaded.tensors.contains_key(&mn) {
            let m = b.upload(&loaded.take(&mn, &p.shape, file)?);
            let v = b.upload(&loaded.take(&vn, &p.shape, file)?);
            *s = Some((m, v));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dirs::TempDir;

    #[test]
    fn write_atomic_leaves_only_the_file_and_names_it_on_error() {
        let tmp = TempDir::new("atomic");
        let dir = &tmp.0;
        for (name, bytes) in [("m.bnas", &b"packed"[..]), ("m.onnx", b"graph")] {
            write_atomic(&dir.join(name), bytes).unwrap();
        }
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["m.bnas", "m.onnx"]);
        assert_eq!(std::fs::read(dir.join("m.bnas")).unwrap(), b"packed");
        let missing = dir.join("no/such/p.csv");
        let err = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert_eq!(err, format!("cannot write {}", missing.display()));
    }

    /// A fresh start in a folder holding a run, of this kind or another, and a resume of nothing:
    /// each refused in a sentence that says which.
    #[test]
    fn check_folder_says_what_the_folder_holds() {
        let tmp = TempDir::new("check-folder");
        let dir = &tmp.0;
        assert_eq!(check_folder(dir, "config.json", "run", false).unwrap(), dir.join("config.json"));
        let e = check_folder(dir, "config.json", "run", true).unwrap_err().to_string();
        assert!(e.ends_with(": no run to resume (no config.json); leave out --resume to start one there"), "{e}");
        std::fs::write(dir.join(FILE), b"").unwrap();
        std::fs::write(dir.join("search_config.json"), b"{}").unwrap();
        let e = check_folder(dir, "config.json", "run", false).unwrap_err().to_string();
        assert!(
            e.ends_with(" already holds another kind of run (a checkpoint, no config.json); choose another --out"),
            "{e}"
        );
        let e = check_folder(dir, "search_config.json", "search", false).unwrap_err().to_string();
        assert!(e.ends_with(" already holds a search; pass --resume to continue it or choose another --out"), "{e}");
    }

    /// A second lock on a held folder (as a second process would take it) is refused, naming
    /// the holder; once the holder is gone the folder can be locked again.
    #[test]
    fn a_locked_run_folder_refuses_a_second_run() {
        let tmp = TempDir::new("lock");
        let held = lock_folder(&tmp.0, "run").unwrap();
        let e = lock_folder(&tmp.0, "search").unwrap_err().to_string();
        let id = std::process::id();
        assert_eq!(
            e,
            format!(
                "{}: another bnas process (process {id}) is running a search in this folder; wait for it to end or choose another --out",
                tmp.0.display()
            )
        );
        drop(held);
        let again = lock_folder(&tmp.0, "run").unwrap();
        assert_eq!(std::fs::read_to_string(tmp.0.join(LOCK_FILE)).unwrap(), id.to_string());
        drop(again);
        let e = lock_folder(&tmp.0.join("none"), "run").unwrap_err().to_string();
        assert!(e.starts_with("cannot open ") && e.ends_with(LOCK_FILE), "{e}");
    }
}
