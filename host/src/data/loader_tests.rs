//! Tests of augmentation, the batch loaders, image folders and the real Fashion-MNIST.

use std::path::Path;
use std::sync::Arc;

use super::tests::TempDir;
use super::*;
use crate::rng::Rng;

/// `n` random 1x8x8 images, label `i % 3`.
fn random_dataset(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    Dataset {
        name: "random".into(),
        c: 1,
        h: 8,
        w: 8,
        images: (0..n * 64).map(|_| rng.below(256) as u8).collect(),
        labels: (0..n).map(|i| (i % 3) as u16).collect(),
        classes: 3,
        class_names: vec!["a".into(), "b".into(), "c".into()],
    }
}

fn opts(augment: bool) -> LoaderOptions {
    let aug = augment.then_some(Augment { pad: 1, flip: true });
    LoaderOptions { batch_size: 8, augment: aug, drop_last: false, seed: 42, ..LoaderOptions::default() }
}

#[test]
fn augmentation_keeps_shape_labels_and_pixels() {
    let ds = Arc::new(random_dataset(50, 1));
    let norm = Normalization::of(&ds);
    let indices: Vec<usize> = (0..50).collect();
    let plain: Vec<Batch> = BatchLoader::new(ds.clone(), &norm, &indices, 0, &opts(false)).collect();
    let aug: Vec<Batch> = BatchLoader::new(ds.clone(), &norm, &indices, 0, &opts(true)).collect();
    assert_eq!(plain.len(), 7);
    let mut changed = 0;
    for (p, a) in plain.iter().zip(&aug) {
        assert_eq!((p.x.len(), &p.y, &p.indices, p.chw), (a.x.len(), &a.y, &a.indices, [1, 8, 8]));
        for (b, &i) in p.indices.iter().enumerate() {
            assert_eq!(p.y[b], ds.labels[i] as u32);
        }
        changed += p.x.iter().zip(&a.x).filter(|(u, v)| u != v).count();
    }
    println!("augmentation changed {changed} of {} values", 50 * 64);
    assert!(changed > 50 * 64 / 4);
    assert_eq!(Augment::for_size(28, 28).pad, 2);
    assert_eq!(Augment::for_size(32, 32).pad, 4);
}

#[test]
fn loader_is_deterministic_and_resumes_exactly() {
    let ds = Arc::new(random_dataset(100, 2));
    let norm = Normalization::of(&ds);
    let (train, _) = split_half(100, 3);
    let o = LoaderOptions { drop_last: true, ..opts(true) };
    let full: Vec<Batch> = BatchLoader::new(ds.clone(), &norm, &train, 5, &o).collect();
    let again: Vec<Batch> = BatchLoader::new(ds.clone(), &norm, &train, 5, &o).collect();
    assert_eq!(full.len(), 50 / 8);
    assert_eq!(full, again, "same seed and epoch give the same batches");

    let resumed: Vec<Batch> =
        BatchLoader::new(ds.clone(), &norm, &train, 5, &LoaderOptions { start_batch: 4, ..o.clone() }).collect();
    assert_eq!(resumed.len(), full.len() - 4);
    assert_eq!(resumed[..], full[4..], "resuming at batch 4 replays the rest of the epoch");

    let other_epoch: Vec<Batch> = BatchLoader::new(ds.clone(), &norm, &train, 6, &o).collect();
    assert_ne!(other_epoch[0].indices, full[0].indices, "each epoch has its own order");
    let mut seen: Vec<usize> = full.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 48, "an epoch visits each index at most once");
}

#[test]
fn dropping_a_loader_early_stops_its_thread() {
    let ds = Arc::new(random_dataset(400, 4));
    let norm = Normalization::identity(1);
    let indices: Vec<usize> = (0..400).collect();
    let mut loader =
        BatchLoader::new(ds, &norm, &indices, 0, &LoaderOptions { batch_size: 1, prefetch: 2, ..opts(true) });
    assert_eq!(loader.len(), 400);
    let first = loader.next().unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(loader.len(), 399);
    drop(loader); // joins the producer, blocked on a full channel; the test would hang otherwise
}

#[test]
fn eval_batches_are_sequential_and_unaugmented() {
    let ds = random_dataset(10, 5);
    let norm = Normalization::of(&ds);
    let batches: Vec<Batch> = eval_batches(&ds, &norm, (0..10).collect(), 4).collect();
    assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), vec![4, 4, 2]);
    assert_eq!(batches[2].indices, vec![8, 9]);
    let mut expect = vec![0f32; 64];
    norm.apply(ds.image(9), &mut expect);
    assert_eq!(&batches[2].x[64..], &expect[..]);
}

fn write_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    img.save(path).unwrap();
}

#[test]
fn image_folder_loads_resizes_and_checks_classes() {
    let tmp = TempDir::new("folder");
    for (split, n) in [("train", 2), ("val", 1)] {
        for (class, color) in [("cat", [200, 10, 10]), ("dog", [10, 200, 10])] {
            let dir = tmp.0.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                write_png(&dir.join(format!("{i}.png")), 12 + 4 * i, 8, color);
            }
            let jpg = image::RgbImage::from_pixel(10, 10, image::Rgb(color));
            jpg.save(dir.join("z.JPG")).unwrap();
            std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
        }
    }
    let kind: DatasetKind = format!("folder:{}", tmp.0.display()).parse().unwrap();
    let train = load(&kind, None, Split::Train).unwrap();
    let val = load(&kind, None, Split::Test).unwrap();
    assert_eq!((train.len(), train.c, train.h, train.w), (6, 3, 8, 12), "size of the first training image");
    assert_eq!((val.len(), val.h, val.w), (4, 8, 12));
    assert_eq!(train.class_names, vec!["cat", "dog"]);
    assert_eq!(train.labels, vec![0, 0, 0, 1, 1, 1]);
    // A flat colour survives crop, resize and JPEG within a few levels.
    let red = train.image(2);
    assert!(red[..96].iter().all(|&v| v.abs_diff(200) <= 6) && red[96..192].iter().all(|&v| v <= 20), "{red:?}");

    let sized = load(&DatasetKind::Folder { path: None, size: Some((4, 4)) }, Some(&tmp.0), Split::Test).unwrap();
    assert_eq!((sized.h, sized.w, sized.images.len()), (4, 4, 4 * 48));

    std::fs::create_dir_all(tmp.0.join("val/bird")).unwrap();
    let err = load(&kind, None, Split::Test).unwrap_err();
    println!("{err}");
    assert!(matches!(err, DataError::BadFolder { .. }));
    std::fs::remove_dir(tmp.0.join("val/bird")).unwrap();

    std::fs::write(tmp.0.join("val/dog/broken.png"), b"\x89PNG nonsense").unwrap();
    let err = load(&kind, None, Split::Test).unwrap_err();
    println!("{err}");
    assert!(matches!(&err, DataError::Decode { path, .. } if path.ends_with("val/dog/broken.png")), "{err}");

    let err = load(&DatasetKind::Folder { path: None, size: None }, None, Split::Train).unwrap_err();
    println!("{err}");
    assert!(matches!(err, DataError::NoPath(_)));
    let err =
        load(&DatasetKind::Folder { path: None, size: None }, Some(&tmp.0.join("nope")), Split::Train).unwrap_err();
    println!("{err}");
    assert!(err.to_string().contains("train"));

    // Without val/, the test split is test/; without either, the error names both.
    std::fs::remove_file(tmp.0.join("val/dog/broken.png")).unwrap();
    std::fs::rename(tmp.0.join("val"), tmp.0.join("test")).unwrap();
    assert_eq!(load(&kind, None, Split::Test).unwrap().labels, val.labels);
    std::fs::rename(tmp.0.join("test"), tmp.0.join("other")).unwrap();
    let err = load(&kind, None, Split::Test).unwrap_err();
    println!("{err}");
    assert!(
        matches!(&err, DataError::Missing { looked_for, .. }
        if *looked_for == [tmp.0.join("val"), tmp.0.join("test")]),
        "{err}"
    );
}

/// The installed Fashion-MNIST (`dataset-fashion-mnist`, which `.ci/run` installs; the shipped
/// model's tests need it too, so a machine without it fails here with the loader's own sentence).
#[test]
fn real_fashion_mnist_loads() {
    let t = std::time::Instant::now();
    let train = load(&DatasetKind::FashionMnist, None, Split::Train).unwrap_or_else(|e| panic!("{e}"));
    let test = load(&DatasetKind::FashionMnist, None, Split::Test).unwrap_or_else(|e| panic!("{e}"));
    println!("loaded Fashion-MNIST in {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!((train.len(), test.len(), train.c, train.h, train.w), (60000, 10000, 1, 28, 28));
    // The first labels of the published files.
    assert_eq!(train.labels[..5], [9, 0, 0, 3, 0]);
    assert_eq!(test.labels[..5], [9, 2, 1, 1, 6]);
    assert_eq!(train.class_counts(), vec![6000; 10]);
    let norm = Normalization::of(&train);
    println!("train mean {:.4} std {:.4}", norm.mean[0], norm.std[0]);
    // Widely quoted values: mean 0.2860, std 0.3530.
    assert!((norm.mean[0] - 0.2860).abs() < 1e-3 && (norm.std[0] - 0.3530).abs() < 1e-3);

    // One augmented epoch through the background loader, to show what it can feed.
    let train = Arc::new(train);
    let indices: Vec<usize> = (0..train.len()).collect();
    let o = LoaderOptions { batch_size: 256, augment: Some(Augment::for_size(28, 28)), ..LoaderOptions::default() };
    let t = std::time::Instant::now();
    let (mut batches, mut images) = (0, 0);
    for b in BatchLoader::new(train.clone(), &norm, &indices, 0, &o) {
        batches += 1;
        images += b.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!("loader: {batches} augmented batches of 256 in {secs:.2} s = {:.0} images/s", images as f64 / secs);
    assert_eq!(batches, 60000 / 256);
}
