//! The `bnas` command line: argument parsing (the flags in `args`) and dispatch to the library.

use std::path::Path;

use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::select::select;
use crate::with_backend;

mod args;
pub use args::*;

#[derive(Parser)]
#[command(
    name = "bnas",
    version,
    about = "Binary neural architecture search: search, train, export and verify binary networks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments (exiting with clap's message on bad ones), noting which
    /// flags of `train`, `search` and `demo` were typed, so that `--resume` can refuse settings that
    /// differ from the run's saved ones instead of dropping them.
    pub fn parse_noting_given() -> Cli {
        Cli::noting_given(&Cli::command().get_matches()).unwrap_or_else(|e| e.exit())
    }

    fn noting_given(matches: &ArgMatches) -> Result<Cli, clap::Error> {
        let mut cli = Cli::from_arg_matches(matches)?;
        if let Some((_, sub)) = matches.subcommand() {
            match &mut cli.command {
                Command::Train(a) => a.given = given_ids(sub),
                Command::Search(a) => a.given = given_ids(sub),
                Command::Demo(a) => a.given = given_ids(sub),
                _ => {}
            }
        }
        Ok(cli)
    }
}

/// The ids of the arguments typed on the command line (not defaults or environment variables).
fn given_ids(m: &ArgMatches) -> Vec<String> {
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a network from a genotype.
    Train(TrainArgs),
    /// Parameters, MACs, FLOPs and packed size of a network.
    Info(InfoArgs),
    /// Benchmark the binary conv op's forward and backward on each backend.
    Bench(BenchArgs),
    /// Search a binary cell on a dataset (the BNAS supernet with the diversity regularizer).
    Search(SearchArgs),
    /// Export a trained run to a model folder: packed model, ONNX, engine weights, card.
    Export(ExportArgs),
    /// Run the test set through every runtime and compare them (the verification triangle).
    Verify(VerifyArgs),
    /// Run a packed model on the Cortex-M4F firmware under QEMU and compare with the host.
    Device(DeviceArgs),
    /// The main job: a small search -> train -> export -> verify (host and QEMU), one summary.
    Demo(DemoArgs),
    /// List the (layers, channels) of a genotype network that fit FLOPs, parameter or RAM budgets.
    Scale(ScaleArgs),
    /// Write a random genotype of S_B whose network costs about the FLOPs of another's (the
    /// random-search baseline a searched cell is compared with).
    RandomGenotype(RandomGenotypeArgs),
}

/// The line `bnas` prints for an error: its message, then each cause the text so far does not
/// already say (an error whose message prints its source would otherwise say it twice).
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

/// A training run, search or demo that Ctrl-C stopped (`None`) is an error that says how to go on.
fn finished_or_stopped<T>(done: Option<T>, command: &str, out: &Path) -> Result<()> {
    match done {
        Some(_) => Ok(()),
        None => anyhow::bail!(
            "{}: stopped by Ctrl-C; `bnas {command} --out {} --resume` continues it from that step",
            out.display(),
            out.display()
        ),
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => {
            let sel = select(a.backend.backend, a.backend.adapter.as_deref(), a.backend.threads)?;
            let mut cfg = a.config();
            if a.resume {
                cfg.epochs = crate::checkpoint::check_resumed_settings(&a.out, "config.json", &cfg, &a.given)?;
            }
            let _ctrl_c = crate::interrupt::catch();
            let stop = &crate::interrupt::requested;
            let done = with_backend!(sel, |b| crate::train::train_session(b, &cfg, &a.out, a.resume, stop))?;
            finished_or_stopped(done, "train", &a.out)
        }
        Command::Info(a) => crate::info::print_info(&a.genotype, a.layers, a.channels, &a.dataset),
        Command::Bench(a) => match &a.tract_model {
            Some(dir) => {
                let files = crate::export::bundle::ModelFiles::open(dir)?;
                let bytes = std::fs::read(files.packed())
                    .with_context(|| format!("cannot read {}", files.packed().display()))?;
                let card: crate::export::bundle::ModelCard = crate::train::read_json(&files.card())?;
                let ds = crate::train::load_dataset(&card.dataset, a.data.as_deref(), crate::data::Split::Test)?;
                let n = 500.min(ds.len());
                crate::export::tract_run::bench_tract_vs_device(&bytes, &ds.images[..n * ds.image_len()], n)
            }
            None => crate::bench::run(a.reps, a.only, &a.backend, a.anchor.as_deref(), a.rounds),
        },
        Command::Search(a) => {
            let sel = select(a.backend.backend, a.backend.adapter.as_deref(), a.backend.threads)?;
            let mut cfg = a.config();
            if a.resume {
                cfg.epochs = crate::checkpoint::check_resumed_settings(&a.out, "search_config.json", &cfg, &a.given)?;
            }
            let _ctrl_c = crate::interrupt::catch();
            let stop = &crate::interrupt::requested;
            let done = with_backend!(sel, |b| crate::search::search_session(b, &cfg, &a.out, a.resume, stop))?;
            finished_or_stopped(done, "search", &a.out)
        }
        Command::Export(a) => crate::export::bundle::export(&a.run, &a.out).map(|_| ()),
        Command::Verify(a) => {
            let sel = select(a.backend.backend, a.backend.adapter.as_deref(), a.backend.threads)?;
            let opts = crate::verify::VerifyOptions {
                n: a.n,
                qemu: a.qemu,
                predictions: a.predictions.clone(),
                data: a.data.clone(),
                gpu: !a.no_gpu,
            };
            with_backend!(sel, |b| crate::verify::verify(b, &a.model, &a.dataset, &opts))?;
            Ok(())
        }
        Command::Device(DeviceArgs { command: DeviceCommand::Run { model, dataset, data, n, layers } }) => {
            crate::demo::device_run(&model, &dataset, data.as_deref(), n, layers).map(|_| ())
        }
        Command::Scale(a) => {
            crate::info::scale(&a.genotype, &a.dataset, a.max_flops, a.max_params, a.max_ram).map(|_| ())
        }
        Command::RandomGenotype(a) => {
            let target = crate::nn::Genotype::resolve(&a.like)?;
            let (input, classes) = crate::info::dataset_shape(&a.dataset)?;
            let cfg = crate::nn::NetConfig {
                layers: a.layers,
                channels: a.channels,
                classes,
                input,
                template: crate::nn::Template::Bnas,
            };
            let (g, flops, want) = crate::info::random_like(&target, &cfg, a.seed)?;
            crate::checkpoint::write_atomic(&a.out, g.to_json().as_bytes())?;
            println!("{}", g.summary());
            println!(
                "random genotype (seed {}): {:.2} M FLOPs at {} layers x {} channels ({} has {:.2} M) -> {}",
                a.seed,
                flops / 1e6,
                a.layers,
                a.channels,
                a.like,
                want / 1e6,
                a.out.display()
            );
            Ok(())
        }
        Command::Demo(a) => {
            let sel = select(a.backend.backend, a.backend.adapter.as_deref(), a.backend.threads)?;
            let settings = crate::demo::settings(&a)?;
            let done = with_backend!(sel, |b| crate::demo::demo(b, &settings, &a.out, a.resume))?;
            finished_or_stopped(done, "demo", &a.out)
        }
    }
}

#[cfg(test)]
mod tests;
