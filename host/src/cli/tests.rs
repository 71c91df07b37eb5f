//! Argument parsing: bounds refused naming the flag, `--resume` against the saved settings,
//! the error line.

use super::*;

#[test]
fn zero_counts_and_bad_budgets_are_refused_naming_the_flag() {
    for args in [
        &["bnas", "train", "--out", "o", "--batch-size", "0"][..],
        &["bnas", "search", "--out", "o", "--epochs", "0"],
        &["bnas", "verify", "--model", "m", "--n", "0"],
        &["bnas", "device", "run", "--model", "m", "--n", "0"],
    ] {
        let flag = args[args.len() - 2];
        let err = Cli::try_parse_from(args).err().expect("refused").to_string();
        assert!(err.contains(flag) && err.contains("must be 1 or more"), "{err}");
    }
    assert!(Cli::try_parse_from(["bnas", "train", "--out", "o", "--batch-size", "2"]).is_ok());
    for bad in ["nan", "0", "-5", "-inf"] {
        let flag = format!("--max-flops={bad}");
        let err = Cli::try_parse_from(["bnas", "scale", "--genotype", "bnas-a", &flag]).err().expect("refused");
        let err = err.to_string();
        assert!(err.contains("--max-flops") && err.contains("must be a positive number"), "{err}");
    }
    assert!(Cli::try_parse_from(["bnas", "scale", "--genotype", "bnas-a", "--max-flops", "5e6"]).is_ok());
}

/// `--resume`'s check of the command line `args` against the saved settings in its `--out`:
/// the epoch count the run goes on to, or the refusal.
fn check(args: &[&str]) -> anyhow::Result<usize> {
    let matches = Cli::command().try_get_matches_from(args).unwrap();
    match Cli::noting_given(&matches).unwrap().command {
        Command::Train(a) => crate::checkpoint::check_resumed_settings(&a.out, "config.json", &a.config(), &a.given),
        Command::Search(a) => {
            crate::checkpoint::check_resumed_settings(&a.out, "search_config.json", &a.config(), &a.given)
        }
        _ => unreachable!(),
    }
}

/// `--resume` with a flag typed at another value than the run saved is refused, naming it;
/// defaults, `--epochs`, the backend flags and flags typed at the saved value pass.
#[test]
fn resume_refuses_typed_settings_that_differ_from_the_saved_ones() {
    let tmp = crate::test_dirs::TempDir::new("cli-resume");
    let dir = &tmp.0;
    let out = dir.to_str().unwrap();
    // The saved settings: a run started with --layers 2 --lr 0.07.
    let saved = ["bnas", "train", "--out", out, "--layers", "2", "--lr", "0.07"];
    let Command::Train(a) = Cli::try_parse_from(saved).unwrap().command else { unreachable!() };
    crate::train::write_json(&dir.join("config.json"), &a.config()).unwrap();
    for ok in [
        &["bnas", "train", "--out", out, "--resume", "--epochs", "30", "--threads", "1"][..],
        &["bnas", "train", "--out", out, "--resume", "--lr", "0.07", "--layers", "2"],
    ] {
        check(ok).unwrap();
    }
    let err = check(&["bnas", "train", "--out", out, "--resume", "--lr", "0.1", "--no-augment", "--epochs", "9"])
        .unwrap_err()
        .to_string();
    println!("{err}");
    assert!(err.contains("--lr (lr 0.1; the run has 0.07), --no-augment (augment false; the run has true)"), "{err}");
    assert!(!err.contains("--epochs (") && !err.contains("--layers"), "{err}");

    let Command::Search(a) = Cli::try_parse_from(["bnas", "search", "--out", out]).unwrap().command else {
        unreachable!()
    };
    crate::train::write_json(&dir.join("search_config.json"), &a.config()).unwrap();
    check(&["bnas", "search", "--out", out, "--resume", "--epochs", "80", "--lambda", "1"]).unwrap();
    let err = check(&["bnas", "search", "--out", out, "--resume", "--no-zeroise", "--seed", "3"]).unwrap_err();
    println!("{err}");
    assert!(err.to_string().contains("--no-zeroise (zeroise false; the run has true), --seed (seed 3; the run has 0)"));
}

/// `--resume` without `--epochs` goes on to the run's own epoch count, not the flag's default.
#[test]
fn resume_keeps_the_saved_epoch_count_unless_epochs_is_typed() {
    let tmp = crate::test_dirs::TempDir::new("cli-resume-epochs");
    let out = tmp.0.to_str().unwrap();
    let epochs = |args: &[&str]| check(args).unwrap();
    assert_eq!(epochs(&["bnas", "train", "--out", out, "--resume"]), 10, "no saved run: the flag's default");
    let saved = |args: &[&str], file: &str| match Cli::try_parse_from(args).unwrap().command {
        Command::Train(a) => crate::train::write_json(&tmp.0.join(file), &a.config()).unwrap(),
        Command::Search(a) => crate::train::write_json(&tmp.0.join(file), &a.config()).unwrap(),
        _ => unreachable!(),
    };
    saved(&["bnas", "train", "--out", out, "--epochs", "3"], "config.json");
    saved(&["bnas", "search", "--out", out, "--epochs", "2"], "search_config.json");
    assert_eq!(epochs(&["bnas", "train", "--out", out, "--resume"]), 3);
    assert_eq!(epochs(&["bnas", "train", "--out", out, "--resume", "--epochs", "10"]), 10);
    assert_eq!(epochs(&["bnas", "search", "--out", out, "--resume"]), 2);
    assert_eq!(epochs(&["bnas", "search", "--out", out, "--resume", "--epochs", "50"]), 50);
}

/// `bnas demo --resume` runs with the settings its folder saved: a typed setting that differs is
/// refused, naming it, except `--qemu-images`, which only the verification uses; a folder with
/// no saved demo is refused too.
#[test]
fn a_resumed_demo_keeps_its_saved_settings() {
    let tmp = crate::test_dirs::TempDir::new("cli-demo-resume");
    let out = tmp.0.to_str().unwrap();
    let settings = |args: &[&str]| {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let Command::Demo(a) = Cli::noting_given(&matches).unwrap().command else { unreachable!() };
        crate::demo::settings(&a)
    };
    let err = settings(&["bnas", "demo", "--out", out, "--resume"]).unwrap_err().to_string();
    assert_eq!(err, format!("{out}: no demo to resume (no demo.json); leave out --resume to start one there"));
    let saved = settings(&["bnas", "demo", "--out", out, "--search-epochs", "3", "--channels", "8"]).unwrap();
    crate::train::write_json(&tmp.0.join(crate::demo::SETTINGS), &saved).unwrap();
    assert_eq!(settings(&["bnas", "demo", "--out", out, "--resume", "--threads", "1"]).unwrap(), saved);
    let more_images = settings(&["bnas", "demo", "--out", out, "--resume", "--qemu-images", "200"]).unwrap();
    assert_eq!(more_images, crate::cli::DemoSettings { qemu_images: 200, ..saved.clone() });
    let err = settings(&["bnas", "demo", "--out", out, "--resume", "--channels", "8", "--seed", "4"]).unwrap_err();
    println!("{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{out}: --resume continues the run with its saved settings (demo.json), and only --qemu-images may \
             change; --seed (seed 4; the run has 0) would change them: leave it out, or start a new run with \
             another --out"
        )
    );
}

#[test]
fn error_line_says_each_cause_once() {
    let missing = || std::fs::read("/nonexistent/model.bnas").unwrap_err();
    let os = missing().to_string();
    // A message that prints its source: the source is not repeated.
    let e = anyhow::Error::new(crate::device_run::DeviceRunError::Io {
        path: "/nonexistent/model.bnas".into(),
        source: missing(),
    });
    assert_eq!(error_line(&e), format!("/nonexistent/model.bnas: {os}"));
    // A context that does not: the source follows it.
    let e = Err::<(), _>(missing()).context("cannot read /nonexistent/model.bnas").unwrap_err();
    assert_eq!(error_line(&e), format!("cannot read /nonexistent/model.bnas: {os}"));
}

/// `--help` explains every flag of every command: none is listed bare.
#[test]
fn every_flag_has_help() {
    fn bare(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name());
        for arg in cmd.get_arguments() {
            if arg.get_long().is_some() && arg.get_help().is_none() {
                out.push(format!("{path} --{}", arg.get_long().unwrap_or_default()));
            }
        }
        for sub in cmd.get_subcommands() {
            bare(sub, &path, out);
        }
    }
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut missing = Vec::new();
    bare(&cmd, "", &mut missing);
    assert!(missing.is_empty(), "flags without help: {missing:?}");
}
