//! Datasets: Fashion-MNIST (IDX), CIFAR-10 (binary batches), image folders; augmentation and
//! background batching. Nothing is ever downloaded: a missing dataset is an error that says
//! where it was looked for and how to get it.

mod augment;
mod cifar;
mod folder;
mod idx;
mod loader;
#[cfg(test)]
mod loader_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use augment::{Augment, Normalization};
pub use loader::{batches_per_epoch, eval_batches, Batch, BatchLoader, EvalBatches, LoaderOptions};

use crate::rng::Rng;

/// Where Debian's `dataset-fashion-mnist` package puts the IDX files.
pub const FASHION_MNIST_DEFAULT_ROOT: &str = "/usr/share/datasets/fashion-mnist";
/// Where a CIFAR-10 binary download is looked for when no `--data DIR` is given.
pub const CIFAR10_DEFAULT_ROOT: &str = "/usr/share/datasets/cifar10";

/// Fashion-MNIST class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
/// CIFAR-10 class names, by label.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// An image dataset held in memory as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Short name for logs ("fashion-mnist", "cifar10", the folder's name).
    pub name: String,
    /// Channels per image.
    pub c: usize,
    /// Image height in pixels.
    pub h: usize,
    /// Image width in pixels.
    pub w: usize,
    /// All images, `[N, C, H, W]` u8, one CHW image after another.
    pub images: Vec<u8>,
    /// One label per image, each `< classes`.
    pub labels: Vec<u16>,
    /// Number of classes.
    pub classes: usize,
    /// Class names, `classes` of them, by label.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: `C * H * W`.
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Image `i` as `[C, H, W]` bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The first `n_max` images (all of them when there are fewer), for small runs.
    pub fn subset(mut self, n_max: usize) -> Dataset {
        let n = n_max.min(self.len());
        self.images.truncate(n * self.image_len());
        self.labels.truncate(n);
        self
    }

    /// Images per class, by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// Which split of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    /// The test split (`val/` or `test/` for an image folder).
    Test,
}

/// Which dataset, parsed from `fashion-mnist`, `cifar10` or `folder:PATH[@H[xW]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetKind {
    FashionMnist,
    Cifar10,
    /// An ImageNet-style folder: `train/` and `val/` (or `test/`), one subfolder per class. `size` is
    /// `(H, W)` to resize to; `None` takes the size of the first training image.
    Folder {
        path: Option<PathBuf>,
        size: Option<(usize, usize)>,
    },
}

impl DatasetKind {
    /// Short name used in logs and file names.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Folder { .. } => "folder",
        }
    }

    /// Where the dataset is looked for when no `--data DIR` is given.
    pub fn default_root(&self) -> Option<PathBuf> {
        match self {
            DatasetKind::FashionMnist => Some(PathBuf::from(FASHION_MNIST_DEFAULT_ROOT)),
            DatasetKind::Cifar10 => Some(PathBuf::from(CIFAR10_DEFAULT_ROOT)),
            DatasetKind::Folder { path, .. } => path.clone(),
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetKind::Folder { path: Some(p), size: Some((h, w)) } => write!(f, "folder:{}@{h}x{w}", p.display()),
            DatasetKind::Folder { path: Some(p), size: None } => write!(f, "folder:{}", p.display()),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" | "fmnist" => return Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" | "cifar_10" => return Ok(DatasetKind::Cifar10),
            "folder" => return Ok(DatasetKind::Folder { path: None, size: None }),
            _ => {}
        }
        let Some(rest) = s.strip_prefix("folder:").or_else(|| s.strip_prefix("imagenet:")) else {
            return Err(DataError::UnknownKind(s.to_string()));
        };
        let (path, size) = match rest.rsplit_once('@') {
            Some((p, size)) => (p, Some(parse_size(size).ok_or_else(|| DataError::UnknownKind(s.to_string()))?)),
            None => (rest, None),
        };
        let path = (!path.is_empty()).then(|| PathBuf::from(path));
        Ok(DatasetKind::Folder { path, size })
    }
}

/// `"64"` -> (64, 64), `"48x64"` -> (48, 64).
fn parse_size(s: &str) -> Option<(usize, usize)> {
    let (h, w) = match s.split_once(['x', 'X']) {
        Some((h, w)) => (h.parse().ok()?, w.parse().ok()?),
        None => {
            let n = s.parse().ok()?;
            (n, n)
        }
    };
    (h > 0 && w > 0).then_some((h, w))
}

/// What went wrong reading a dataset; each message is one sentence naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("unknown dataset '{0}': expected fashion-mnist, cifar10 or folder:PATH[@H[xW]]")]
    UnknownKind(String),
    #[error("dataset '{0}' needs a location: give it as folder:PATH or pass --data DIR")]
    NoPath(String),
    #[error("{dataset} not found: looked for {}; {hint}", list_paths(.looked_for))]
    Missing { dataset: String, looked_for: Vec<PathBuf>, hint: String },
    #[error("{dataset} in {} is incomplete: it lacks {}; {hint}", .dir.display(), .missing.join(", "))]
    Incomplete { dataset: String, dir: PathBuf, missing: Vec<String>, hint: String },
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is corrupt at byte offset {offset}: {problem}", .path.display())]
    Corrupt { path: PathBuf, offset: u64, problem: String },
    #[error("{} holds {images} images but {} holds {labels} labels", .images_path.display(), .labels_path.display())]
    CountMismatch { images_path: PathBuf, images: usize, labels_path: PathBuf, labels: usize },
    #[error("cannot decode image {}: {problem}", .path.display())]
    Decode { path: PathBuf, problem: String },
    #[error("{} is not a usable image folder: {problem}", .path.display())]
    BadFolder { path: PathBuf, problem: String },
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Loads one split of a dataset into memory. `root` overrides the kind's default location
/// (`--data DIR`); an image folder without a path needs it.
pub fn load(kind: &DatasetKind, root: Option<&Path>, split: Split) -> Result<Dataset, DataError> {
    let root = match (root, kind.default_root()) {
        (Some(r), _) => r.to_path_buf(),
        (None, Some(r)) => r,
        (None, None) => return Err(DataError::NoPath(kind.name().to_string())),
    };
    match kind {
        DatasetKind::FashionMnist => idx::load_fashion_mnist(&root, split),
        DatasetKind::Cifar10 => cifar::load_cifar10(&root, split),
        DatasetKind::Folder { size, .. } => folder::load_folder(&root, split, *size),
    }
}

/// Splits `0..n` at random into two halves (the search's train / val split, both sorted);
/// the first gets `n / 2` indices, the second the rest.
pub fn split_half(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    const SPLIT_STREAM: u64 = 0x005E_A4C4_5917;
    let mut all: Vec<usize> = (0..n).collect();
    Rng::derive(seed, SPLIT_STREAM).shuffle(&mut all);
    let mut second = all.split_off(n / 2);
    all.sort_unstable();
    second.sort_unstable();
    (all, second)
}

/// Reads a whole file, gunzipping it when its name ends in `.gz`. For a damaged gzip stream
/// the error's offset counts decompressed bytes.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::with_capacity(raw.len() * 4);
        if let Err(e) = flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out) {
            return Err(DataError::Corrupt {
                path: path.to_path_buf(),
                offset: out.len() as u64,
                problem: format!("the gzip stream breaks off at this offset of the decompressed data ({e})"),
            });
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}
