//! Fashion-MNIST from IDX files (raw or gzipped), as LeCun's MNIST format describes them:
//! a big-endian magic `0x0000_08NN` (0x08 = unsigned bytes, NN = number of dimensions), one
//! big-endian u32 per dimension, then the bytes.

use std::path::{Path, PathBuf};

use super::{read_maybe_gz, DataError, Dataset, Split, FASHION_MNIST_CLASSES};

const IDX_U8: u8 = 0x08;
const HINT: &str = "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) \
                    or pass --data DIR with the four IDX files (optionally .gz)";

/// The IDX file names of a split: (images, labels).
fn file_names(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

/// `root/name` if it exists, else `root/name.gz` if that exists; both go to `looked_for`.
fn find(root: &Path, name: &str, looked_for: &mut Vec<PathBuf>) -> Option<PathBuf> {
    let raw = root.join(name);
    let gz = root.join(format!("{name}.gz"));
    let found = [&raw, &gz].into_iter().find(|p| p.is_file()).cloned();
    looked_for.push(raw);
    looked_for.push(gz);
    found
}

pub(super) fn load_fashion_mnist(root: &Path, split: Split) -> Result<Dataset, DataError> {
    let (images_name, labels_name) = file_names(split);
    let mut looked_for = Vec::new();
    let images_path = find(root, images_name, &mut looked_for);
    let labels_path = find(root, labels_name, &mut looked_for);
    let (images_path, labels_path) = match (images_path, labels_path) {
        (Some(images), Some(labels)) => (images, labels),
        (None, None) => {
            return Err(DataError::Missing { dataset: "Fashion-MNIST".into(), looked_for, hint: HINT.into() })
        }
        (found, _) => {
            let missing = if found.is_some() { labels_name } else { images_name };
            return Err(DataError::Incomplete {
                dataset: "Fashion-MNIST".into(),
                dir: root.to_path_buf(),
                missing: vec![format!("{missing} (or {missing}.gz)")],
                hint: HINT.into(),
            });
        }
    };

    let images = read_idx(&images_path, 3)?;
    let labels = read_idx(&labels_path, 1)?;
    let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
    if h == 0 || w == 0 {
        return Err(corrupt(&images_path, 4, format!("the header gives images of {h}x{w} pixels")));
    }
    if labels.dims[0] != n {
        return Err(DataError::CountMismatch { images_path, images: n, labels_path, labels: labels.dims[0] });
    }
    let classes = FASHION_MNIST_CLASSES.len();
    if let Some(i) = labels.data.iter().position(|&l| l as usize >= classes) {
        let offset = (labels.header_len + i) as u64;
        return Err(corrupt(&labels_path, offset, format!("label {} is out of range 0..{classes}", labels.data[i])));
    }
    Ok(Dataset {
        name: "fashion-mnist".into(),
        c: 1,
        h,
        w,
        images: images.data,
        labels: labels.data.iter().map(|&l| l as u16).collect(),
        classes,
        class_names: FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
    })
}

struct Idx {
    dims: Vec<usize>,
    header_len: usize,
    data: Vec<u8>,
}

fn corrupt(path: &Path, offset: u64, problem: String) -> DataError {
    DataError::Corrupt { path: path.to_path_buf(), offset, problem }
}

/// Reads an IDX file of unsigned bytes with `ndim` dimensions and checks its length.
fn read_idx(path: &Path, ndim: usize) -> Result<Idx, DataError> {
    let mut bytes = read_maybe_gz(path)?;
    let header_len = 4 + 4 * ndim;
    if bytes.len() < header_len {
        return Err(corrupt(
            path,
            bytes.len() as u64,
            format!("the file ends inside its {header_len}-byte IDX header"),
        ));
    }
    let magic = &bytes[..4];
    if magic[0] != 0 || magic[1] != 0 || magic[2] != IDX_U8 || magic[3] as usize != ndim {
        return Err(corrupt(
            path,
            0,
            format!(
                "bad magic {:02x}{:02x}{:02x}{:02x}, expected 000008{ndim:02x} (IDX of unsigned bytes with {ndim} dimension(s))",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().expect("4 bytes")) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let Some(expected) = expected.and_then(|e| e.checked_add(header_len)) else {
        return Err(corrupt(path, 4, format!("header dimensions {dims:?} are inconsistent (too large)")));
    };
    if bytes.len() < expected {
        return Err(corrupt(
            path,
            bytes.len() as u64,
            format!("the header promises {dims:?} ({expected} bytes) but the file ends here"),
        ));
    }
    if bytes.len() > expected {
        return Err(corrupt(
            path,
            expected as u64,
            format!("{} bytes follow the {dims:?} the header promises", bytes.len() - expected),
        ));
    }
    bytes.drain(..header_len);
    Ok(Idx { dims, header_len, data: bytes })
}
