//! An ImageNet-style image folder: `ROOT/train/CLASS/*.{jpg,jpeg,png}` and
//! `ROOT/val/CLASS/*` (or `ROOT/test/CLASS/*` where there is no `val/`). Classes are the sorted
//! subfolder names of `train/`; every image is center-cropped to the target aspect ratio and
//! resized (bilinear) to a fixed H x W, RGB.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use rayon::prelude::*;

use super::{DataError, Dataset, Split};

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];
const HINT: &str =
    "an image folder needs train/ and val/ (or test/), each with one subfolder of JPEG/PNG files per class";

/// The folders a split may sit in, in the order they are looked for.
fn split_dirs(root: &Path, split: Split) -> Vec<PathBuf> {
    match split {
        Split::Train => vec![root.join("train")],
        Split::Test => vec![root.join("val"), root.join("test")],
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_path_buf(), source }
}

/// Sorted entries of `dir` that satisfy `keep`.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn is_image(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The class names: sorted subfolders of `train/` (the same for both splits).
fn class_names(root: &Path) -> Result<Vec<String>, DataError> {
    let train = root.join("train");
    if !train.is_dir() {
        return Err(DataError::Missing { dataset: "image folder".into(), looked_for: vec![train], hint: HINT.into() });
    }
    let classes: Vec<String> = sorted_entries(&train, Path::is_dir)?.iter().map(|p| file_name(p)).collect();
    if classes.is_empty() {
        return Err(DataError::BadFolder { path: train, problem: "it has no class subfolders".into() });
    }
    Ok(classes)
}

/// Every image file of a split with its label, in class then file-name order.
fn list_files(root: &Path, split: Split, classes: &[String]) -> Result<Vec<(PathBuf, u16)>, DataError> {
    let dirs = split_dirs(root, split);
    let Some(dir) = dirs.iter().find(|d| d.is_dir()).cloned() else {
        return Err(DataError::Missing { dataset: "image folder split".into(), looked_for: dirs, hint: HINT.into() });
    };
    for sub in sorted_entries(&dir, Path::is_dir)? {
        if !classes.contains(&file_name(&sub)) {
            return Err(DataError::BadFolder {
                path: sub,
                problem: "this class is not among the subfolders of train/".into(),
            });
        }
    }
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if class_dir.is_dir() {
            files.extend(sorted_entries(&class_dir, is_image)?.into_iter().map(|p| (p, label as u16)));
        }
    }
    if files.is_empty() {
        return Err(DataError::BadFolder { path: dir, problem: "it holds no .jpg, .jpeg or .png files".into() });
    }
    Ok(files)
}

fn decode(path: &Path) -> Result<image::RgbImage, DataError> {
    let img = image::open(path).map_err(|e| DataError::Decode { path: path.to_path_buf(), problem: e.to_string() })?;
    Ok(img.to_rgb8())
}

/// Center-crops to the aspect ratio of `h x w`, resizes bilinearly, returns `[3, h, w]`.
pub(crate) fn crop_resize_chw(img: &image::RgbImage, h: usize, w: usize) -> Vec<u8> {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    // Largest crop with aspect w:h: full width when the image is taller than the target.
    let (cw, ch) = if iw * h >= ih * w { ((ih * w / h).max(1), ih) } else { (iw, (iw * h / w).max(1)) };
    let (x0, y0) = ((iw - cw) / 2, (ih - ch) / 2);
    let cropped = imageops::crop_imm(img, x0 as u32, y0 as u32, cw as u32, ch as u32).to_image();
    let resized =
        if (cw, ch) == (w, h) { cropped } else { imageops::resize(&cropped, w as u32, h as u32, FilterType::Triangle) };
    let mut chw = vec![0u8; 3 * h * w];
    for (i, px) in resized.pixels().enumerate() {
        for c in 0..3 {
            chw[c * h * w + i] = px.0[c];
        }
    }
    chw
}

pub(super) fn load_folder(root: &Path, split: Split, size: Option<(usize, usize)>) -> Result<Dataset, DataError> {
    let classes = class_names(root)?;
    let files = list_files(root, split, &classes)?;
    // Without a given size, the first training image decides, so both splits agree.
    let (h, w) = match size {
        Some(s) => s,
        None => {
            let first = match split {
                Split::Train => files[0].0.clone(),
                Split::Test => list_files(root, Split::Train, &classes)?[0].0.clone(),
            };
            let img = decode(&first)?;
            (img.height() as usize, img.width() as usize)
        }
    };
    let decoded: Vec<Vec<u8>> = files
        .par_iter()
        .map(|(path, _)| decode(path).map(|img| crop_resize_chw(&img, h, w)))
        .collect::<Result<_, _>>()?;
    Ok(Dataset {
        name: file_name(root),
        c: 3,
        h,
        w,
        images: decoded.concat(),
        labels: files.iter().map(|(_, l)| *l).collect(),
        classes: classes.len(),
        class_names: classes,
    })
}
