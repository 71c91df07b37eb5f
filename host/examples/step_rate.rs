//! Images/s of CPU training or search steps for one workload, with the process's CPU time, so
//! that two builds can be compared even on a machine that is not quiet:
//! `cargo run --release -p bnas --example step_rate -- imagenet 10` (`imagenet`, `a` or `search`).

use bnas::engine::cpu::Cpu;
use bnas::nn::{Genotype, NetConfig, Template};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map_or("imagenet", String::as_str);
    let steps: usize = args.get(2).map_or(Ok(10), |s| s.parse())?;
    let cpu = Cpu::new(None)?;
    let cfg = NetConfig { layers: 8, channels: 16, classes: 10, input: [1, 28, 28], template: Template::Bnas };
    let (c0, t0) = (cpu_seconds(), std::time::Instant::now());
    let (rate, images) = match workload {
        "imagenet" => {
            (bnas::bench::train_step_rate(&cpu, &Genotype::bnas_imagenet(), &cfg, 64, steps), 64 * (steps + 1))
        }
        "a" => (bnas::bench::train_step_rate(&cpu, &Genotype::bnas_a(), &cfg, 64, steps), 64 * (steps + 1)),
        "search" => (bnas::bench::search_step_rate(&cpu, &cfg, 64, steps), 128 * (steps + 1)),
        other => anyhow::bail!("unknown workload '{other}': imagenet, a or search"),
    };
    let (cpu_s, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    println!(
        "{workload}: {rate:.1} images/s (wall, after one warm-up step); whole run {:.1} ms CPU time per image, {:.1} ms wall per image",
        1e3 * cpu_s / images as f64,
        1e3 * wall / images as f64
    );
    Ok(())
}
