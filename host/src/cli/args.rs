//! The flags of each `bnas` command, with their help, bounds and the configurations they make.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::nn::Template;
use crate::select::BackendChoice;
use crate::train::{Schedule, TrainConfig};

/// Backend options shared by every command that computes.
#[derive(Args, Clone)]
pub struct BackendArgs {
    /// Where to compute: a real GPU if there is one (auto), the CPU, or the GPU (any adapter, lavapipe too).
    #[arg(long, env = "BNAS_BACKEND", value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// Use the GPU adapter whose name contains this text.
    #[arg(long, env = "BNAS_ADAPTER")]
    pub adapter: Option<String>,
    /// CPU backend threads (default: all cores).
    #[arg(long, value_parser = at_least_one)]
    pub threads: Option<usize>,
}

#[derive(Args)]
pub struct RandomGenotypeArgs {
    /// Match the FLOPs of this genotype (built-in name or JSON file).
    #[arg(long)]
    pub like: String,
    /// Cells in the network (a reduction cell at 1/3 and 2/3 of them).
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    /// Channels of the first cell's nodes (doubled at each reduction cell).
    #[arg(long, default_value_t = 16)]
    pub channels: usize,
    /// fashion-mnist, cifar10, imagenet (shapes only).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Seed of the random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the genotype JSON.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct ScaleArgs {
    /// A built-in genotype (bnas-a, bnas-imagenet) or a genotype JSON file.
    #[arg(long)]
    pub genotype: String,
    /// fashion-mnist, cifar10, imagenet (shapes only).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Largest FLOPs (BOPs/64 + FLOPs) per image, e.g. 5e6.
    #[arg(long, value_parser = positive)]
    pub max_flops: Option<f64>,
    /// Most parameters.
    #[arg(long, value_parser = at_least_one)]
    pub max_params: Option<usize>,
    /// Largest inference arena (peak activation bytes, batch 1), e.g. 655360 for 640 KiB.
    #[arg(long, value_parser = at_least_one)]
    pub max_ram: Option<usize>,
}

#[derive(Args)]
pub struct SearchArgs {
    /// fashion-mnist, cifar10, or folder:PATH (class subfolders).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Dataset folder (default: the dataset's standard place).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Cells in the network (a reduction cell at 1/3 and 2/3 of them).
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    /// Channels of the first cell's nodes (doubled at each reduction cell).
    #[arg(long, default_value_t = 16)]
    pub channels: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Epochs to run (with --resume: a new total; left out, the run keeps its own).
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    pub epochs: usize,
    /// Diversity regularizer strength lambda (0: the plain DARTS objective).
    #[arg(long = "lambda", default_value_t = crate::search::LAMBDA)]
    pub lambda: f32,
    /// Decay time constant tau of the regularizer weight, in epochs.
    #[arg(long, default_value_t = crate::search::TAU)]
    pub tau: f32,
    /// Learning rate of the weight step (cosine down to --lr-min).
    #[arg(long, default_value_t = 0.025)]
    pub lr: f32,
    /// Learning rate at the end of the cosine schedule.
    #[arg(long, default_value_t = 0.001)]
    pub lr_min: f32,
    /// Adam learning rate of the architecture weights (alpha).
    #[arg(long, default_value_t = 3e-4)]
    pub alpha_lr: f32,
    /// Search without zeroise (the paper's Table 2 ablation).
    #[arg(long)]
    pub no_zeroise: bool,
    /// Add binary separable convs 3x3 and 5x5 to the space (the paper's Table 1 ablation).
    #[arg(long)]
    pub with_sep_conv: bool,
    /// Cell template: bnas (inter-cell skip) or darts (no skip; the ablation).
    #[arg(long, value_enum, default_value = "bnas")]
    pub template: Template,
    /// Divide the zeroise weight by this before deriving (3: the paper's transfer trick).
    #[arg(long, default_value_t = 1.0)]
    pub zeroise_gamma: f32,
    /// Seed of the initial weights, the data order and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Search on at most this many training images (split 50/50 into search-train and search-val).
    #[arg(long, value_parser = at_least_one)]
    pub train_subset: Option<usize>,
    /// Measure validation accuracy on at most this many search-val images per epoch.
    #[arg(long, default_value_t = 2000, value_parser = at_least_one)]
    pub val_subset: usize,
    /// The run folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint, with its saved settings.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The ids of the flags typed on the command line (`Cli::parse_noting_given`).
    #[arg(skip)]
    pub given: Vec<String>,
}

impl SearchArgs {
    pub fn config(&self) -> crate::search::SearchConfig {
        crate::search::SearchConfig {
            dataset: self.dataset.clone(),
            data: self.data.clone(),
            layers: self.layers,
            channels: self.channels,
            batch_size: self.batch_size,
            epochs: self.epochs,
            lambda: self.lambda,
            tau: self.tau,
            lr: self.lr,
            lr_min: self.lr_min,
            alpha_lr: self.alpha_lr,
            zeroise: !self.no_zeroise,
            sep_conv: self.with_sep_conv,
            template: self.template,
            zeroise_gamma: self.zeroise_gamma,
            seed: self.seed,
            train_subset: self.train_subset,
            val_subset: Some(self.val_subset),
            ..Default::default()
        }
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// A training run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// The model folder to write (its name names the files).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A model folder written by `bnas export`.
    #[arg(long)]
    pub model: PathBuf,
    /// fashion-mnist, cifar10, or folder:PATH (class subfolders).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Dataset folder (default: the dataset's standard place).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use the first N test images (default: all).
    #[arg(long, value_parser = at_least_one)]
    pub n: Option<usize>,
    /// Also run the first N images on the firmware under QEMU.
    #[arg(long, num_args = 0..=1, default_missing_value = "100", value_parser = at_least_one)]
    pub qemu: Option<usize>,
    /// Skip the packed XNOR kernel on the GPU.
    #[arg(long)]
    pub no_gpu: bool,
    /// Write one row per image: index, label, each runtime's class and top logit.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Args)]
pub struct DeviceArgs {
    #[command(subcommand)]
    pub command: DeviceCommand,
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Stream test images to the firmware in QEMU and compare every answer with the host build.
    Run {
        /// A packed model (`.bnas`) or a model folder.
        #[arg(long)]
        model: PathBuf,
        /// fashion-mnist, cifar10, or folder:PATH (class subfolders).
        #[arg(long, default_value = "fashion-mnist")]
        dataset: String,
        /// Dataset folder (default: the dataset's standard place).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Test images to stream (the first N).
        #[arg(long, default_value_t = 100, value_parser = at_least_one)]
        n: usize,
        /// Print the profile node by node instead of summed by op.
        #[arg(long)]
        layers: bool,
    },
}

#[derive(Args)]
pub struct DemoArgs {
    /// Folder for the run's `search`, `train` and `model` folders (cleared at the start, unless --resume).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub settings: DemoSettings,
    /// Continue the demo in --out where it stopped, with its saved settings (`demo.json`; only
    /// --qemu-images may change): a finished search or training is kept, a stopped one resumes
    /// from its checkpoint, and export and verify run again.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The ids of the flags typed on the command line (`Cli::parse_noting_given`).
    #[arg(skip)]
    pub given: Vec<String>,
}

/// The settings of `bnas demo`, saved in its folder's `demo.json` for `--resume`.
#[derive(Args, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DemoSettings {
    /// Search epochs.
    #[arg(long, default_value_t = 2, value_parser = at_least_one)]
    pub search_epochs: usize,
    /// Search on this many training images (half search-train, half search-val).
    #[arg(long, default_value_t = 2000, value_parser = at_least_one)]
    pub search_images: usize,
    /// Cells of the search supernet.
    #[arg(long, default_value_t = 3)]
    pub search_layers: usize,
    /// Channels of the search supernet's first cell.
    #[arg(long, default_value_t = 8)]
    pub search_channels: usize,
    /// Training epochs of the searched genotype.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub train_epochs: usize,
    /// Cells in the network (a reduction cell at 1/3 and 2/3 of them).
    #[arg(long, default_value_t = 5)]
    pub layers: usize,
    /// Channels of the trained network (its f32 activations must fit the firmware's 640 KiB RAM).
    #[arg(long, default_value_t = 12)]
    pub channels: usize,
    /// Train on at most this many images (0: the whole training set).
    #[arg(long, default_value_t = 20000)]
    pub train_images: usize,
    /// Test images streamed to the firmware under QEMU.
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    pub qemu_images: usize,
    /// Seed of the initial weights, the data order and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct TrainArgs {
    /// A built-in genotype (bnas-a, bnas-imagenet) or a genotype JSON file.
    #[arg(long, default_value = "bnas-imagenet")]
    pub genotype: String,
    /// fashion-mnist, cifar10, or folder:PATH (class subfolders).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Dataset folder (default: the dataset's standard place).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Cells in the network (a reduction cell at 1/3 and 2/3 of them).
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    /// Channels of the first cell's nodes (doubled at each reduction cell).
    #[arg(long, default_value_t = 16)]
    pub channels: usize,
    /// Cell template: bnas (inter-cell skip) or darts (no skip; the ablation).
    #[arg(long, value_enum, default_value = "bnas")]
    pub template: Template,
    /// Epochs to run (with --resume: a new total; left out, the run keeps its own).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f32,
    /// Learning rate at the end of the cosine schedule.
    #[arg(long, default_value_t = 0.0)]
    pub lr_min: f32,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: Schedule,
    /// Linear warm-up length for the cosine schedule, in epochs.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_epochs: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// SGD weight decay.
    #[arg(long, default_value_t = 3e-6)]
    pub weight_decay: f32,
    /// Label smoothing of the cross-entropy (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Drop-path probability reached at the last epoch (ramped linearly from 0).
    #[arg(long, default_value_t = 0.0)]
    pub drop_path: f32,
    /// Clip the gradient norm to this (0 disables).
    #[arg(long, default_value_t = 5.0)]
    pub grad_clip: f32,
    /// Disable random crop and flip.
    #[arg(long)]
    pub no_augment: bool,
    /// Seed of the initial weights, the data order and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on at most this many images.
    #[arg(long, value_parser = at_least_one)]
    pub train_subset: Option<usize>,
    /// Evaluate each epoch on at most this many test images (the final evaluation uses all).
    #[arg(long, value_parser = at_least_one)]
    pub eval_subset: Option<usize>,
    /// Also checkpoint every this many steps.
    #[arg(long, value_parser = at_least_one)]
    pub checkpoint_every: Option<usize>,
    /// Run folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The ids of the flags typed on the command line (`Cli::parse_noting_given`).
    #[arg(skip)]
    pub given: Vec<String>,
}

impl TrainArgs {
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            genotype: self.genotype.clone(),
            dataset: self.dataset.clone(),
            data: self.data.clone(),
            layers: self.layers,
            channels: self.channels,
            template: self.template,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            lr_min: self.lr_min,
            schedule: self.schedule,
            warmup_epochs: self.warmup_epochs,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            label_smoothing: self.label_smoothing,
            drop_path: self.drop_path,
            grad_clip: (self.grad_clip > 0.0).then_some(self.grad_clip),
            augment: !self.no_augment,
            seed: self.seed,
            train_subset: self.train_subset,
            eval_subset: self.eval_subset,
            checkpoint_every: self.checkpoint_every,
        }
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// A built-in genotype (bnas-a, bnas-imagenet) or a genotype JSON file.
    #[arg(long, default_value = "bnas-a")]
    pub genotype: String,
    /// Cells in the network (a reduction cell at 1/3 and 2/3 of them).
    #[arg(long, default_value_t = 20)]
    pub layers: usize,
    /// Channels of the first cell's nodes (doubled at each reduction cell).
    #[arg(long, default_value_t = 36)]
    pub channels: usize,
    /// fashion-mnist, cifar10, imagenet (shapes only; no data is read).
    #[arg(long, default_value = "cifar10")]
    pub dataset: String,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Repetitions per shape.
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub reps: usize,
    /// Benchmark only these backends (default: cpu, and gpu when an adapter exists).
    #[arg(long, value_enum)]
    pub only: Option<BackendChoice>,
    /// Also run the PyTorch anchor (`pytorch_bnas.py`) and print the ratios side by side.
    #[arg(long)]
    pub anchor: Option<PathBuf>,
    /// With `--anchor`: rounds of our steps and the anchor's, alternating, each round giving a
    /// ratio per workload; the medians are printed at the end. A machine whose speed swings
    /// within minutes needs several.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub rounds: usize,
    /// Instead: the device crate vs tract on this model folder (`bnas export`), one thread each,
    /// over the first 500 test images of the model's dataset.
    #[arg(long)]
    pub tract_model: Option<PathBuf>,
    /// The dataset folder for `--tract-model` (default: the dataset's standard place).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The parser of a count that must be one or more: `--batch-size 0` and the like are refused
/// before anything runs, naming the flag.
fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be 1 or more".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The parser of a budget that must be a positive number (NaN, 0 and negatives are refused).
fn positive(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 => Ok(x),
        Ok(_) => Err("must be a positive number".into()),
        Err(e) => Err(e.to_string()),
    }
}
