//! `bnas device run`: build the Cortex-M4F firmware around a packed model, run it under QEMU
//! (mps2-an386), stream u8 images over its UART, and check every answer against the host build
//! of the device crate, bit for bit.
//!
//! The firmware embeds the model at build time (`BNAS_MODEL`, read by firmware/build.rs); the ELF
//! is cached per model hash under `<target>/bnas-firmware/<hash>/`. Protocol: `bnas_device::link`.

use crate::info::group_digits;
use bnas_device::link;
use bnas_device::{Input, Model};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

mod nodes;
#[cfg(test)]
mod profile;

pub use nodes::{bin_macs_per_node, node_label, NodeProfile};

/// Why a device run failed: one sentence naming the file or step.
#[derive(Debug, thiserror::Error)]
pub enum DeviceRunError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid bnas model: {source}")]
    Model { path: PathBuf, source: bnas_device::Error },
    #[error("building the firmware failed: {0}")]
    Build(String),
    #[error("cannot start `{qemu}` ({source}); install qemu-system-arm (Debian: apt-get install qemu-system-arm)")]
    Qemu { qemu: String, source: std::io::Error },
    #[error("the firmware {0}")]
    Protocol(String),
    #[error(
        "{what} needs {} bytes of flash for its packed model and {} bytes of RAM for its arena; the firmware's \
         memory map ({}) has {} bytes of flash and {} of RAM",
        group_digits(*.model as u64), group_digits(*.arena as u64), .map.display(), group_digits(*.flash), group_digits(*.ram)
    )]
    DoesNotFit { what: String, model: usize, arena: usize, flash: u64, ram: u64, map: PathBuf },
    #[error("{path}: the model takes {c}x{h}x{w} images ({} bytes), image {index} has {got} bytes", .c * .h * .w)]
    ImageSize { path: PathBuf, index: usize, got: usize, c: usize, h: usize, w: usize },
}

type Result<T> = std::result::Result<T, DeviceRunError>;

/// How to run.
#[derive(Debug, Clone)]
pub struct DeviceRunOptions {
    /// A prebuilt firmware ELF for this model; `None` builds (or reuses) the cached one.
    pub firmware: Option<PathBuf>,
    /// The QEMU binary.
    pub qemu: String,
    /// Longest wait for any one answer from the firmware.
    pub timeout: Duration,
    /// Also profile the first image node by node (binary MACs per instruction).
    pub profile: bool,
}

impl Default for DeviceRunOptions {
    fn default() -> Self {
        DeviceRunOptions {
            firmware: None,
            qemu: "qemu-system-arm".into(),
            timeout: Duration::from_secs(120),
            profile: true,
        }
    }
}

/// One image's answer from the device and how it compares with the host.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageResult {
    pub device_class: usize,
    pub host_class: usize,
    /// Instructions of one `infer` call (Timer0 ticks / 3.2 under -icount shift=7, empty call subtracted).
    pub instructions: u64,
    /// Every logit has the same f32 bits on the device and the host.
    pub bit_identical: bool,
    /// Largest |device - host| logit difference.
    pub max_abs_diff: f32,
    pub logits: Vec<f32>,
}

/// What `bnas device run` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRunSummary {
    pub images: usize,
    /// Images whose logits are bit-identical to the host build of the device crate.
    pub bit_identical: usize,
    /// Images whose class matches the host's.
    pub class_agree: usize,
    pub instructions_mean: f64,
    pub instructions_min: u64,
    pub instructions_max: u64,
    /// The firmware ELF that ran (the model embedded): the image to flash on a board.
    pub firmware: PathBuf,
    /// Flash image: code + read-only data + the embedded model (bytes).
    pub flash_bytes: u64,
    /// The model file's bytes (inside `flash_bytes`).
    pub model_bytes: u64,
    /// Statically allocated RAM (.data + .bss: the arena and the frame buffers), bytes.
    pub static_ram_bytes: u64,
    /// Peak stack since reset, from cortex-m-rt's painted stack, bytes.
    pub peak_stack_bytes: u64,
    /// `model.arena_bytes()` and the liveness lower bound it is planned against.
    pub arena_bytes: u64,
    pub liveness_lower_bound_bytes: u64,
    /// Binary conv layers of the profiled image: binary MACs (c_out*oh*ow*c_in*k*k), instructions, ratio.
    pub bin_conv_macs: u64,
    pub bin_conv_instructions: u64,
    pub bin_macs_per_instruction: f64,
    /// Every node of the profiled image, in order.
    pub per_node: Vec<NodeProfile>,
    pub per_image: Vec<ImageResult>,
}

impl DeviceRunSummary {
    /// True when every image is bit-identical to the host.
    pub fn all_agree(&self) -> bool {
        self.bit_identical == self.images
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DeviceRunError + '_ {
    move |source| DeviceRunError::Io { path: path.to_path_buf(), source }
}

/// The model file, 4-byte aligned, as `Model::parse` needs it.
fn read_model(path: &Path) -> Result<(Vec<u32>, usize)> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok((bnas_device::sample::aligned(&bytes), bytes.len()))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The firmware crate (override with `BNAS_FIRMWARE_DIR`).
pub fn firmware_dir() -> PathBuf {
    std::env::var_os("BNAS_FIRMWARE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware"))
}

/// The firmware's memory budget, from the `LENGTH`s of its linker map (`memory.x`): (flash
/// bytes, RAM bytes). The link is the exact check (code, stack and statics besides the model and
/// its arena); this is the budget a network must fit before anything is trained for it.
pub fn firmware_budget() -> Result<(u64, u64)> {
    let path = firmware_dir().join("memory.x");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    match (region_length(&text, "FLASH"), region_length(&text, "RAM")) {
        (Some(flash), Some(ram)) => Ok((flash, ram)),
        _ => Err(DeviceRunError::Protocol(format!(
            "memory map {} has no `FLASH` and `RAM` regions with a LENGTH (decimal or 0x hex, with K or M)",
            path.display()
        ))),
    }
}

/// The `LENGTH` of `region` in a linker script's `MEMORY` block, in bytes: decimal or `0x` hex,
/// with an optional `K` or `M`.
fn region_length(script: &str, region: &str) -> Option<u64> {
    let line = script.lines().find(|l| l.trim_start().starts_with(region) && l.contains("LENGTH"))?;
    let v = line.split("LENGTH").nth(1)?.trim_start_matches([' ', '=']);
    let v = v.split([',', ';', ' ', '}']).next()?;
    let (v, mult) = match v.strip_suffix(['K', 'k']) {
        Some(v) => (v, 1 << 10),
        None => v.strip_suffix(['M', 'm']).map_or((v, 1), |v| (v, 1 << 20)),
    };
    let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => v.parse::<u64>().ok()?,
    };
    n.checked_mul(mult)
}

/// Whether `what`, a packed model of `model` bytes with an arena of `arena` bytes, fits the
/// firmware's memory map: the model in the flash and the arena in the RAM. The link then checks
/// the rest (the firmware's code, statics and stack); this check comes before anything is built.
/// Returns the budget: (flash bytes, RAM bytes).
pub fn check_fits(what: &str, model: usize, arena: usize) -> Result<(u64, u64)> {
    let (flash, ram) = firmware_budget()?;
    if model as u64 <= flash && arena as u64 <= ram {
        return Ok((flash, ram));
    }
    let map = firmware_dir().join("memory.x");
    let map = map.canonicalize().unwrap_or(map);
    Err(DeviceRunError::DoesNotFit { what: what.into(), model, arena, flash, ram, map })
}

fn newest_source(dirs: &[PathBuf]) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else { continue };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if let Ok(m) = meta.modified() {
            newest = newest.max(m);
        }
    }
    newest
}

/// Builds the firmware with `model_path` embedded, or returns the cached ELF for the same model
/// bytes when nothing the firmware build reads is newer.
pub fn build_firmware(model_path: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(model_path).map_err(io(model_path))?;
    let model_path = model_path.canonicalize().map_err(io(model_path))?;
    let fw = firmware_dir();
    let target = fw.join("target");
    let elf = target.join("bnas-firmware").join(format!("{:016x}", fnv1a64(&bytes))).join("bnas-firmware.elf");
    // Everything the build reads: sources, manifests, the lock file, the linker script and the
    // build flags (`.cargo/config.toml`).
    let sources =
        ["src", "Cargo.toml", "Cargo.lock", "memory.x", "build.rs", ".cargo", "../device/src", "../device/Cargo.toml"]
            .map(|p| fw.join(p));
    if let Ok(m) = std::fs::metadata(&elf).and_then(|m| m.modified()) {
        if m >= newest_source(&sources) {
            return Ok(elf);
        }
    }
    println!(
        "building the firmware around {} (thumbv7em-none-eabihf, release; a minute the first time)",
        model_path.display()
    );
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&fw)
        .args(["build", "--release", "--quiet"])
        .env("BNAS_MODEL", &model_path)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(io(&fw))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().filter(|l| l.contains("error") || l.contains("overflowed")).take(6).collect();
        // A missing target shows as `core` not found; any other error is the code's own.
        let no_target = err.contains("can't find crate for `core`") || err.contains("may not be installed");
        let hint = if no_target { " (the build needs `rustup target add thumbv7em-none-eabihf`)" } else { "" };
        return Err(DeviceRunError::Build(format!("{}{hint}", tail.join(" | "))));
    }
    let built = target.join("thumbv7em-none-eabihf/release/bnas-firmware");
    let dir = elf.parent().unwrap_or(&target);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::copy(&built, &elf).map_err(io(&built))?;
    Ok(elf)
}

/// Flash and static RAM of an ELF32 firmware: (flash bytes, static RAM bytes).
/// Flash: allocated sections below 0x2000_0000 plus `.data` (loaded from flash); RAM: allocated
/// sections at or above it.
pub fn elf_memory(elf: &Path) -> Result<(u64, u64)> {
    let b = std::fs::read(elf).map_err(io(elf))?;
    let bad = || DeviceRunError::Protocol(format!("image {} is not a 32-bit little-endian ELF", elf.display()));
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| b.get(o..o + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    if b.get(..5) != Some(&[0x7f, b'E', b'L', b'F', 1][..]) {
        return Err(bad());
    }
    let shoff = u32_at(0x20).ok_or_else(bad)? as usize;
    let shentsize = u16_at(0x2e).ok_or_else(bad)? as usize;
    let shnum = u16_at(0x30).ok_or_else(bad)? as usize;
    let (mut flash, mut ram) = (0u64, 0u64);
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        let (ty, flags, addr, size) = (u32_at(sh + 4), u32_at(sh + 8), u32_at(sh + 12), u32_at(sh + 20));
        let (Some(ty), Some(flags), Some(addr), Some(size)) = (ty, flags, addr, size) else { return Err(bad()) };
        if flags & 2 == 0 || size == 0 {
            continue; // not SHF_ALLOC
        }
        if addr < 0x2000_0000 {
            flash += u64::from(size);
        } else {
            ram += u64::from(size);
            if ty == 1 {
                flash += u64::from(size); // SHT_PROGBITS in RAM: .data, copied from flash
            }
        }
    }
    Ok((flash, ram))
}

/// A running QEMU with the firmware, and a thread that splits its stdout into frames.
struct Qemu {
    child: Child,
    frames: mpsc::Receiver<Vec<u8>>,
    timeout: Duration,
}

impl Qemu {
    fn start(qemu: &str, elf: &Path, timeout: Duration) -> Result<Qemu> {
        let mut child = Command::new(qemu)
            .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-display", "none", "-monitor", "none"])
            .args(["-serial", "stdio", "-icount", "shift=7,align=off,sleep=off", "-kernel"])
            .arg(elf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| DeviceRunError::Qemu { qemu: qemu.into(), source })?;
        let mut stdout = child.stdout.take().ok_or_else(|| DeviceRunError::Protocol("has no stdout".into()))?;
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut buf, mut cur) = ([0u8; 4096], Vec::new());
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b == 0 {
                        if tx.send(std::mem::take(&mut cur)).is_err() {
                            return;
                        }
                    } else {
                        cur.push(b);
                    }
                }
            }
        });
        Ok(Qemu { child, frames, timeout })
    }

    fn send(&mut self, tag: u8, body: &[u8]) -> Result<()> {
        let mut scratch = vec![0u8; body.len() + 5];
        let mut out = vec![0u8; link::max_frame_len(body.len())];
        let n = link::encode_frame(tag, &[body], &mut scratch, &mut out)
            .ok_or_else(|| DeviceRunError::Protocol("frame too large".into()))?;
        let stdin = self.child.stdin.as_mut().ok_or_else(|| DeviceRunError::Protocol("has no stdin".into()))?;
        stdin
            .write_all(&out[..n])
            .and_then(|_| stdin.flush())
            .map_err(|e| DeviceRunError::Protocol(format!("stopped reading: {e}")))
    }

    /// The next frame: (tag, body). Error frames from the firmware become errors.
    fn recv(&mut self, want: u8) -> Result<Vec<u8>> {
        let mut frame = self.frames.recv_timeout(self.timeout).map_err(|_| {
            DeviceRunError::Protocol(format!("sent nothing for {:?} (QEMU hung or exited)", self.timeout))
        })?;
        let (tag, body) =
            link::decode_frame(&mut frame).ok_or_else(|| DeviceRunError::Protocol("sent a corrupted frame".into()))?;
        if tag == link::TAG_ERROR {
            return Err(DeviceRunError::Protocol(format!("reported error code {:?}", link::body_u32(body, 0))));
        }
        if tag != want {
            return Err(DeviceRunError::Protocol(format!("answered tag {tag:#04x}, expected {want:#04x}")));
        }
        Ok(body.to_vec())
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn words(body: &[u8]) -> Vec<u32> {
    body.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

/// Runs `images` (u8, CHW, `c*h*w` each) through the firmware under QEMU and compares each answer
/// with the host build of bnas-device.
pub fn run_images(model_path: &Path, images: &[Vec<u8>], opts: &DeviceRunOptions) -> Result<DeviceRunSummary> {
    let (model_words, len) = read_model(model_path)?;
    let model_bytes = &bytemuck::cast_slice::<u32, u8>(&model_words)[..len];
    let model =
        Model::parse(model_bytes).map_err(|source| DeviceRunError::Model { path: model_path.into(), source })?;
    check_fits(&model_path.display().to_string(), len, model.arena_bytes())?;
    let (c, h, w) = model.input_shape();
    for (index, img) in images.iter().enumerate() {
        if img.len() != c * h * w {
            return Err(DeviceRunError::ImageSize { path: model_path.into(), index, got: img.len(), c, h, w });
        }
    }
    let elf = match &opts.firmware {
        Some(p) => p.clone(),
        None => build_firmware(model_path)?,
    };
    let (flash_bytes, static_ram_bytes) = elf_memory(&elf)?;
    let mut q = Qemu::start(&opts.qemu, &elf, opts.timeout)?;
    let ready = words(&q.recv(link::TAG_READY)?);
    if ready.first() != Some(&link::LINK_VERSION)
        || ready.get(1) != Some(&((c * h * w) as u32))
        || ready.get(4) != Some(&(len as u32))
    {
        return Err(DeviceRunError::Protocol(format!("runs another model or protocol (ready: {ready:?})")));
    }
    let mut arena = vec![0u32; model.arena_words()];
    let mut host = vec![0f32; model.classes()];
    let mut per_image = Vec::with_capacity(images.len());
    let bar = crate::report::Counter::new("firmware", images.len(), "images");
    for img in images {
        q.send(link::TAG_IMAGE, img)?;
        let body = q.recv(link::TAG_RESULT)?;
        let head = words(&body[..16.min(body.len())]);
        if head.len() != 4 || head[0] != 0 {
            return Err(DeviceRunError::Protocol(format!("failed an inference (status {:?})", head.first())));
        }
        let dev: Vec<f32> = words(&body[16..]).into_iter().map(f32::from_bits).collect();
        model
            .infer(Input::U8(img), &mut arena, &mut host)
            .map_err(|source| DeviceRunError::Model { path: model_path.into(), source })?;
        let bit_identical = dev.len() == host.len() && dev.iter().zip(&host).all(|(a, b)| a.to_bits() == b.to_bits());
        let max_abs_diff = dev.iter().zip(&host).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        per_image.push(ImageResult {
            device_class: head[1] as usize,
            host_class: argmax(&host),
            instructions: u64::from(head[3]),
            bit_identical,
            max_abs_diff,
            logits: dev,
        });
        bar.inc(1);
    }
    drop(bar);
    let mut per_node = Vec::new();
    if opts.profile {
        if let Some(img) = images.first() {
            q.send(link::TAG_PROFILE, img)?;
            let ticks = words(&q.recv(link::TAG_PROFILE_RESULT)?);
            let macs = bin_macs_per_node(&model);
            for ((node, bin_macs), t) in model.nodes().zip(macs).zip(ticks.iter().skip(1)) {
                let instructions = (u64::from(*t) * 10 + 16) / 32;
                per_node.push(NodeProfile { label: node_label(&model, &node), instructions, bin_macs });
            }
        }
    }
    let bin_nodes = per_node.iter().filter(|n| n.bin_macs > 0);
    let bin_conv_macs: u64 = bin_nodes.clone().map(|n| n.bin_macs).sum();
    let bin_conv_instructions: u64 = bin_nodes.map(|n| n.instructions).sum();
    q.send(link::TAG_STATS, &[])?;
    let stats = words(&q.recv(link::TAG_STATS_RESULT)?);
    let instr: Vec<u64> = per_image.iter().map(|r| r.instructions).collect();
    Ok(DeviceRunSummary {
        images: images.len(),
        bit_identical: per_image.iter().filter(|r| r.bit_identical).count(),
        class_agree: per_image.iter().filter(|r| r.device_class == r.host_class).count(),
        instructions_mean: instr.iter().sum::<u64>() as f64 / instr.len().max(1) as f64,
        instructions_min: instr.iter().copied().min().unwrap_or(0),
        instructions_max: instr.iter().copied().max().unwrap_or(0),
        flash_bytes,
        firmware: elf,
        model_bytes: len as u64,
        static_ram_bytes,
        peak_stack_bytes: u64::from(stats.first().copied().unwrap_or(0)),
        arena_bytes: model.arena_bytes() as u64,
        liveness_lower_bound_bytes: model.liveness_lower_bound_bytes() as u64,
        bin_conv_macs,
        bin_conv_instructions,
        bin_macs_per_instruction: bin_conv_macs as f64 / bin_conv_instructions.max(1) as f64,
        per_node,
        per_image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dirs::TempDir;
    use bnas_device::sample::{random_net, NetSpec, Rng};

    /// `random_net(spec)` written to `<name>.bnas` in a fresh temp folder: (folder, file).
    fn sample_model(spec: NetSpec, name: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new(name);
        let path = dir.0.join(format!("{name}.bnas"));
        std::fs::write(&path, random_net(spec)).unwrap();
        (dir, path)
    }

    /// Builds the firmware around a small random T_B network, runs 3 images under QEMU, and
    /// requires bit-identical logits. Fails (does not skip) without qemu-system-arm.
    #[test]
    fn firmware_in_qemu_matches_the_host_bit_for_bit() {
        let spec = NetSpec { in_c: 3, hw: 8, c: 32, cells: 3, nodes: 4, classes: 10, seed: 7 };
        let (_dir, path) = sample_model(spec, "device-run");
        let mut r = Rng(3);
        let images: Vec<Vec<u8>> = (0..3).map(|_| (0..3 * 8 * 8).map(|_| r.below(256) as u8).collect()).collect();
        let s = run_images(&path, &images, &DeviceRunOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "agreement {}/{} bit-identical; instructions/inference mean {:.0} (min {}, max {}); flash {} B (model {} B); \
             static RAM {} B + peak stack {} B; arena {} B (liveness lower bound {} B); binary MACs/instruction {:.2}",
            s.bit_identical, s.images, s.instructions_mean, s.instructions_min, s.instructions_max, s.flash_bytes,
            s.model_bytes, s.static_ram_bytes, s.peak_stack_bytes, s.arena_bytes, s.liveness_lower_bound_bytes,
            s.bin_macs_per_instruction
        );
        assert!(s.all_agree(), "device and host differ: {:?}", s.per_image);
        assert_eq!(s.class_agree, s.images);
        assert!(s.peak_stack_bytes > 0 && s.instructions_min > 0);
        // The profile has every node, and the nodes account for the image's instructions (the
        // rest is the driver between nodes and the timer reads).
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(s.per_node.len(), Model::parse(&bytes).unwrap().n_nodes());
        let (nodes, image) = (s.per_node.iter().map(|n| n.instructions).sum::<u64>(), s.per_image[0].instructions);
        println!("{}", s.profile_table(false, 8));
        println!("nodes {nodes} of the first image's {image} instructions");
        assert!(nodes * 10 >= image * 9 && nodes <= image * 11 / 10, "nodes {nodes}, image {image}");
    }

    /// An image of the wrong size is refused before the firmware is built or QEMU started, in a
    /// sentence naming the model file and the shape it takes.
    #[test]
    fn wrong_image_size_names_the_model_and_its_shape() {
        let spec = NetSpec { in_c: 1, hw: 8, c: 8, cells: 1, nodes: 2, classes: 3, seed: 1 };
        let (_dir, path) = sample_model(spec, "device-size");
        let images = vec![vec![0u8; 64], vec![0u8; 3 * 64]];
        let opts = DeviceRunOptions { qemu: "/nonexistent/qemu".into(), ..DeviceRunOptions::default() };
        let e = run_images(&path, &images, &opts).err().map(|e| e.to_string());
        let want = format!("{}: the model takes 1x8x8 images (64 bytes), image 1 has 192 bytes", path.display());
        assert_eq!(e.as_deref(), Some(want.as_str()));
    }

    /// A model whose arena the firmware's RAM cannot hold is refused before the firmware is
    /// built, with the sizes and the memory map.
    #[test]
    fn a_model_too_big_for_the_firmware_is_refused_before_the_build() {
        let spec = NetSpec { in_c: 3, hw: 64, c: 32, cells: 1, nodes: 2, classes: 10, seed: 2 };
        let (dir, path) = sample_model(spec, "device-big");
        let opts = DeviceRunOptions { firmware: Some(dir.0.join("no.elf")), ..DeviceRunOptions::default() };
        let e = run_images(&path, &[], &opts).err().map(|e| e.to_string()).unwrap_or_default();
        println!("{e}");
        let (flash, ram) = firmware_budget().unwrap();
        assert!(e.starts_with(&format!("{} needs ", path.display())), "{e}");
        let tail = format!(" has {} bytes of flash and {} of RAM", group_digits(flash), group_digits(ram));
        assert!(e.contains(" bytes of RAM for its arena; the firmware's memory map (") && e.ends_with(&tail), "{e}");
    }

    #[test]
    fn memory_map_lengths_read_as_the_linker_reads_them() {
        let map =
            "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 2048K\n  RAM   : ORIGIN = 0x20000000, LENGTH = 640K\n}";
        assert_eq!((region_length(map, "FLASH"), region_length(map, "RAM")), (Some(2 << 20), Some(640 << 10)));
        for (length, bytes) in
            [("1M", Some(1 << 20)), ("0x30000", Some(0x30000)), ("196608", Some(196_608)), ("x", None)]
        {
            assert_eq!(
                region_length(&format!("RAM : ORIGIN = 0x20000000, LENGTH = {length}"), "RAM"),
                bytes,
                "{length}"
            );
        }
        assert_eq!(region_length("RAM : ORIGIN = 0, LENGTH = 99999999999999999999K", "RAM"), None);
    }
}
