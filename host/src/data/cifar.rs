//! CIFAR-10 from its binary batches: records of 3073 bytes, a label byte then a 32x32 image
//! as R, G, B planes (already CHW).

use std::path::{Path, PathBuf};

use super::{read_maybe_gz, DataError, Dataset, Split, CIFAR10_CLASSES};

const SIDE: usize = 32;
const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
const HINT: &str = "unpack the CIFAR-10 binary version (cifar-10-binary.tar.gz) and pass --data DIR \
                    (the batches may sit in DIR or in DIR/cifar-10-batches-bin)";

/// The split's batch files, and how an error names them all at once.
fn file_names(split: Split) -> (Vec<String>, &'static str) {
    match split {
        Split::Train => ((1..=5).map(|i| format!("data_batch_{i}.bin")).collect(), "data_batch_{1..5}.bin"),
        Split::Test => (vec!["test_batch.bin".to_string()], "test_batch.bin"),
    }
}

pub(super) fn load_cifar10(root: &Path, split: Split) -> Result<Dataset, DataError> {
    let (names, all_names) = file_names(split);
    let dirs = [root.to_path_buf(), root.join("cifar-10-batches-bin")];
    // The first folder that holds all of the split's batches.
    let Some(dir) = dirs.iter().find(|d| names.iter().all(|n| d.join(n).is_file())) else {
        // A folder with some of the batches is named with the ones it lacks.
        if let Some(dir) = dirs.iter().find(|d| names.iter().any(|n| d.join(n).is_file())) {
            let missing = names.iter().filter(|n| !dir.join(n).is_file()).cloned().collect();
            return Err(DataError::Incomplete {
                dataset: "CIFAR-10".into(),
                dir: dir.clone(),
                missing,
                hint: HINT.into(),
            });
        }
        let looked_for: Vec<PathBuf> = dirs.iter().map(|d| d.join(all_names)).collect();
        return Err(DataError::Missing { dataset: "CIFAR-10".into(), looked_for, hint: HINT.into() });
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let bytes = read_maybe_gz(&path)?;
        let whole = bytes.len() / RECORD_BYTES * RECORD_BYTES;
        if whole != bytes.len() {
            return Err(DataError::Corrupt {
                path,
                offset: whole as u64,
                problem: format!(
                    "the file ends inside a {RECORD_BYTES}-byte record ({} bytes is not a whole number of records)",
                    bytes.len()
                ),
            });
        }
        images.reserve(whole / RECORD_BYTES * IMAGE_BYTES);
        for (r, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            if record[0] as usize >= CIFAR10_CLASSES.len() {
                return Err(DataError::Corrupt {
                    path,
                    offset: (r * RECORD_BYTES) as u64,
                    problem: format!("label {} is out of range 0..{}", record[0], CIFAR10_CLASSES.len()),
                });
            }
            labels.push(record[0] as u16);
            images.extend_from_slice(&record[1..]);
        }
    }
    Ok(Dataset {
        name: "cifar10".into(),
        c: 3,
        h: SIDE,
        w: SIDE,
        images,
        labels,
        classes: CIFAR10_CLASSES.len(),
        class_names: class_names(dir),
    })
}

/// Names from `batches.meta.txt` when it lists ten, else the standard ones.
fn class_names(dir: &Path) -> Vec<String> {
    let from_meta: Option<Vec<String>> = std::fs::read_to_string(dir.join("batches.meta.txt"))
        .ok()
        .map(|s| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect());
    match from_meta {
        Some(names) if names.len() == CIFAR10_CLASSES.len() => names,
        _ => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    }
}
