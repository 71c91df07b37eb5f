//! Loader tests on small files the tests write themselves, every error path, and the real
//! Fashion-MNIST when it is installed.

use std::io::Write;
use std::path::Path;

use super::*;
pub(super) use crate::test_dirs::TempDir;

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn write_file(path: &Path, bytes: &[u8], gz: bool) {
    if gz {
        let f =
            std::fs::File::create(path.with_file_name(format!("{}.gz", path.file_name().unwrap().to_string_lossy())));
        let mut enc = flate2::write::GzEncoder::new(f.unwrap(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

/// Pixel (image i, y, x) of the synthetic IDX data.
fn pixel(i: usize, y: usize, x: usize) -> u8 {
    (i * 31 + y * 7 + x * 3) as u8
}

/// Writes a tiny Fashion-MNIST split: `n` images of 4x5 and labels `i % 10`.
fn write_fmnist(dir: &Path, split: Split, n: usize, gz: bool) {
    let (images, labels) = match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    };
    let data: Vec<u8> = (0..n).flat_map(|i| (0..4).flat_map(move |y| (0..5).map(move |x| pixel(i, y, x)))).collect();
    write_file(&dir.join(images), &idx_bytes(&[n as u32, 4, 5], &data), gz);
    let lab: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    write_file(&dir.join(labels), &idx_bytes(&[n as u32], &lab), gz);
}

fn load_fm(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    load(&DatasetKind::FashionMnist, Some(dir), split)
}

#[test]
fn idx_raw_and_gz_load_the_same() {
    for gz in [false, true] {
        let tmp = TempDir::new("idx");
        write_fmnist(&tmp.0, Split::Train, 12, gz);
        write_fmnist(&tmp.0, Split::Test, 3, gz);
        let train = load_fm(&tmp.0, Split::Train).unwrap();
        let test = load_fm(&tmp.0, Split::Test).unwrap();
        assert_eq!((train.len(), train.c, train.h, train.w), (12, 1, 4, 5));
        assert_eq!(test.len(), 3);
        assert_eq!(train.image(7)[2 * 5 + 3], pixel(7, 2, 3));
        assert_eq!(train.labels[11], 1);
        assert_eq!(train.class_names[9], "Ankle boot");
        println!("gz={gz}: train {} test {} images of {}x{}", train.len(), test.len(), train.h, train.w);
    }
}

#[test]
fn missing_fashion_mnist_names_every_file_and_the_package() {
    let tmp = TempDir::new("missing");
    let err = load_fm(&tmp.0, Split::Train).unwrap_err().to_string();
    println!("{err}");
    for name in ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        assert!(err.contains(&tmp.0.join(name).display().to_string()), "{err}");
    }
    assert!(err.contains("apt-get install dataset-fashion-mnist") && err.contains("--data DIR"), "{err}");

    // A folder with the images and not the labels names the one file it lacks.
    write_fmnist(&tmp.0, Split::Train, 2, true);
    std::fs::remove_file(tmp.0.join("train-labels-idx1-ubyte.gz")).unwrap();
    let err = load_fm(&tmp.0, Split::Train).unwrap_err();
    println!("{err}");
    let text = err.to_string();
    assert!(matches!(&err, DataError::Incomplete { missing, .. } if missing.len() == 1), "{err}");
    assert!(text.contains("train-labels-idx1-ubyte") && !text.contains("train-images"), "{err}");
}

#[test]
fn truncated_idx_gives_the_offset() {
    let tmp = TempDir::new("trunc");
    write_fmnist(&tmp.0, Split::Train, 4, false);
    let images = tmp.0.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 7]).unwrap();
    let err = load_fm(&tmp.0, Split::Train).unwrap_err();
    println!("{err}");
    let at = (16 + 4 * 20 - 7) as u64;
    assert!(matches!(&err, DataError::Corrupt { path, offset, .. } if *path == images && *offset == at), "{err}");
    assert!(err.to_string().contains(&format!("byte offset {at}")));

    // A gzip stream cut short.
    let tmp = TempDir::new("truncgz");
    write_fmnist(&tmp.0, Split::Train, 4, true);
    let gz = tmp.0.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_fm(&tmp.0, Split::Train).unwrap_err();
    println!("{err}");
    assert!(matches!(&err, DataError::Corrupt { path, .. } if *path == gz), "{err}");

    // A file that ends inside the header.
    std::fs::remove_file(&gz).unwrap();
    std::fs::write(tmp.0.join("train-images-idx3-ubyte"), [0, 0, 8, 3, 0]).unwrap();
    let err = load_fm(&tmp.0, Split::Train).unwrap_err();
    println!("{err}");
    assert!(matches!(&err, DataError::Corrupt { offset: 5, .. }), "{err}");
}

#[test]
fn bad_magic_extra_bytes_and_bad_labels_are_reported() {
    let tmp = TempDir::new("magic");
    write_fmnist(&tmp.0, Split::Test, 4, false);
    let labels = tmp.0.join("t10k-labels-idx1-ubyte");
    std::fs::write(&labels, idx_bytes(&[4, 1], &[0, 1, 2, 3])).unwrap();
    let err = load_fm(&tmp.0, Split::Test).unwrap_err();
    println!("{err}");
    assert!(matches!(&err, DataError::Corrupt { path, offset: 0, .. } if *path == labels), "{err}");
    assert!(err.to_string().contains("bad magic"));

    std::fs::write(&labels, idx_bytes(&[4], &[0, 1, 2, 3, 9])).unwrap();
    let err = load_fm(&tmp.0, Split::Test).unwrap_err();
    println!("{err}");
    assert!(matches!(&err, DataError::Corrupt { offset: 12, .. }), "{err}");

    std::fs::write(&labels, idx_bytes(&[4], &[0, 1, 12, 3])).unwrap();
    let err = load_fm(&tmp.0, Split::Test).unwrap_err();
    println!("{err}");
    assert!(matches!(&err, DataError::Corrupt { offset: 10, .. }), "{err}");
    assert!(err.to_string().contains("label 12"));
}

#[test]
fn image_label_count_mismatch_names_both_files() {
    let tmp = TempDir::new("count");
    write_fmnist(&tmp.0, Split::Train, 5, true);
    write_file(&tmp.0.join("train-labels-idx1-ubyte"), &idx_bytes(&[4], &[0, 1, 2, 3]), false);
    let err = load_fm(&tmp.0, Split::Train).unwrap_err();
    println!("{err}");
    assert!(matches!(err, DataError::CountMismatch { images: 5, labels: 4, .. }), "{err}");
}

fn cifar_record(i: usize) -> Vec<u8> {
    let mut r = vec![(i % 10) as u8];
    r.extend((0..3072).map(|p| ((p / 1024) * 80 + i + p % 7) as u8));
    r
}

fn write_cifar(dir: &Path, per_batch: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for b in 1..=5 {
        let bytes: Vec<u8> = (0..per_batch).flat_map(|i| cifar_record((b - 1) * per_batch + i)).collect();
        std::fs::write(dir.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), (0..2).flat_map(cifar_record).collect::<Vec<u8>>()).unwrap();
}

#[test]
fn cifar_batches_load_in_root_or_subfolder() {
    let tmp = TempDir::new("cifar");
    write_cifar(&tmp.0.join("cifar-10-batches-bin"), 3);
    let train = load(&DatasetKind::Cifar10, Some(&tmp.0), Split::Train).unwrap();
    let test = load(&DatasetKind::Cifar10, Some(&tmp.0), Split::Test).unwrap();
    assert_eq!((train.len(), train.c, train.h, train.w, test.len()), (15, 3, 32, 32, 2));
    assert_eq!(train.labels[13], 3);
    assert_eq!(train.image(13), &cifar_record(13)[1..]);
    assert_eq!(train.class_names[0], "airplane");

    let tmp = TempDir::new("cifar-root");
    write_cifar(&tmp.0, 1);
    assert_eq!(load(&DatasetKind::Cifar10, Some(&tmp.0), Split::Train).unwrap().len(), 5);
}

#[test]
fn cifar_errors_name_files_and_offsets() {
    let tmp = TempDir::new("cifar-err");
    let err = load(&DatasetKind::Cifar10, Some(&tmp.0), Split::Test).unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("test_batch.bin") && err.contains("cifar-10-batches-bin") && err.contains("--data DIR"));
    // The five training batches are named once per folder looked in.
    let err = load(&DatasetKind::Cifar10, Some(&tmp.0), Split::Train).unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("data_batch_{1..5}.bin") && err.matches("data_batch").count() == 2, "{err}");

    // A folder with some of the batches names the ones it lacks.
    write_cifar(&tmp.0, 1);
    for b in [2, 5] {
        std::fs::remove_file(tmp.0.join(format!("data_batch_{b}.bin"))).unwrap();
    }
    let err = load(&DatasetKind::Cifar10, Some(&tmp.0), Split::Train).unwrap_err();
    println!("{err}");
    let want = vec!["data_batch_2.bin".to_string(), "data_batch_5.bin".to_string()];
    assert!(matches!(&err, DataError::Incomplete { dir, missing, .. } if *dir == tmp.0 && *missing == want), "{err}");

    write_cifar(&tmp.0, 2);
    let path = tmp.0.join("data_batch_4.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..3073 + 100]).unwrap();
    let err = load(&DatasetKind::Cifar10, Some(&tmp.0), Split::Train).unwrap_err();
    println!("{err}");
    assert!(matches!(&err, DataError::Corrupt { path: p, offset: 3073, .. } if *p == path), "{err}");

    let mut bad = cifar_record(0);
    bad[0] = 10;
    std::fs::write(tmp.0.join("test_batch.bin"), [cifar_record(1), bad].concat()).unwrap();
    let err = load(&DatasetKind::Cifar10, Some(&tmp.0), Split::Test).unwrap_err();
    println!("{err}");
    assert!(matches!(&err, DataError::Corrupt { offset: 3073, .. }), "{err}");
}

#[test]
fn dataset_kind_parses() {
    assert_eq!("fashion-mnist".parse::<DatasetKind>().unwrap(), DatasetKind::FashionMnist);
    assert_eq!("CIFAR10".parse::<DatasetKind>().unwrap(), DatasetKind::Cifar10);
    let kind: DatasetKind = "folder:/data/imnet@64x48".parse().unwrap();
    assert_eq!(kind, DatasetKind::Folder { path: Some("/data/imnet".into()), size: Some((64, 48)) });
    assert_eq!(kind.to_string(), "folder:/data/imnet@64x48");
    assert_eq!("folder:x".parse::<DatasetKind>().unwrap(), DatasetKind::Folder { path: Some("x".into()), size: None });
    let err = "mnist".parse::<DatasetKind>().unwrap_err().to_string();
    assert!(err.contains("fashion-mnist, cifar10"), "{err}");
    assert!("folder:x@0".parse::<DatasetKind>().is_err());
}

#[test]
fn normalization_matches_direct_computation() {
    let ds = Dataset {
        name: "t".into(),
        c: 2,
        h: 1,
        w: 2,
        // Channel 0 gets 0, 255, 0, 255; channel 1 is constant 51.
        images: vec![0, 255, 51, 51, 0, 255, 51, 51],
        labels: vec![0, 1],
        classes: 2,
        class_names: vec!["a".into(), "b".into()],
    };
    let n = Normalization::of(&ds);
    println!("{n:?}");
    assert!((n.mean[0] - 0.5).abs() < 1e-6 && (n.std[0] - 0.5).abs() < 1e-6);
    assert!((n.mean[1] - 0.2).abs() < 1e-6 && n.std[1] == 1.0, "a constant channel gets std 1");
    let json = serde_json::to_string(&n).unwrap();
    assert_eq!(serde_json::from_str::<Normalization>(&json).unwrap(), n);
    let mut out = [0f32; 4];
    n.apply(ds.image(0), &mut out);
    assert_eq!(out[..2], [-1.0, 1.0]);
}

#[test]
fn split_half_and_subset() {
    let (a, b) = split_half(11, 7);
    assert_eq!((a.len(), b.len()), (5, 6));
    let mut all = [a.clone(), b.clone()].concat();
    all.sort_unstable();
    assert_eq!(all, (0..11).collect::<Vec<_>>());
    assert_eq!(split_half(11, 7), (a.clone(), b));
    assert_ne!(split_half(11, 8).0, a);

    let tmp = TempDir::new("subset");
    write_fmnist(&tmp.0, Split::Train, 9, false);
    let ds = load_fm(&tmp.0, Split::Train).unwrap().subset(4);
    assert_eq!((ds.len(), ds.images.len()), (4, 4 * 20));
    assert_eq!(ds.class_counts(), vec![1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
}
